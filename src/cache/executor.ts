import type { GatewayInterface } from '@apollo/server-gateway-interface';
import { envelop, useEngine, useSchema } from '@envelop/core';
import { useGraphQlJit } from '@envelop/graphql-jit';
import { useResponseCache } from '@envelop/response-cache';
import {
  GraphQLError,
  execute,
  getVariableValues,
  parse,
  printSchema,
  specifiedRules,
  subscribe,
  validate,
  type ExecutionResult,
  type GraphQLSchema,
} from 'graphql';
import { createScopeAnalyzer } from './policy.js';
import { createCompilePolicy } from './compiled.js';
import type { DocumentProfiles } from './hits.js';
import { operationKey } from './keys.js';
import type { ResponseStore } from './store/tiers.js';
import { sessionOf, sessionOfTag, userSessionTag } from './tags.js';
import { ErrorCode } from '../errors.js';
import type { Context, RequestContext } from '../graphql/context.js';
import type { Metrics } from '../observability/metrics.js';
import { declaredVariables } from '../limits/variables.js';

export interface ExecutorOptions {
  schema: GraphQLSchema;
  /** The response cache; null runs every operation, without single flight either (caching off). */
  store: ResponseStore | null;
  /** Where the executor notes what a hit before parsing needs to know of each query it runs. */
  profiles?: DocumentProfiles;
  metrics?: Metrics;
  /**
   * Told after each mutation of a signed-in user, whatever its outcome (it may have written), before
   * its answer is sent: resolves to the WAL position its reads must see from now on (with read
   * replicas), which the answer carries as `extensions.consistency.lsn` and the `X-Commit-LSN` header.
   */
  onWrite?: (ctx: Context) => Promise<string | undefined>;
}

/**
 * The compiled query reports some errors (a value its type cannot serialize, say) as GraphQLErrors
 * without `extensions`, which Apollo's error formatting reads: give them graphql-js's shape.
 */
function withGraphQLErrors(result: ExecutionResult): ExecutionResult {
  if (!result.errors?.some((e) => !e.extensions)) return result;
  const errors = result.errors.map((e) =>
    e.extensions ? e : new GraphQLError(e.message, { nodes: e.nodes, path: e.path, originalError: e.originalError ?? e, extensions: {} }),
  );
  return { ...result, errors };
}

/**
 * Execution through envelop, plugged into Apollo Server as a gateway's executor: Apollo still parses,
 * validates (our limit rules) and runs its plugins (cost, budgets, logs); envelop then executes, with
 * @envelop/response-cache in front. Its policy comes from the schema's @cacheControl hints once per
 * document, not from a hook on every resolved field (the cost of Apollo's cache-control plugin):
 *
 * - a query that can touch PRIVATE data is cached per caller (`user:<id>`, or one shared anonymous
 *   session, whose answers hold no private data); a wholly public one is shared by everyone;
 * - an answer with errors, or with no cacheControl hint, is not cached;
 * - a successful mutation drops every cached answer of its caller's session, lists included;
 * - identical queries in flight at once (same document, variables and session) run once: the
 *   others wait for the first one's result (single flight).
 */
