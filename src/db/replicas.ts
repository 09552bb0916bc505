import { hostname } from 'node:os';
import postgres from 'postgres';
import type { Viewer } from '../admission/tokens.js';
import { openGatedPostgres, type Db, type PlanCacheMode } from './client.js';
import type { PoolGate } from './gate.js';
import type { SqlStats } from './sql-stats.js';
import { parseLsn, UNKNOWN, type Lsn, type WritePositions } from './causal.js';
import { oneConnection } from './one-connection.js';

/**
 * Read replicas (READ_REPLICA_URLS): each a pool of its own, at most DB_POOL_MAX connections behind
 * a gate of its own, so a slow replica's line is visible and never holds up the primary's.
 */
export interface ReplicaHealth {
  /** It answered its last check. */
  up: boolean;
  /**
   * How old the newest data it lacks is, in seconds: 0 while it has replayed all the primary had
   * written when last asked (an idle primary is no lag); null when down.
   */
  lagSeconds: number | null;
  /** How far its replay has come; null when down, or when it is not a standby (its positions are not the primary's). */
  replayed: Lsn | null;
  /** Bytes of the primary's WAL it had not replayed when last asked (null when unknown). */
  lagBytes: number | null;
}

/** The primary's WAL positions when last asked (see `Database.walPosition`), and the number of the check that asked. */
export interface PrimarySample {
  written: Lsn;
  /** At or past the commit of every transaction that had returned when it was asked. */
  inserted: Lsn;
  check: number;
}

export interface ReadReplicas {
  /** The replicas' databases, in the order configured. */
  dbs: Db[];
  pools: PoolGate[];
  /** The last check of each replica (all up and unlagged until the first check). */
  health: ReplicaHealth[];
  /** The primary's position as last sampled (absent without `primaryPosition`, or before the first check). */
  readonly primary: PrimarySample | undefined;
  /** How many checks have begun: a change heard now is in the primary's sample of any later one. */
  readonly checks: number;
  /** Samples the primary's WAL position, then checks every replica once: a `select` with a short timeout, its replay position and lag. */
  check(): Promise<void>;
  close(): Promise<void>;
}

export interface ReadReplicaOptions {
  dbPoolMax: number;
  statementTimeoutMs?: number;
  planCacheMode?: PlanCacheMode;
  /** The primary's WAL position, asked at every check (`Database.walPosition`, bounded in time there). */
  primaryPosition?: () => Promise<{ written: string; inserted: string }>;
  /** The primary's gated client: a read a replica cannot run for a connection reason runs there instead, once. */
  primary?: (unit?: SqlStats) => postgres.Sql;
  /** Told when a replica failed a read for a connection reason (it is marked down at once). */
  onFailover?: (replica: number) => void;
  /** Told once per replica that answers its check but is no standby (it never receives the primary's writes). */
  onNotStandby?: (replica: number) => void;
}

// a replica's check that takes longer failed
const CHECK_TIMEOUT_MS = 3000;

// how long the primary's past positions are kept: the lag of a replica further behind is at least this
const HISTORY_MS = 120_000;
const HISTORY_MAX = 4096;

