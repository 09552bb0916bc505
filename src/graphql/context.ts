import type { Cache as ResponseCache } from '@envelop/response-cache';
import type { Caller } from '../admission/caller.js';
import type { Viewer } from '../admission/tokens.js';
import type { HotCache } from '../cache/hot.js';
import type { Lsn } from '../db/causal.js';
import { scopeDb, type Db } from '../db/client.js';
import type { Deadline } from '../db/deadline.js';
import type { ReadRouter } from '../db/replicas.js';
import type { SqlStats } from '../db/sql-stats.js';
import type { BatchEvent } from '../loaders/batch.js';
import { createLoaders, type Loaders } from '../loaders/index.js';
import type { Metrics } from '../observability/metrics.js';

/** What the request's loaders actually fetched: its actual cost, beside the estimate. */
export interface WorkStats {
  batches: number;
  keys: number;
  rows: number;
  /** Time spent waiting for loader batches (their SQL), in milliseconds. */
  loaderMs: number;
  /** The same, per loader. */
  byLoader: Record<string, { batches: number; keys: number; rows: number }>;
  /** On-request model computations (such as portfolio risk), by `model@version`. */
  models: Record<string, { runs: number; ms: number }>;
}

/** The operation's estimated cost, filled in by the cost plugin before anything executes. */
export interface CostInfo {
  /** Null until the operation is priced (and for requests refused before). */
  estimated: number | null;
  /** Sizes that slicing arguments gave list fields, by schema coordinate. */
  slices: { coordinate: string; value: number }[];
  budget?: { limit: number; remaining: number };
}

/**
 * One request, as Apollo's plugins see it: who asks, its deadline, and what it has cost so far. Made
 * once per request and never changed: its counters (`sql`, `work`, `cost`) are objects that fill.
 */
export interface RequestContext {
  requestId: string;
  viewer: Viewer;
  /** Whose cost budget pays for this request: `partner:<id>`, `user:<id>`, or `ip:<address>`. */
  caller: string;
  /** The partner calling with an API key, if any. */
  partner: { id: number; name: string } | null;
  /** Statements this request has sent so far. */
  sql: SqlStats;
  /** The request's deadline: writes take it to their transaction (see src/db/transaction.ts). */
  deadline: Deadline;
  work: WorkStats;
  cost: CostInfo;
  /**
   * Runs and times an on-request model computation: the time goes to the model-duration histogram
   * (stage `request`) and to the slow-operation log.
   */
  timeModel<T>(model: string, version: string, run: () => T): T;
  /**
   * The context of the request's operation, once the executor knows its type: where it reads (a
   * query may read from a replica, see src/db/replicas.ts), its loaders, and its response cache.
   */
  forOperation(operation: { mutation: boolean; cache?: ResponseCacheScope }): Promise<Context>;
}

/** What every resolver gets: the request, and its operation's own loaders over the database. */
export interface Context extends RequestContext {
  /** For domain functions that write; reads go through the loaders. A query's may be a read replica's. */
  db: Db;
  loaders: Loaders;
  /** Whose answers these are (null: shared by everyone) and where they are cached; absent with caching off. */
  cache?: ResponseCacheScope;
}

export interface ResponseCacheScope {
  session: string | null;
  /** Mutations are never answered from the cache. */
  mutation: boolean;
  /** Identifies the document for cache keys (its SHA-256). */
  documentKey: string;
  /** The response cache of this request, when caching is on. */
  store?: ResponseCache;
}

export interface ContextFactoryOptions {
  /** The primary; a query's reads may go elsewhere (see `router`). */
  db: Db;
  metrics: Metrics;
  /** The model whose active version answers latestForecast. */
  defaultModel: string;
  /** Instruments and latest prices shared across requests. */
  hot?: HotCache;
  /** Where a query reads (a replica, or the primary). */
  router?: ReadRouter;
  /** Told of every loader batch with the request's id: the slow-SQL log. */
  onBatch?: (requestId: string, event: BatchEvent) => void;
  /** False: loaders send one statement per key (LOADER_BATCHING=off, the naive design bench -- incident measures). */
  batching?: boolean;
}

export interface RequestInput {
  requestId: string;
  caller: Caller;
  sql: SqlStats;
  deadline: Deadline;
  /** The WAL position the client's reads must see (its `X-Consistent-After`). */
  consistentAfter?: Lsn;
}

/**
 * Makes each request's context: who asks (settled by admission), its counters, and a way to time
 * on-request models. Loaders are made per operation (`forOperation`), for the database it reads from,
 * and every batch they send is accounted for in `work` and the metrics.
 */
export function createContextFactory({ db, metrics, defaultModel, hot, router, onBatch, batching }: ContextFactoryOptions) {
  return function createContext({ requestId, caller, sql, deadline, consistentAfter }: RequestInput): RequestContext {
    const { viewer, partner } = caller;
    const work: WorkStats = { batches: 0, keys: 0, rows: 0, loaderMs: 0, byLoader: {}, models: {} };
    const observe = (event: BatchEvent) => {
      const { loader, keys, rows, ms } = event;
      metrics.loaderBatchDuration.observe({ loader }, ms / 1000);
      metrics.loaderBatchSize.observe({ loader }, keys);
      onBatch?.(requestId, event);
      work.batches++;
      work.keys += keys;
      work.rows += rows;
      work.loaderMs += ms;
      const mine = (work.byLoader[loader] ??= { batches: 0, keys: 0, rows: 0 });
      mine.batches++;
      mine.keys += keys;
      mine.rows += rows;
    };
    const request: RequestContext = {
      requestId,
      viewer,
      caller: caller.budgetKey,
      partner: partner && { id: partner.id, name: partner.name },
      sql,
      deadline,
      work,
      cost: { estimated: null, slices: [] },
      timeModel(model, version, run) {
        const started = performance.now();
        try {
          return run();
        } finally {
          const ms = performance.now() - started;
          metrics.modelDuration.observe({ model, version, stage: 'request' }, ms / 1000);
          const mine = (work.models[`${model}@${version}`] ??= { runs: 0, ms: 0 });
          mine.runs++;
          mine.ms += ms;
        }
      },
      async forOperation({ mutation, cache }) {
        let reads = db;
        if (router?.enabled) {
          const route = await router.route(mutation ? 'mutation' : 'query', viewer, consistentAfter);
          metrics.readRoutes.inc({ target: route.target, reason: route.reason });
          reads = route.db ?? db;
        }
        // the operation's own handle: what it sends is counted in `sql` and waits at most until its deadline
        const mine = scopeDb(reads, sql);
        const loaders = createLoaders(mine, viewer, { defaultModel, deadline, hot, observe, batching });
        return { ...request, db: mine, loaders, cache };
      },
    };
    return request;
  };
}

export type ContextFactory = ReturnType<typeof createContextFactory>;
