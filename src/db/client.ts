import { PGlite } from '@electric-sql/pglite';
import type { SQL } from 'drizzle-orm';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import postgres from 'postgres';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { codedCause } from '../errors.js';
import { createAvailability, type Availability, type AvailabilityState } from './availability.js';
import { createPoolGate, failoverPostgresClient, gatePgliteClient, gatePostgresClient, type PoolGate } from './gate.js';
import { createPreparePolicy } from './prepare.js';
import { oneConnection } from './one-connection.js';
import { lockDataDir } from './pglite-lock.js';
import * as schema from './schema.js';
import type { SqlStats } from './sql-stats.js';

/** The one database type the rest of the code sees, whichever driver is behind it. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

const SCOPE = Symbol('scope');

interface Scope {
  /** A handle over the same database counting in `unit`. */
  make(unit: SqlStats): Db;
  /** The unit this handle counts in (none: the process's total only). */
  unit?: SqlStats;
}

/**
 * The same database, but every statement sent through the handle returned (and the transactions it
 * begins) is counted in `unit`, which is part of the unit `db` counts in (a loader batch's, within
 * its request's), and its waits for a connection give up at the deadline of either. A handle costs a
 * Proxy and a Drizzle object without the relational schema (a few microseconds). A handle not made
 * by this module (a transaction's) is returned as it is: its statements already count where the
 * transaction began.
 */
export function scopeDb(db: Db, unit: SqlStats): Db {
  const scope = (db as unknown as { [SCOPE]?: Scope })[SCOPE];
  if (!scope) return db;
  if (scope.unit && !unit.parent) unit.parent = scope.unit;
  return scope.make(unit);
}

/** The database handle over `client(unit)`, scopable (see scopeDb); the unscoped one carries the relational schema. */
function scopable(over: (unit: SqlStats | undefined) => Db): Db {
  const handle = (unit: SqlStats | undefined) => {
    const db = over(unit);
    Object.defineProperty(db, SCOPE, { value: { make: handle, unit } satisfies Scope });
    return db;
  };
  return handle(undefined);
}

