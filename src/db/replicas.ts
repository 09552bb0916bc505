import { hostname } from 'node:os';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { LRUCache } from 'lru-cache';
import postgres from 'postgres';
import type { Viewer } from '../auth/tokens.js';
import type { Db } from './client.js';
import { createPoolGate, gatePostgresClient, type PoolGate } from './gate.js';
import * as schema from './schema.js';
import { sqlStatsLogger } from './sql-stats.js';

/**
 * Read replicas (READ_REPLICA_URLS): each a pool of its own, at most DB_POOL_MAX connections behind
 * a gate of its own, so a slow replica's line is visible and never holds up the primary's.
 */
export interface ReadReplicas {
  /** The replicas' databases, in the order configured. */
  dbs: Db[];
  pools: PoolGate[];
  close(): Promise<void>;
}

export function createReadReplicas(urls: string[], options: { dbPoolMax: number; statementTimeoutMs?: number }): ReadReplicas {
  const applicationName = `foliograph:${hostname()}:${process.pid}:replica`.slice(-63);
  const clients = urls.map((url) =>
    postgres(url, {
      max: options.dbPoolMax,
      idle_timeout: 30,
      connect_timeout: 10,
      onnotice: () => {},
      connection: { application_name: applicationName, ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}) },
    }),
  );
  const pools = clients.map(() => createPoolGate(options.dbPoolMax));
  const dbs = clients.map((client, i) => drizzlePostgres(gatePostgresClient(client, pools[i]), { schema, logger: sqlStatsLogger }) as unknown as Db);
  return {
    dbs,
    pools,
    async close() {
      await Promise.all(clients.map((c) => c.end({ timeout: 5 })));
    },
  };
}

export type ReadTarget = 'primary' | 'replica';
/** Why a request's reads went where they did. */
export type RouteReason = 'no_replica' | 'mutation' | 'read_your_writes' | 'catch_up' | 'replica';

/**
 * Decides, per request, where its reads go. A replica replays the primary's writes with a delay, so:
 * - a mutation reads from the primary (what it returns must include what it wrote);
 * - a user who wrote in the last `readYourWritesMs` reads from the primary, so their next answers
 *   include their trades; writers are known from this process's mutations and, with Redis, from every
 *   instance's (their cache invalidations name the user);
 * - for `readYourWritesMs` after public data changed (new prices or forecasts, a model activation:
 *   the invalidation NOTIFY), everyone reads from the primary, so the answers cached right after an
 *   invalidation are not the replica's older ones;
 * - every other request reads from the next replica in turn.
 */
export function createReadRouter(options: { replicas: Db[]; readYourWritesMs: number; now?: () => number }) {
  const now = options.now ?? Date.now;
  const writers = new LRUCache<number, number>({ max: 100_000 });
  let catchUpUntil = 0;
  let turn = 0;
  const recent = (at: number | undefined) => at !== undefined && now() - at < options.readYourWritesMs;
  return {
    enabled: options.replicas.length > 0,
    /** A user wrote (their mutation ran here, or another instance said so). */
    wrote(userId: number) {
      writers.set(userId, now());
    },
    /** Public data changed on the primary. */
    publicDataChanged() {
      catchUpUntil = now() + options.readYourWritesMs;
    },
    /** Where this request reads: a replica's database, or undefined for the primary. */
    route(operationType: string | undefined, viewer: Viewer): { db: Db | undefined; target: ReadTarget; reason: RouteReason } {
      if (options.replicas.length === 0) return { db: undefined, target: 'primary', reason: 'no_replica' };
      if (operationType === 'mutation') return { db: undefined, target: 'primary', reason: 'mutation' };
      if (viewer.kind === 'user' && recent(writers.get(viewer.userId))) return { db: undefined, target: 'primary', reason: 'read_your_writes' };
      if (now() < catchUpUntil) return { db: undefined, target: 'primary', reason: 'catch_up' };
      const db = options.replicas[turn++ % options.replicas.length];
      return { db, target: 'replica', reason: 'replica' };
    },
  };
}

export type ReadRouter = ReturnType<typeof createReadRouter>;
