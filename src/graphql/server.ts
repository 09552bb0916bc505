import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import type { GatewayInterface } from '@apollo/server-gateway-interface';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import type { KeyValueCache } from '@apollo/utils.keyvaluecache';
import type { DocumentNode, GraphQLSchema, ValidationRule } from 'graphql';
import { LRUCache } from 'lru-cache';
import type { Server } from 'node:http';
import { codedCause } from '../errors.js';
import type { RequestContext } from './context.js';
import type { Logger } from '../observability/logger.js';
import { createFormatError } from './format-error.js';

export interface ApolloOptions {
  schema: GraphQLSchema;
  /** Runs operations instead of Apollo's own executor (envelop with the response cache). */
  gateway?: GatewayInterface;
  logger: Logger;
  /** Production: no Sandbox, no introspection (unless allowed), masked internal errors. */
  production: boolean;
  allowIntrospection: boolean;
  /** Drained on stop, so that shutdown waits for requests in flight. */
  httpServer?: Server;
  plugins?: ApolloServerPlugin<RequestContext>[];
  /** Limits checked while validating, before anything executes (depth, aliases, ...). */
  validationRules?: ValidationRule[];
  /** Most lexical tokens a document may have; graphql-js stops parsing past it. */
  maxTokens?: number;
  /** Apollo's automatic persisted queries: where hashes are kept, and for how long. */
  persistedQueries?: { cache: KeyValueCache<string>; ttl: number };
  /** Bounds of the store of parsed and validated documents (see createDocumentStore). */
  documentStore?: DocumentStoreOptions;
}

export interface DocumentStoreOptions {
  /** Most documents kept. */
  maxEntries: number;
  /** Most bytes of heap their syntax trees may take, estimated from their length. */
  maxBytes: number;
}

// A parsed document takes about 50-100 bytes of heap per character of its text, measured on graphql
// 16 (12 kB for a 160-character query; 856 kB for 17 kB of aliased fields; 93 kB for 900 characters of
// variables and directives, as Apollo's store keeps it): the estimate takes the high end.
const HEAP_BYTES_PER_CHARACTER = 100;

/**
 * Apollo keeps every document it has parsed and validated, by hash, so a repeated query skips both.
 * Its default store is bounded by an estimate of JSON size (30 MiB) that undercounts the syntax
 * trees about tenfold: 35k distinct anonymous documents filled a 160 MB heap. This one is bounded by
 * count and by the heap its trees really take.
 */
export function createDocumentStore({ maxEntries, maxBytes }: DocumentStoreOptions): KeyValueCache<DocumentNode> & { readonly size: number } {
  const documents = new LRUCache<string, DocumentNode>({
    max: maxEntries,
    maxSize: maxBytes,
    sizeCalculation: (document) => Math.max(1, (document.loc?.end ?? 1000) * HEAP_BYTES_PER_CHARACTER),
  });
  return {
    async get(key) {
      return documents.get(key);
    },
    async set(key, document) {
      documents.set(key, document);
    },
    async delete(key) {
      return documents.delete(key);
    },
    get size() {
      return documents.size;
    },
  };
}

/** Puts the request id on unexpected errors, so a client can quote it and we can find the log line. */
function createRequestIdPlugin(): ApolloServerPlugin<RequestContext> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ response, contextValue }) {
          if (response.body.kind !== 'single' || !contextValue?.requestId) return;
          const errors = response.body.singleResult.errors;
          if (!errors?.some((e) => e.extensions?.code === 'INTERNAL_SERVER_ERROR')) return;
          response.body.singleResult.errors = errors.map((e) =>
            e.extensions?.code === 'INTERNAL_SERVER_ERROR' ? { ...e, extensions: { ...e.extensions, requestId: contextValue.requestId } } : e,
          );
        },
      };
    },
  };
}

/** Logs unexpected errors with the request id the client sees in `x-request-id`. */
function createInternalErrorLogPlugin(logger: Logger): ApolloServerPlugin<RequestContext> {
  return {
    async requestDidStart() {
      return {
        async didEncounterErrors({ errors, contextValue, operationName }) {
          for (const error of errors) {
            const code = error.extensions?.code;
            if (code && code !== 'INTERNAL_SERVER_ERROR') continue;
            if (error.originalError && 'extensions' in error.originalError) continue;
            // a coded refusal inside a driver's wrapper (the gate's OVERLOADED) is an answer, not a fault
            if (codedCause(error.originalError)) continue;
            logger.error({ requestId: contextValue?.requestId, operationName, err: error.originalError ?? error, path: error.path }, 'unexpected error');
          }
        },
      };
    },
  };
}

export function createApolloServer(options: ApolloOptions): ApolloServer<RequestContext> {
  return new ApolloServer<RequestContext>({
    ...(options.gateway ? { gateway: options.gateway } : { schema: options.schema }),
    introspection: !options.production || options.allowIntrospection,
    includeStacktraceInErrorResponses: !options.production,
    formatError: createFormatError({ mask: options.production }),
    csrfPrevention: true,
    // no "did you mean ...?" suggestions that reveal the schema to clients in production
    hideSchemaDetailsFromClientErrors: options.production,
    validationRules: options.validationRules,
    parseOptions: options.maxTokens ? { maxTokens: options.maxTokens } : undefined,
    // a JSON array of operations is refused (400): one request, one operation, one cost
    allowBatchedHttpRequests: false,
    persistedQueries: options.persistedQueries ?? false,
    ...(options.documentStore ? { documentStore: createDocumentStore(options.documentStore) } : {}),
    logger: options.logger,
    plugins: [
      // caching is the response cache's job, from hints read once per document (see executor.ts)
      ApolloServerPluginCacheControlDisabled(),
      options.production ? ApolloServerPluginLandingPageDisabled() : ApolloServerPluginLandingPageLocalDefault({ embed: true }),
      ...(options.httpServer ? [ApolloServerPluginDrainHttpServer({ httpServer: options.httpServer })] : []),
      createInternalErrorLogPlugin(options.logger),
      createRequestIdPlugin(),
      ...(options.plugins ?? []),
    ],
  });
}