export interface Database {
  db: Db;
  driver: 'pglite' | 'postgres';
  /**
   * Which database this is, without credentials: `postgres://host:port/name`, `pglite:<directory>`,
   * or a unique `memory:` name per in-memory database. Keeps shared caches of different databases apart.
   */
  identity: string;
  /** Answers when the database can run a statement; throws otherwise. */
  ping(): Promise<void>;
  /** The gate every statement of this process passes: permits in use, statements waiting, waits. */
  pool: PoolGate;
  /** Whether the database can be reached now (PGlite, in process, always can). */
  availability: Availability;
  /** This process's idle connections, as the database sees them (PGlite: its one connection when free). */
  idleConnections(): Promise<number>;
  /** The plan PostgreSQL would choose for a statement (EXPLAIN, not run), one line per element. */
  explain(query: string, params: unknown[]): Promise<string[]>;
  /**
   * Calls `onMessage` with every NOTIFY payload on `channel` (from any process); resolves to stop.
   * `onRelisten` is told each time listening resumes after a lost connection: what was sent
   * meanwhile never arrives.
   */
  listen(channel: string, onMessage: (payload: string) => void, onRelisten?: () => void): Promise<() => Promise<void>>;
  /** Runs `fn` holding a cluster-wide lock (migrations by several instances at once). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** PostgreSQL only: the gated client a statement of `unit` goes through (what a read replica falls back to). */
  gated?: (unit?: SqlStats) => postgres.Sql;
  /**
   * PostgreSQL only: the primary's WAL positions now, over a connection of its own (the read replicas'
   * checks sample them, and must not wait in the line they help to shorten): how far WAL is written
   * (`pg_current_wal_lsn()`, what a caught-up standby has replayed) and how far it is inserted
   * (`pg_current_wal_insert_lsn()`, past every commit that has returned, even with synchronous_commit off).
   * Rejects when it has no answer within 2 s: a write's answer waits on it.
   */
  walPosition?: () => Promise<{ written: string; inserted: string }>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** PostgreSQL primary (DATABASE_URL); undefined: the embedded PGlite database. */
  databaseUrl?: string;
  /**
   * The same primary, not through a pooler (DATABASE_DIRECT_URL). Given, `databaseUrl` is taken to be
   * a pooler in transaction mode (PgBouncer): its statements are never prepared by name and its
   * connections carry no session settings, and what needs a session of its own (LISTEN, the
   * migration lock, the WAL position, the idle count) goes here instead.
   */
  directUrl?: string;
  /** PGlite data directory, or `memory://`. */
  pgliteDataDir: string;
  dbPoolMax: number;
  /** PostgreSQL cancels any statement of this pool running longer (the server's request deadline). */
  statementTimeoutMs?: number;
  /** A connection not established within this is given up (DB_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number;
  /** plan_cache_mode of the pool's connections (DB_PLAN_CACHE_MODE; PostgreSQL's own default when absent). */
  planCacheMode?: PlanCacheMode;
  /** Told when the database becomes unreachable or reachable again. */
  onAvailability?: (state: AvailabilityState, previous: AvailabilityState, cause?: unknown) => void;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
// a probe that takes longer failed (its statement_timeout on the server, where one can be sent)
const PROBE_TIMEOUT_MS = 2500;

/**
 * How PostgreSQL plans a prepared statement (its plan_cache_mode). Left to itself ('auto') it plans
 * the loaders' statements afresh on every run: with `= any($1)` over an array of unknown length, it
 * judges the generic plan dearer than a custom one and never switches, so each dashboard paid its
 * planning again (about 0.7 ms of the backend's CPU for the positions' statement, half its cost).
 * Every statement prepared here is a lookup by keys, whose plan does not depend on the values.
 */
export type PlanCacheMode = 'force_generic_plan' | 'auto' | 'force_custom_plan';

/**
 * Seconds before a connection is tried again after `retries` failures in a row. postgres.js waits up
 * to 20 s by default (3^n / 100 s): after an outage, requests would hang that long on connections the
 * database would already accept. Availability (availability.ts) keeps requests off a database that is down, so
 * retrying soon costs nothing.
 */
const reconnectBackoff = (retries: number) => Math.min(0.05 * 2 ** retries, 0.5);

/** Rows of a raw statement; the two drivers shape `execute` results differently. */
export async function rows<T>(db: Db, query: SQL): Promise<T[]> {
  let result: { rows?: T[] } | T[];
  try {
    result = (await db.execute(query)) as unknown as { rows?: T[] } | T[];
  } catch (e) {
    // the gate's refusals (OVERLOADED, DATABASE_UNAVAILABLE) as themselves, not inside Drizzle's DrizzleQueryError
    throw codedCause(e) ?? e;
  }
  return Array.isArray(result) ? result : (result.rows ?? []);
}

// An arbitrary constant: the advisory lock that serialises migrations across instances.
const MIGRATION_LOCK = 0x466f6c69;

/**
 * A postgres.js pool of at most `max` connections behind a gate of its own, and Drizzle over it:
 * the primary's, and each read replica's (src/db/replicas.ts).
 */
export function openGatedPostgres(
  url: string,
  options: {
    max: number;
    applicationName: string;
    statementTimeoutMs?: number;
    connectTimeoutMs?: number;
    planCacheMode?: PlanCacheMode;
    onAvailability?: (state: AvailabilityState, previous: AvailabilityState, cause?: unknown) => void;
    /** A read replica's: where a statement it cannot run for a connection reason runs instead (see failoverPostgresClient). */
    fallback?: { gated: (unit?: SqlStats) => postgres.Sql; onFail: (cause: unknown) => void };
    /**
     * `url` is a pooler in transaction mode: consecutive statements may run on different server
     * connections, so none is prepared by name (the next might not find it) and no setting is sent
     * at start-up (PgBouncer refuses what it does not know); the pooler's own `query_timeout`, or the
     * role's `statement_timeout`, stands in for the pool's.
     */
    pooled?: boolean;
  },
) {
  const connectTimeout = (options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS) / 1000;
  const pooled = options.pooled ?? false;
  const client = postgres(url, {
    max: options.max,
    idle_timeout: 30,
    connect_timeout: connectTimeout,
    backoff: reconnectBackoff,
    onnotice: () => {},
    prepare: !pooled,
    connection: {
      application_name: options.applicationName,
      ...(options.statementTimeoutMs && !pooled ? { statement_timeout: options.statementTimeoutMs } : {}),
      ...(options.planCacheMode && !pooled ? { plan_cache_mode: options.planCacheMode } : {}),
    },
  });
  // the probe has a connection of its own: a full pool must not make the database look down
  const prober = oneConnection(() =>
    postgres(url, {
      max: 1,
      idle_timeout: 5,
      connect_timeout: connectTimeout,
      backoff: reconnectBackoff,
      onnotice: () => {},
      prepare: !pooled,
      connection: { application_name: `${options.applicationName}:probe`.slice(-63), ...(pooled ? {} : { statement_timeout: 2000 }) },
    }),
  );
  const availability = createAvailability({
    // bounded here too: behind a pooler no statement_timeout reaches the server, and its queue has no end of its own
    probe: async () => void (await prober.run(PROBE_TIMEOUT_MS, (sql) => sql`select 1`)),
    onChange: options.onAvailability,
  });
  const pool = createPoolGate(options.max, { availability });
  const prepare = createPreparePolicy();
  const { fallback } = options;
  /** The client a statement of `unit` goes through: this pool's gate, and for a replica the primary after it. */
  const gated = (unit?: SqlStats) => gatePostgresClient(client, pool, prepare, unit);
  const statements = (unit?: SqlStats) => (fallback ? failoverPostgresClient(gated(unit), fallback.gated(unit), fallback.onFail) : gated(unit));
  const db = scopable((unit) => (unit ? drizzlePostgres(statements(unit)) : drizzlePostgres(statements(), { schema })) as unknown as Db);
  const close = async () => {
    availability.stop();
    await Promise.all([client.end({ timeout: 5 }), prober.end()]);
  };
  return { client, pool, db, gated, availability, close };
}

/** A sampled plan of a slow statement waits behind every request (see PRIORITIES), and gives up 10 s after it was asked for. */
const background = (): SqlStats => ({ statements: 0, priority: 'background', patienceMs: 10_000, arrivedAt: performance.now() });

/** The embedded database is in this process: it is always reachable. */
const ALWAYS_UP: Availability = { state: 'up', down: false, failed() {}, check: async () => {}, onDown: () => () => {}, stop() {} };

export async function createDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.databaseUrl) {
    // host and pid tell this process's connections from other instances' in pg_stat_activity
    // (63 bytes is PostgreSQL's limit for a name)
    const applicationName = `foliograph:${hostname()}:${process.pid}`.slice(-63);
    const pooled = Boolean(options.directUrl);
    const { client, pool, db, gated, availability, close } = openGatedPostgres(options.databaseUrl, {
      max: options.dbPoolMax,
      applicationName,
      statementTimeoutMs: options.statementTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs,
      planCacheMode: options.planCacheMode,
      onAvailability: options.onAvailability,
      pooled,
    });
    // what needs a session of its own bypasses a pooler
    const direct = options.directUrl ?? options.databaseUrl;
    /** A connection of its own (outside the gate) for `role`, opened on first use and closed with the database. */
    const session =
      (role: string, settings: { statementTimeoutMs?: number; idleTimeoutS?: number; connectTimeoutS?: number } = {}) =>
      () =>
        postgres(direct, {
          max: 1,
          idle_timeout: settings.idleTimeoutS ?? 60,
          connect_timeout: settings.connectTimeoutS ?? 2,
          onnotice: () => {},
          connection: {
            application_name: `${applicationName}:${role}`.slice(-63),
            ...(settings.statementTimeoutMs ? { statement_timeout: settings.statementTimeoutMs } : {}),
          },
        });
    // The pool's idle connections are read over a connection of their own, so that a scrape of
    // /metrics never waits in the line it is measuring; it closes when scrapes stop.
    const stats = oneConnection(session('stats', { statementTimeoutMs: 2000, connectTimeoutS: 5 }));
    const positions = oneConnection(session('position', { statementTimeoutMs: 2000 }));
    // LISTEN holds a session: postgres.js keeps one connection for it and listens again after reconnecting
    let listening: postgres.Sql | undefined;
    const listener = pooled ? () => (listening ??= session('listen', { idleTimeoutS: 0, connectTimeoutS: 5 })()) : () => client;
    const url = new URL(direct);
    return {
      db,
      driver: 'postgres',
      gated,
      // the database itself, whether reached through a pooler or not: instances on it share caches
      identity: `postgres://${url.hostname}:${url.port || '5432'}${url.pathname}`,
      pool,
      availability,
      // over the probe's own connection: a ping must not wait behind the requests in the pool
      ping: () => availability.check(),
      async explain(query, params) {
        const plan = await pool.run(
          async () => await client.unsafe<{ 'QUERY PLAN': string }[]>(`explain ${query}`, params as postgres.ParameterOrJSON<never>[]),
          'other',
          background(),
        );
        return plan.map((r) => r['QUERY PLAN']);
      },
      async idleConnections() {
        // behind a pooler, server connections carry the name of whichever client used them last:
        // what is idle is what this process's pool does not use of its connections
        if (pooled) return Math.max(0, options.dbPoolMax - pool.active);
        const [row] = await stats.run(
          7000, // its connect_timeout and statement_timeout, and a margin: for a connection that went silent
          (sql) => sql`select count(*)::int as idle from pg_stat_activity where application_name = ${applicationName} and state = 'idle'`,
        );
        return Number(row.idle);
      },
      async walPosition() {
        const [row] = await positions.run(
          2000, // a write's answer waits on it (see settleWrite in app.ts); the replicas' checks sample it too
          (sql) => sql`select pg_current_wal_lsn()::text as written, pg_current_wal_insert_lsn()::text as inserted`,
        );
        return { written: String(row.written), inserted: String(row.inserted) };
      },
      async listen(channel, onMessage, onRelisten) {
        let listens = 0;
        const { unlisten } = await listener().listen(channel, onMessage, () => {
          if (listens++ > 0) onRelisten?.();
        });
        return unlisten;
      },
      async exclusive(fn) {
        // the lock lives on a connection of its own: taken from the pool, it could leave none for
        // the work it guards (with DB_POOL_MAX=1, none at all)
        // (and bypasses a pooler: a session's lock and its unlock must reach the same backend)
        const lock = postgres(direct, {
          max: 1,
          connect_timeout: 10,
          onnotice: () => {},
          connection: { application_name: `${applicationName}:lock`.slice(-63) },
        });
        try {
          await lock`select pg_advisory_lock(${MIGRATION_LOCK})`;
          return await fn();
        } finally {
          await lock`select pg_advisory_unlock(${MIGRATION_LOCK})`.catch(() => {});
          await lock.end({ timeout: 5 });
        }
      },
      async close() {
        await Promise.all([close(), stats.end(), positions.end(), listening?.end({ timeout: 1 })]);
      },
    };
  }

  const memory = options.pgliteDataDir.startsWith('memory://');
  const release = memory ? () => {} : lockDataDir(options.pgliteDataDir);
  let client: PGlite;
  try {
    client = await PGlite.create(options.pgliteDataDir);
  } catch (e) {
    release();
    throw e;
  }
  // PGlite runs one statement at a time; its gate makes the line in front of it visible
  const pool = createPoolGate(1);
  const db = scopable(
    (unit) => (unit ? drizzlePglite(gatePgliteClient(client, pool, unit)) : drizzlePglite(gatePgliteClient(client, pool), { schema })) as unknown as Db,
  );
  return {
    db,
    driver: 'pglite',
    identity: memory ? `memory:${randomUUID()}` : `pglite:${resolve(options.pgliteDataDir)}`,
    pool,
    availability: ALWAYS_UP,
    async ping() {
      await client.query('select 1');
    },
    async explain(query, params) {
      const plan = await pool.run(() => client.query<{ 'QUERY PLAN': string }>(`explain ${query}`, params), 'other', background());
      return plan.rows.map((r) => r['QUERY PLAN']);
    },
    async idleConnections() {
      return pool.active === 0 ? 1 : 0;
    },
    async listen(channel, onMessage) {
      const stop = await client.listen(channel, onMessage);
      return () => stop();
    },
    // PGlite has one connection in one process: everything is already exclusive.
    exclusive: (fn) => fn(),
    async close() {
      try {
        await client.close();
      } finally {
        release();
      }
    },
  };
}
