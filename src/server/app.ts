import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ApolloServer } from '@apollo/server';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import type { Context } from '../graphql/context.js';
import { buildSchema } from '../graphql/schema.js';
import { createLoaders } from '../loaders/index.js';
import type { Logger } from '../logger.js';
import { createApolloServer } from './apollo.js';
import { createHttpHandler } from './http.js';
import { viewerFromHeaders } from './viewer.js';

export interface AppOptions {
  config: Config;
  database: Database;
  logger: Logger;
  /** Whether start-up work (migrations, first seed) is done; /readyz answers 503 until it is. */
  isStarted?: () => boolean;
}

export interface App {
  httpServer: Server;
  apollo: ApolloServer<Context>;
  /** Starts Apollo and listens; resolves with the URL of /graphql. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops taking requests, drains those in flight, and stops Apollo (the database is the caller's). */
  stop(): Promise<void>;
}

const localhostOrigin = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/;
// The embedded Apollo Sandbox of the development landing page calls the API from these origins.
const sandboxOrigins = new Set(['https://sandbox.embed.apollographql.com', 'https://studio.apollographql.com']);

export function createApp({ config, database, logger, isStarted = () => true }: AppOptions): App {
  const httpServer = createServer();
  const apollo = createApolloServer({
    schema: buildSchema(),
    logger,
    production: config.production,
    allowIntrospection: config.allowIntrospection,
    httpServer,
  });

  const handler = createHttpHandler({
    apollo,
    logger,
    async context(req, requestId, sql) {
      const viewer = await viewerFromHeaders(req.headers.authorization, config.jwtSecret);
      return {
        requestId,
        viewer,
        db: database.db,
        sql,
        loaders: createLoaders(database.db, viewer, { defaultModel: config.forecastDefaultModel }),
      };
    },
    accepting: isStarted,
    async ready() {
      if (!isStarted()) throw new Error('starting: migrations or the first seed are not done yet');
      await Promise.race([
        database.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('the database did not answer within 2 s')), 2000).unref()),
      ]);
    },
    allowOrigin: (origin) =>
      config.corsOrigins.includes(origin) || (!config.production && (localhostOrigin.test(origin) || sandboxOrigins.has(origin))),
  });
  httpServer.on('request', (req, res) => void handler(req, res));

  return {
    httpServer,
    apollo,
    async listen(port = config.port, host = config.host) {
      await apollo.start();
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host, () => resolve());
      });
      const address = httpServer.address() as AddressInfo;
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `http://${shownHost}:${address.port}/graphql`;
    },
    async stop() {
      await apollo.stop();
      if (httpServer.listening) await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}