export function createEnvelopGateway({ schema, store, profiles, metrics, onWrite }: ExecutorOptions): GatewayInterface {
  const isPrivate = createScopeAnalyzer(schema);
  const getEnveloped = envelop({
    plugins: [
      useEngine({ parse, validate, specifiedRules, execute, subscribe }),
      useSchema(schema),
      // operations run compiled (graphql-jit), once per document Apollo keeps: what graphql-js does for
      // every field of every request (argument coercion, promise bookkeeping) is done at compile time;
      // which documents are compiled is createCompilePolicy's to say. Before the response cache, which
      // wraps whatever executes.
      useGraphQlJit({}, { enableIf: createCompilePolicy() }),
      ...(store
        ? [
            useResponseCache<Context>({
              // never for mutations: a replayed write must run, not be answered from a cache
              enabled: (ctx) => Boolean(ctx.cache?.store) && !ctx.cache?.mutation,
              session: (ctx) => ctx.cache?.session ?? null,
              cache: (ctx) => (ctx as Context).cache!.store!,
              // Apollo parsed the document, so envelop never saw its text: key by Apollo's hash of it
              getDocumentString: (args) => (args.contextValue as Context).cache!.documentKey,
              // the same name a hit before parsing looks the answer up by (see hits.ts)
              buildResponseCacheKey: ({ documentString, operationName, variableValues, sessionId }) =>
                operationKey({ session: sessionId ?? null, documentKey: documentString, operationName, variables: variableValues }),
              // answers with no cacheControl hint are not cached
              ttl: 0,
              includeExtensionMetadata: true,
              // (the default says so on the console for every answer with errors)
              shouldCacheResult: ({ result }) => !result.errors?.length,
              // a write's effects are private to its author: the executor drops their session instead
              invalidateViaMutation: false,
            }),
          ]
        : []),
    ],
  });
  const flights = new Map<string, Promise<ExecutionResult>>();
  // A read sent after a write must not join a read that began before it, on this instance or any
  // other: every invalidation (this instance's, or heard from another) ends the flights it concerns,
  // a session's for a session tag, all of them for anything else (which answers hold it is unknown).
  store?.onInvalidate((tags) => {
    for (const tag of tags) {
      const session = sessionOfTag(tag);
      const prefix = session === null ? '' : `${session}\u0000`;
      for (const key of flights.keys()) if (key.startsWith(prefix)) flights.delete(key);
    }
  });
  store?.onReset(() => flights.clear());

  return {
    async load() {
      return {
        executor: async (request) => {
          const requestContext = request.context as RequestContext;
          const document = request.document;
          if (!request.operation) {
            // Apollo leaves operation resolution to the executor when a gateway runs operations
            const name = request.operationName;
            const message = name ? `Unknown operation named "${name}".` : 'Must provide operation name if query contains multiple operations.';
            return {
              errors: [
                new GraphQLError(message, { extensions: { code: ErrorCode.BAD_USER_INPUT, reason: 'OPERATION_RESOLUTION_FAILURE', http: { status: 400 } } }),
              ],
            };
          }
          const mutation = request.operation.operation === 'mutation';
          const { viewer } = requestContext;
          const session = mutation || isPrivate(document) ? sessionOf(viewer) : null;
          // a signed-in caller's write acknowledged on another instance reaches this one's copies
          // (and its identical requests in flight) before this request looks at them
          if (store && !mutation && session && viewer.kind === 'user') await store.sync(session);
          const ctx: Context = await requestContext.forOperation({
            mutation,
            cache: store
              ? { session, mutation, documentKey: request.queryHash, store: store.forRequest(session, () => requestContext.cost.estimated) }
              : undefined,
          });
          // both keys (single flight below, the response cache's own) are built from these alone
          const variableValues = declaredVariables(request.operation, request.request.variables);
          // Variables are checked the way graphql-js checks them, before anything runs: its errors
          // name the variable (Apollo answers them BAD_USER_INPUT), which the compiled query's would not.
          const coercion = getVariableValues(schema, request.operation.variableDefinitions ?? [], variableValues, { maxErrors: 50 });
          if (coercion.errors) return { errors: coercion.errors };
          const run = async () => {
            const { execute: run } = getEnveloped(ctx);
            return withGraphQLErrors(
              (await run({ schema, document, contextValue: ctx, variableValues, operationName: request.operationName })) as ExecutionResult,
            );
          };
          if (mutation) {
            const outcome = await run().then(
              (result) => ({ result }),
              (error: unknown) => ({ error }),
            );
            // whatever the outcome: one field of the operation may have written before another failed.
            // The writer's position is known everywhere before its copies are dropped anywhere, so no
            // instance refills them from a replica that has not replayed the write.
            // (a failure here must not turn an applied write's answer into an error)
            const lsn = ctx.viewer.kind === 'user' ? await onWrite?.(ctx).catch(() => undefined) : undefined;
            if (store && ctx.viewer.kind === 'user') {
              // drops this process's copies at once; waits for Redis at most one command timeout,
              // and not at all while Redis is skipped (what misses Redis is replayed when it answers)
              await store.invalidate([userSessionTag(ctx.viewer.userId)]);
            }
            if ('error' in outcome) throw outcome.error;
            if (!lsn) return outcome.result;
            request.response?.http?.headers.set('x-commit-lsn', lsn);
            return { ...outcome.result, extensions: { ...outcome.result.extensions, consistency: { lsn } } };
          }
          // caching off (the benchmark's baseline) runs every operation, duplicates included
          if (!store) return run();
          // looked up by what the client sends (its operationName may be absent); the answer is named by
          // the operation Apollo resolved
          profiles?.remember(request.queryHash, request.request.operationName ?? null, {
            private: session !== null,
            declared: (request.operation.variableDefinitions ?? []).map((v) => v.variable.name.value),
            name: request.operationName ?? null,
          });
          // the session in front, so that an invalidation can end its session's flights alone
          const key = `${session ?? ''}\u0000${operationKey({ session, documentKey: request.queryHash, operationName: request.operationName, variables: variableValues })}`;
          const running = flights.get(key);
          if (running) {
            metrics?.singleFlightJoins.inc();
            return running;
          }
          const flight: Promise<ExecutionResult> = run().finally(() => {
            if (flights.get(key) === flight) flights.delete(key);
          });
          flights.set(key, flight);
          return flight;
        },
      };
    },
    onSchemaLoadOrUpdate(callback) {
      callback({ apiSchema: schema, coreSupergraphSdl: printSchema(schema) });
      return () => {};
    },
    async stop() {},
  };
}