export function createReadReplicas(urls: string[], options: ReadReplicaOptions): ReadReplicas {
  const applicationName = `foliograph:${hostname()}:${process.pid}:replica`.slice(-63);
  const health: ReplicaHealth[] = urls.map(() => ({ up: true, lagSeconds: 0, replayed: null, lagBytes: null }));
  // the number of the check during which each replica last failed a read: an older check's answer does not mark it up again
  const failedDuring: number[] = urls.map(() => -1);
  let checks = 0;
  let running: Promise<void> | undefined;
  const warned = urls.map(() => false);
  const { primary } = options;
  const opened = urls.map((url, i) =>
    openGatedPostgres(url, {
      max: options.dbPoolMax,
      applicationName,
      statementTimeoutMs: options.statementTimeoutMs,
      planCacheMode: options.planCacheMode,
      // a replica that fails a read for a connection reason gets no more until a later check answers
      ...(primary
        ? {
            fallback: {
              gated: primary,
              onFail: () => {
                health[i] = { up: false, lagSeconds: null, replayed: null, lagBytes: null };
                failedDuring[i] = checks;
                options.onFailover?.(i);
              },
            },
          }
        : {}),
    }),
  );
  const pools = opened.map((o) => o.pool);
  const dbs = opened.map((o) => o.db);
  // checks use connections of their own: a full pool must not make a replica look down
  const checkers = urls.map((url) =>
    oneConnection(() =>
      postgres(url, {
        max: 1,
        idle_timeout: 60,
        connect_timeout: 2,
        onnotice: () => {},
        connection: { application_name: `${applicationName}:check`.slice(-63), statement_timeout: 2000 },
      }),
    ),
  );
  let sample: PrimarySample | undefined;
  // when the primary was first seen at each position (oldest first, one entry per change)
  const history: { lsn: Lsn; at: number }[] = [];
  const samplePrimary = async (check: number) => {
    if (!options.primaryPosition) return;
    try {
      const at = await options.primaryPosition();
      const [lsn, inserted] = [parseLsn(at.written), parseLsn(at.inserted)];
      if (lsn === null || inserted === null) return;
      sample = { written: lsn, inserted, check };
      const now = Date.now();
      if (!history.length || history[history.length - 1]!.lsn < lsn) history.push({ lsn, at: now });
      while (history.length > HISTORY_MAX || (history.length > 1 && history[0]!.at < now - HISTORY_MS)) history.shift();
    } catch {
      // the primary's sample is what it was: reads that need a newer position go to the primary
    }
  };
  /** How long ago the primary first stood past `replayed` (at least as long as the history reaches, when it is further behind). */
  const lagByPosition = (replayed: Lsn): number => {
    const first = history.find((h) => h.lsn > replayed);
    return first ? (Date.now() - first.at) / 1000 : 0;
  };
  // per replica: since when (and at which replay position) its replay has been behind what it received
  const behind: ({ replayed: string; since: number } | undefined)[] = urls.map(() => undefined);
  /**
   * A replica's lag by what it knows itself: 0 when it has replayed all it received, else how long
   * since the last transaction it replayed, or, when that is unknown (none replayed since it started)
   * or shorter, how long its replay has stood still at this position.
   */
  const lagByReplay = (i: number, row: LagRow): number => {
    if (!row.standby || row.received === null || row.received === row.replayed) {
      behind[i] = undefined;
      return 0;
    }
    const now = Date.now();
    if (behind[i]?.replayed !== row.replayed) behind[i] = { replayed: row.replayed ?? '', since: now };
    return Math.max(row.since_xact ?? 0, (now - behind[i]!.since) / 1000);
  };
  const checkOnce = async () => {
    const check = ++checks;
    // the primary first: a replica that has replayed up to this position now holds all it had then
    // (only this check's sample says so: an older one would call a replica caught up that is not)
    await samplePrimary(check);
    const upTo = sample?.check === check ? sample : undefined;
    await Promise.all(
      checkers.map(async (c, i) => {
        try {
          // a check that does not answer in time counts as down: a silent connection must not freeze every replica's health
          const [row] = await c.run(
            CHECK_TIMEOUT_MS,
            (sql) => sql`select pg_is_in_recovery() as standby, pg_last_wal_receive_lsn()::text as received,
                     pg_last_wal_replay_lsn()::text as replayed,
                     extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 as since_xact`,
          );
          const lag = row as LagRow;
          if (!lag.standby && !warned[i]) {
            warned[i] = true;
            options.onNotStandby?.(i);
          }
          const replayed = lag.standby ? parseLsn(lag.replayed) : null;
          const caughtUp = replayed !== null && upTo !== undefined && replayed >= upTo.written;
          const lagSeconds = caughtUp ? 0 : Math.max(lagByReplay(i, lag), replayed === null ? 0 : lagByPosition(replayed));
          if (failedDuring[i] >= check) return;
          health[i] = {
            up: true,
            lagSeconds,
            replayed,
            lagBytes: replayed !== null && upTo !== undefined ? Math.max(0, Number(upTo.written - replayed)) : null,
          };
        } catch {
          health[i] = { up: false, lagSeconds: null, replayed: null, lagBytes: null };
        }
      }),
    );
  };
  return {
    dbs,
    pools,
    health,
    get primary() {
      return sample;
    },
    get checks() {
      return checks;
    },
    // one check at a time: a slow one is joined, not stacked
    check() {
      running ??= checkOnce().finally(() => {
        running = undefined;
      });
      return running;
    },
    async close() {
      await Promise.all([...opened.map((o) => o.close()), ...checkers.map((c) => c.end())]);
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
export type RouteReason =
  'no_replica' | 'mutation' | 'read_your_writes' | 'consistent_after' | 'catch_up' | 'positions_unknown' | 'no_healthy_replica' | 'replica';

export interface Route {
  db: Db | undefined;
  target: ReadTarget;
  reason: RouteReason;
}

export interface ReadRouterOptions {
  replicas: Db[];
  /** READ_REPLICA_MAX_LAG_MS: a replica further behind serves nobody. */
  maxLagMs: number;
  health?: ReplicaHealth[];
  /** The replicas' checks: the primary's sampled position, and how many checks have begun. */
  checks?: Pick<ReadReplicas, 'primary' | 'checks'>;
  /** Writers' commit positions, every instance's with Redis. */
  positions?: WritePositions;
  now?: () => number;
}

/**
 * Decides, per request, where its reads go. A replica replays the primary's writes with a delay, so
 * a read goes to a replica only if that replica is up, lags at most `maxLagMs`, and has replayed every
 * position the read must see:
 * - a mutation reads from the primary (what it returns must include what it wrote);
 * - a signed-in user's reads must see their own last commit (`positions`: this process's mutations
 *   and, with Redis, every instance's; while Redis cannot say, that user reads from the primary);
 * - a read sent with `X-Consistent-After` must see that position (a write made in another session);
 * - after public data changed (new prices or forecasts, a model activation: the invalidation
 *   NOTIFY), every read must see the primary's position sampled after the change, so answers cached
 *   right after an invalidation are not a replica's older ones; until that sample, reads go to the
 *   primary;
 * - replicas take the reads that qualify in turn; with none qualifying, the primary does.
 *
 * A required position is forgotten after `maxLagMs` and a margin: by then every replica close enough
 * to serve has replayed it. A replica that is not a standby (no comparable position) serves only
 * reads that require none.
 */
export function createReadRouter(options: ReadRouterOptions) {
  const now = options.now ?? Date.now;
  const forgetAfterMs = positionTtlMs(options.maxLagMs);
  let publicChangedAfter: number | undefined;
  let publicFloor: { lsn: Lsn; until: number } | undefined;
  let turn = 0;
  const sampledAfter = (check: number) => {
    const sample = options.checks?.primary;
    return sample && sample.check > check ? sample.inserted : undefined;
  };
  const healthy = (h: ReplicaHealth | undefined) => !h || (h.up && (h.lagSeconds ?? Infinity) * 1000 <= options.maxLagMs);
  /** The position a user's reads must see; or why it cannot be known now (they read from the primary). */
  const positionOf = async (userId: number): Promise<Lsn | 'positions_unknown'> => {
    const known = options.positions ? await options.positions.of(userId) : undefined;
    return known === UNKNOWN ? 'positions_unknown' : (known ?? 0n);
  };
  const publicPosition = (): Lsn | null => {
    if (publicChangedAfter !== undefined) {
      const at = sampledAfter(publicChangedAfter);
      if (at === undefined) return null;
      publicChangedAfter = undefined;
      publicFloor = { lsn: max(at, publicFloor?.lsn ?? 0n), until: now() + forgetAfterMs };
    }
    if (publicFloor && now() > publicFloor.until) publicFloor = undefined;
    return publicFloor?.lsn ?? 0n;
  };
  const primary = (reason: RouteReason): Route => ({ db: undefined, target: 'primary', reason });
  return {
    enabled: options.replicas.length > 0,
    /** Public data changed on the primary. */
    publicDataChanged() {
      publicChangedAfter = options.checks?.checks ?? 0;
    },
    /** Where this request reads: a replica's database, or undefined for the primary. */
    async route(operationType: string | undefined, viewer: Viewer, consistentAfter?: Lsn): Promise<Route> {
      if (options.replicas.length === 0) return primary('no_replica');
      if (operationType === 'mutation') return primary('mutation');
      const publicLsn = publicPosition();
      if (publicLsn === null) return primary('catch_up');
      const own = viewer.kind === 'user' ? await positionOf(viewer.userId) : 0n;
      if (typeof own === 'string') return primary(own);
      const needs: [RouteReason, Lsn][] = [
        ['read_your_writes', own],
        ['consistent_after', consistentAfter ?? 0n],
        ['catch_up', publicLsn],
      ];
      const need = needs.reduce((m, [, lsn]) => max(m, lsn), 0n);
      // the furthest replay among the healthy replicas that have not replayed enough (-1: none healthy)
      let furthest = -1n;
      for (let tried = 0; tried < options.replicas.length; tried++) {
        const i = turn++ % options.replicas.length;
        const h = options.health?.[i];
        if (!healthy(h)) continue;
        const replayed = h?.replayed ?? 0n;
        if (need === 0n || replayed >= need) return { db: options.replicas[i], target: 'replica', reason: 'replica' };
        furthest = max(furthest, replayed);
      }
      if (furthest < 0n) return primary('no_healthy_replica');
      // the first position even the furthest healthy replica has not replayed says why
      return primary(needs.find(([, lsn]) => lsn > furthest)![0]);
    },
  };
}

const max = (a: Lsn, b: Lsn) => (a > b ? a : b);

/** How long a required position matters: past it, every replica within `maxLagMs` has replayed it. */
export function positionTtlMs(maxLagMs: number): number {
  return 2 * maxLagMs + 5_000;
}

export type ReadRouter = ReturnType<typeof createReadRouter>;

export function replicaChecks(replicas: ReadReplicas, onChecked: (health: ReplicaHealth[]) => void, intervalMs: number) {
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
