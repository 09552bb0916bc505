import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import type { GraphQLSchema } from 'graphql';
import type { Server } from 'node:http';
import type { Context } from '../graphql/context.js';
import type { Logger } from '../logger.js';
import { createFormatError } from './errors.js';

export interface ApolloOptions {
  schema: GraphQLSchema;
  logger: Logger;
  /** Production: no Sandbox, no introspection (unless allowed), masked internal errors. */
  production: boolean;
  allowIntrospection: boolean;
  /** Drained on stop, so that shutdown waits for requests in flight. */
  httpServer?: Server;
  plugins?: ApolloServerPlugin<Context>[];
}

/** Logs unexpected errors with the request id the client sees in `x-request-id`. */
function createInternalErrorLogPlugin(logger: Logger): ApolloServerPlugin<Context> {
  return {
    async requestDidStart() {
      return {
        async didEncounterErrors({ errors, contextValue, operationName }) {
          for (const error of errors) {
            const code = error.extensions?.code;
            if (code && code !== 'INTERNAL_SERVER_ERROR') continue;
            if (error.originalError && 'extensions' in error.originalError) continue;
            logger.error(
              { requestId: contextValue?.requestId, operationName, err: error.originalError ?? error, path: error.path },
              'unexpected error',
            );
          }
        },
      };
    },
  };
}

export function createApolloServer(options: ApolloOptions): ApolloServer<Context> {
  return new ApolloServer<Context>({
    schema: options.schema,
    introspection: !options.production || options.allowIntrospection,
    includeStacktraceInErrorResponses: !options.production,
    formatError: createFormatError({ mask: options.production }),
    csrfPrevention: true,
    logger: options.logger,
    plugins: [
      options.production ? ApolloServerPluginLandingPageDisabled() : ApolloServerPluginLandingPageLocalDefault({ embed: true }),
      ...(options.httpServer ? [ApolloServerPluginDrainHttpServer({ httpServer: options.httpServer })] : []),
      createInternalErrorLogPlugin(options.logger),
      ...(options.plugins ?? []),
    ],
  });
}
