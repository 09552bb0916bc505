import type { Cache as ResponseCache } from '@envelop/response-cache';
import type { Viewer } from '../admission/tokens.js';
import type { Db } from '../db/client.js';
import type { Deadline } from '../db/deadline.js';
import type { SqlStats } from '../db/sql-stats.js';
import type { Loaders } from '../loaders/index.js';

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

/** The operation's estimated cost, once the cost plugin has computed it. */
export interface CostInfo {
  estimated: number;
  /** Sizes that slicing arguments gave list fields, by schema coordinate. */
  slices: { coordinate: string; value: number }[];
  budget?: { limit: number; remaining: number };
}

/** What every resolver gets: who asks, and that request's own loaders over the database. */
export interface Context {
  requestId: string;
  viewer: Viewer;
  /** Whose cost budget pays for this request: `partner:<id>`, `user:<id>`, or `ip:<address>`. */
  caller: string;
  /** The partner calling with an API key, if any. */
  partner: { id: number; name: string } | null;
  /** For domain functions that write; reads go through the loaders. A query's may be a read replica's. */
  db: Db;
  loaders: Loaders;
  /**
   * Called by the executor once it knows whether the operation is a mutation, before anything runs:
   * a query may then read from a replica (READ_REPLICA_URLS; see src/db/replicas.ts).
   */
  routeReads?(mutation: boolean): void;
  /** Statements this request has sent so far. */
  sql: SqlStats;
  /** The request's deadline: writes take it to their transaction (see src/db/transaction.ts). */
  deadline: Deadline;
  work: WorkStats;
  cost?: CostInfo;
  /**
   * Runs and times an on-request model computation: the time goes to the model-duration histogram
   * (stage `request`) and to the slow-operation log.
   */
  timeModel<T>(model: string, version: string, run: () => T): T;
  /** Set by the executor: whose answers these are (null: shared by everyone) and where they are cached. */
  cache?: ResponseCacheScope;
}

export interface ResponseCacheScope {
  session: string | null;
  /** Mutations are never answered from the cache. */
  mutation: boolean;
  /** Identifies the document for cache keys (Apollo's hash of its text). */
  documentKey: string;
  /** The response cache of this request, when caching is on. */
  store?: ResponseCache;
}

export function newWorkStats(): WorkStats {
  return { batches: 0, keys: 0, rows: 0, loaderMs: 0, byLoader: {}, models: {} };
}
