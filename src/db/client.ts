import { PGlite } from '@electric-sql/pglite';
import type { SQL } from 'drizzle-orm';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import postgres from 'postgres';
import type { Config } from '../config.js';
import { lockDataDir } from './pglite-lock.js';
import * as schema from './schema.js';
import { sqlStatsLogger } from './sql-stats.js';

/** The one database type the rest of the code sees, whichever driver is behind it. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  driver: 'pglite' | 'postgres';
  /** Answers when the database can run a statement; throws otherwise. */
  ping(): Promise<void>;
  /** This process's connections by state, as the database sees them (PGlite: its one connection). */
  connections(): Promise<{ inUse: number; idle: number }>;
  /** Calls `onMessage` with every NOTIFY payload on `channel` (from any process); resolves to stop. */
  listen(channel: string, onMessage: (payload: string) => void): Promise<() => Promise<void>>;
  /** Runs `fn` holding a cluster-wide lock (migrations by several instances at once). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export type DatabaseOptions = Pick<Config, 'databaseUrl' | 'pgliteDataDir' | 'dbPoolMax'> & {
  /** PostgreSQL cancels any statement of this pool running longer (the server's request deadline). */
  statementTimeoutMs?: number;
};

/** Rows of a raw statement; the two drivers shape `execute` results differently. */
export async function rows<T>(db: Db, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown as { rows?: T[] } | T[];
  return Array.isArray(result) ? result : (result.rows ?? []);
}

// An arbitrary constant: the advisory lock that serialises migrations across instances.
const MIGRATION_LOCK = 0x466f6c69;

export async function createDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.databaseUrl) {
    const client = postgres(options.databaseUrl, {
      max: options.dbPoolMax,
      idle_timeout: 30,
      connect_timeout: 10,
      onnotice: () => {},
      connection: {
        // the pid tells this process's connections from other instances' in pg_stat_activity
        application_name: `foliograph:${process.pid}`,
        ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}),
      },
    });
    const db = drizzlePostgres(client, { schema, logger: sqlStatsLogger }) as unknown as Db;
    return {
      db,
      driver: 'postgres',
      async ping() {
        await client`select 1`;
      },
      async connections() {
        const [row] = await client`select count(*) filter (where state <> 'idle')::int as in_use, count(*) filter (where state = 'idle')::int as idle
          from pg_stat_activity where application_name = ${`foliograph:${process.pid}`} and pid <> pg_backend_pid()`;
        // this query's own connection is busy answering it: count it as idle
        return { inUse: Number(row.in_use), idle: Number(row.idle) + 1 };
      },
      async listen(channel, onMessage) {
        // postgres.js keeps one extra connection for LISTEN and re-listens after reconnecting
        const { unlisten } = await client.listen(channel, onMessage);
        return unlisten;
      },
      async exclusive(fn) {
        const lock = await client.reserve();
        try {
          await lock`select pg_advisory_lock(${MIGRATION_LOCK})`;
          return await fn();
        } finally {
          await lock`select pg_advisory_unlock(${MIGRATION_LOCK})`.catch(() => {});
          lock.release();
        }
      },
      async close() {
        await client.end({ timeout: 5 });
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
  const db = drizzlePglite(client, { schema, logger: sqlStatsLogger }) as unknown as Db;
  return {
    db,
    driver: 'pglite',
    async ping() {
      await client.query('select 1');
    },
    async connections() {
      return { inUse: 0, idle: 1 };
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
