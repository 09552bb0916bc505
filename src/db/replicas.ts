import { hostname } from 'node:os';
import { LRUCache } from 'lru-cache';
import postgres from 'postgres';
import type { Viewer } from '../admission/tokens.js';
import { openGatedPostgres, type Db, type PlanCacheMode } from './client.js';
import type { PoolGate } from './gate.js';
import type { SqlStats } from './sql-stats.js';

/**
 * Read replicas (READ_REPLICA_URLS): each a pool of its own, at most DB_POOL_MAX connections behind
 * a gate of its own, so a slow replica's line is visible and never holds up the primary's.
 */
export interface ReplicaHealth {
  /** It answered its last check. */
  up: boolean;
  /** How far its replay is behind the primary's WAL it has received, in seconds (0 when caught up or not a standby); null when down. */
  lagSeconds: number | null;
}

export interface ReadReplicas {
  /** The replicas' databases, in the order configured. */
  dbs: Db[];
  pools: PoolGate[];
  /** The last check of each replica (all up and unlagged until the first check). */
  health: ReplicaHealth[];
  /** Checks every replica once: a `select` with a short timeout, and its replay lag. */
  check(): Promise<void>;
  close(): Promise<void>;
}

export interface ReadReplicaOptions {
  dbPoolMax: number;
  statementTimeoutMs?: number;
  planCacheMode?: PlanCacheMode;
  /** The primary's gated client: a read a replica cannot run for a connection reason runs there instead, once. */
  primary?: (unit?: SqlStats) => postgres.Sql;
  /** Told when a replica failed a read for a connection reason (it is marked down at once). */
  onFailover?: (replica: number) => void;
}

export function createReadReplicas(urls: string[], options: ReadReplicaOptions): ReadReplicas {
  const applicationName = `foliograph:${hostname()}:${process.pid}:replica`.slice(-63);
  const health: ReplicaHealth[] = urls.map(() => ({ up: true, lagSeconds: 0 }));
  const { primary } = options;
  const opened = urls.map((url, i) =>
    openGatedPostgres(url, {
      max: options.dbPoolMax,
      applicationName,
      statementTimeoutMs: options.statementTimeoutMs,
      planCacheMode: options.planCacheMode,
      // a replica that fails a read for a connection reason gets no more until its next check answers
      ...(primary
        ? {
            fallback: {
              gated: primary,
              onFail: () => {
                health[i] = { up: false, lagSeconds: null };
                options.onFailover?.(i);
              },
            },
          }
        : {}),
    }),
  );
  const pools = opened.map((o) => o.pool);
  const dbs = opened.map((o) => o.db);
  // health checks use connections of their own: a replica's full pool must not make it look down
  const checkers = urls.map((url) =>
    postgres(url, {
      max: 1,
      idle_timeout: 60,
      connect_timeout: 2,
      onnotice: () => {},
      connection: { application_name: `${applicationName}:check`.slice(-63), statement_timeout: 2000 },
    }),
  );
  // per replica: since when (and at which replay position) its replay has been behind what it received
  const behind: ({ replayed: string; since: number } | undefined)[] = urls.map(() => undefined);
  /**
   * A replica's lag: 0 when it has replayed all it received (an idle primary is no lag), else how
   * long since the last transaction it replayed, or, when that is unknown (none replayed since it
   * started) or shorter, how long its replay has stood still at this position.
   */
  const lagOf = (i: number, row: LagRow): number => {
    if (!row.standby || row.received === null || row.received === row.replayed) {
      behind[i] = undefined;
      return 0;
    }
    const now = Date.now();
    if (behind[i]?.replayed !== row.replayed) behind[i] = { replayed: row.replayed ?? '', since: now };
    return Math.max(row.since_xact ?? 0, (now - behind[i]!.since) / 1000);
  };
  return {
    dbs,
    pools,
    health,
    async check() {
      await Promise.all(
        checkers.map(async (checker, i) => {
          try {
            const [row] = await checker`select pg_is_in_recovery() as standby, pg_last_wal_receive_lsn()::text as received,
                                               pg_last_wal_replay_lsn()::text as replayed,
                                               extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 as since_xact`;
            health[i] = { up: true, lagSeconds: lagOf(i, row as LagRow) };
          } catch {
            health[i] = { up: false, lagSeconds: null };
          }
        }),
      );
    },
    async close() {
      await Promise.all([...opened.map((o) => o.close()), ...checkers.map((c) => c.end({ timeout: 5 }))]);
    },
  };
}

interface LagRow {
  standby: boolean;
  received: string | null;
  replayed: string | null;
  since_xact: number | null;
}

export type ReadTarget = 'primary' | 'replica';
/** Why a request's reads went where they did. */
export type RouteReason = 'no_replica' | 'mutation' | 'read_your_writes' | 'catch_up' | 'no_healthy_replica' | 'replica';

/**
 * Decides, per request, where its reads go. A replica replays the primary's writes with a delay, so:
 * - a mutation reads from the primary (what it returns must include what it wrote);
 * - a user who wrote in the last `readYourWritesMs` reads from the primary, so their next answers
 *   include their trades; writers are known from this process's mutations and, with Redis, from every
 *   instance's (their cache invalidations name the user);
 * - for `readYourWritesMs` after public data changed (new prices or forecasts, a model activation:
 *   the invalidation NOTIFY), everyone reads from the primary, so the answers cached right after an
 *   invalidation are not the replica's older ones;
 * - every other request reads from the next usable replica in turn: one that answered its last health
 *   check and whose replay lag is within `readYourWritesMs` (a replica further behind would break the
 *   read-your-writes promise); with none usable, from the primary.
 */
export function createReadRouter(options: { replicas: Db[]; readYourWritesMs: number; now?: () => number; health?: ReplicaHealth[] }) {
  const now = options.now ?? Date.now;
  const writers = new LRUCache<number, number>({ max: 100_000 });
  let catchUpUntil = 0;
  let turn = 0;
  const recent = (at: number | undefined) => at !== undefined && now() - at < options.readYourWritesMs;
  const usable = (h: ReplicaHealth | undefined) => !h || (h.up && (h.lagSeconds ?? Infinity) * 1000 <= options.readYourWritesMs);
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
      for (let tried = 0; tried < options.replicas.length; tried++) {
        const i = turn++ % options.replicas.length;
        if (usable(options.health?.[i])) return { db: options.replicas[i], target: 'replica', reason: 'replica' };
      }
      return { db: undefined, target: 'primary', reason: 'no_healthy_replica' };
    },
  };
}

export type ReadRouter = ReturnType<typeof createReadRouter>;

/**
 * Checks every replica before the first request and every `intervalMs` after (a down or lagging one
 * gets no reads), telling `onChecked` each time.
 */
export function replicaChecks(replicas: ReadReplicas, onChecked: (health: ReplicaHealth[]) => void, intervalMs = 5000) {
  let loop: NodeJS.Timeout | undefined;
  const check = async () => {
    await replicas.check();
    onChecked(replicas.health);
  };
  return {
    async start() {
      await check();
      loop = setInterval(() => void check().catch(() => {}), intervalMs);
      loop.unref();
    },
    async stop() {
      clearInterval(loop);
      await replicas.close();
    },
  };
}
