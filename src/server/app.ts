import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ApolloServer } from '@apollo/server';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { FIELD_PAGE_CAPS } from '../domain/pagination.js';
import { newWorkStats, type Context } from '../graphql/context.js';
import { buildSchema } from '../graphql/schema.js';
import { createLoaders } from '../loaders/index.js';
import type { Logger } from '../logger.js';
import { createApolloServer } from './apollo.js';
import { createMemoryBudget, createRedisBudget, type CostBudget } from './budget.js';
import { CostEstimator } from './cost/estimate.js';
import { createCostPlugin } from './cost/plugin.js';
import { createCostRecorder, type CostRecorder } from './cost/recorder.js';
import { createHttpHandler } from './http.js';
import { aliasLimitRule } from './rules/aliasLimitRule.js';
import { depthLimitRule } from './rules/depthLimitRule.js';
import { directiveLimitRule } from './rules/directiveLimitRule.js';
import { noSubscriptionRule } from './rules/noSubscriptionRule.js';
import { rootFieldLimitRule } from './rules/rootFieldLimitRule.js';
import { createNulGuardPlugin } from './nulGuard.js';
import { viewerFromHeaders } from './viewer.js';

export interface AppOptions {
  config: Config;
  database: Database;
  logger: Logger;
  /** Whether start-up work (migrations, first seed) is done; /readyz answers 503 until it is. */
  isStarted?: () => boolean;
  /** Cost budgets; by default from the config (Redis when REDIS_URL is set, else in process). */
  budget?: CostBudget;
}

export interface App {
  httpServer: Server;
  apollo: ApolloServer<Context>;
  recorder: CostRecorder;
  /** Starts Apollo and listens; resolves with the URL of /graphql. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops taking requests, drains those in flight, and stops Apollo (the database is the caller's). */
  stop(): Promise<void>;
}

const localhostOrigin = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/;
// The embedded Apollo Sandbox of the development landing page calls the API from these origins.
const sandboxOrigins = new Set(['https://sandbox.embed.apollographql.com', 'https://studio.apollographql.com']);

export function createApp({ config, database, logger, isStarted = () => true, budget }: AppOptions): App {
  const httpServer = createServer();
  const schema = buildSchema();
  const costBudget =
    budget ??
    (config.redisUrl
      ? createRedisBudget(config.redisUrl, { costPerMinute: config.rateLimitCostPerMinute }, logger)
      : createMemoryBudget({ costPerMinute: config.rateLimitCostPerMinute }));
  const recorder = createCostRecorder(database.db);
  const apollo = createApolloServer({
    schema,
    logger,
    production: config.production,
    allowIntrospection: config.allowIntrospection,
    httpServer,
    maxTokens: config.maxTokens,
    validationRules: [
      depthLimitRule(config.maxDepth),
      aliasLimitRule(config.maxAliases),
      rootFieldLimitRule(config.maxRootFields),
      directiveLimitRule(config.maxDirectives),
      noSubscriptionRule,
    ],
    plugins: [
      createNulGuardPlugin(),
      createCostPlugin({
        estimator: new CostEstimator(schema),
        maxCost: config.maxCost,
        caps: FIELD_PAGE_CAPS,
        budget: costBudget,
        recorder,
      }),
    ],
  });

  const handler = createHttpHandler({
    apollo,
    logger,
    maxBodyBytes: config.maxBodyBytes,
    timeoutMs: config.requestTimeoutMs,
    async context({ req, requestId, sql, signal }) {
      const viewer = await viewerFromHeaders(req.headers.authorization, config.jwtSecret);
      const work = newWorkStats();
      const loaders = createLoaders(database.db, viewer, {
        defaultModel: config.forecastDefaultModel,
        signal,
        observe({ loader, keys, rows, ms }) {
          work.batches++;
          work.keys += keys;
          work.rows += rows;
          work.loaderMs += ms;
          const mine = (work.byLoader[loader] ??= { batches: 0, keys: 0, rows: 0 });
          mine.batches++;
          mine.keys += keys;
          mine.rows += rows;
        },
      });
      const caller = viewer.kind === 'user' ? `user:${viewer.userId}` : `ip:${req.socket.remoteAddress ?? 'unknown'}`;
      return { requestId, viewer, caller, db: database.db, sql, work, loaders } satisfies Context;
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
    recorder,
    async listen(port = config.port, host = config.host) {
      await apollo.start();
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host, () => resolve());
      });
      recorder.start();
      const address = httpServer.address() as AddressInfo;
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `http://${shownHost}:${address.port}/graphql`;
    },
    async stop() {
      await apollo.stop();
      if (httpServer.listening) await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      await recorder.stop();
      await costBudget.close();
    },
  };
}
