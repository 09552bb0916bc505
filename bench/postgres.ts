// The benchmark's database: a PostgreSQL cluster of its own (kept in a directory and reused between
// runs, pg_stat_statements loaded so that PostgreSQL itself counts every server's statements), or an
// existing database given by URL; seeded once with the project's own `db:seed --scale N`.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import postgres from 'postgres';
import { privatePostgresBin } from '../test/helpers/private-pg.js';

const quiet = { max: 1, onnotice: () => {} };

export interface ClusterOptions {
  /** The data directory: created by initdb when empty, reused when it holds a cluster. */
  dir: string;
  port: number;
}

export interface Cluster {
  /** The `postgres` database of the cluster. */
  url: string;
  /** Stops the server if this run started it (a server found running is left running). */
  stop(): void;
}

/** A server binary's command line, as the `postgres` user when we are root (PostgreSQL refuses to run as root). */
function asPostgres(cmd: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

const run = (cmd: string, args: string[]) => execFileSync(...asPostgres(cmd, args), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });

export function startCluster({ dir, port }: ClusterOptions, say: (m: string) => void): Cluster {
  if (!privatePostgresBin) throw new Error('no PostgreSQL server binaries (Debian: apt-get install postgresql); or pass --database-url');
  const bin = privatePostgresBin;
  const data = resolve(dir);
  if (!existsSync(join(data, 'PG_VERSION'))) {
    say(`creating a PostgreSQL cluster in ${data}`);
    mkdirSync(data, { recursive: true, mode: 0o700 });
    if (process.getuid?.() === 0) {
      execFileSync('chown', ['postgres:postgres', data]);
      // the postgres user must be able to reach the directory: its parents may be root's alone
      // (.data is made 0700 by whoever made it first)
      for (let dir = dirname(data); dir !== dirname(dir); dir = dirname(dir)) {
        if ((statSync(dir).mode & 0o011) === 0) chmodSync(dir, statSync(dir).mode | 0o011);
      }
    }
    run(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  }
  const pgctl = (...args: string[]) => run(join(bin, 'pg_ctl'), ['-D', data, ...args]);
  const running = spawnSync(...asPostgres(join(bin, 'pg_ctl'), ['-D', data, 'status'])).status === 0;
  if (!running) {
    // fsync off: the data can always be seeded again; what is measured is reads
    const options = [
      `-p ${port}`,
      `-k ${data}`,
      '-c listen_addresses=127.0.0.1',
      '-c shared_preload_libraries=pg_stat_statements',
      '-c max_connections=200',
      '-c fsync=off',
      '-c synchronous_commit=off',
    ].join(' ');
    pgctl('-l', join(data, 'log'), '-w', '-t', '60', '-o', options, 'start');
    say(`PostgreSQL started on port ${port} (${data})`);
  } else {
    say(`PostgreSQL already running in ${data}: reusing it`);
  }
  // a server found running may have been started on another port: its postmaster.pid says which
  const listening = running ? Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[3]) || port : port;
  return {
    url: `postgres://postgres@127.0.0.1:${listening}/postgres`,
    stop() {
      if (running) return;
      try {
        pgctl('-m', 'fast', '-w', 'stop');
      } catch {
        /* already stopped */
      }
    },
  };
}

/** Creates the database if it does not exist. */
export async function ensureDatabase(url: string): Promise<void> {
  const admin = new URL(url);
  const name = decodeURIComponent(admin.pathname.slice(1));
  admin.pathname = '/postgres';
  const sql = postgres(admin.toString(), quiet);
  try {
    const [exists] = await sql`select 1 from pg_database where datname = ${name}`;
    if (!exists) await sql.unsafe(`create database "${name.replaceAll('"', '""')}"`);
  } finally {
    await sql.end();
  }
}

/** The load users of the scale seed (`load-NNNNNN@example.com`), by id; none when the tables are missing. */
export async function loadUsers(url: string): Promise<number[]> {
  const sql = postgres(url, quiet);
  try {
    const [t] = await sql`select to_regclass('public.users') is not null as present`;
    if (!t.present) return [];
    const found = await sql`select id from users where email like 'load-%@example.com' order by id`;
    return found.map((r) => Number(r.id));
  } finally {
    await sql.end();
  }
}

/** Seeds with `npm run db:seed -- --scale N` unless the database already has that many load users. */
export async function ensureSeeded(url: string, scale: number, usersPerUnit: number, say: (m: string) => void): Promise<number[]> {
  await ensureDatabase(url);
  let users = await loadUsers(url);
  if (users.length >= scale * usersPerUnit) {
    say(`database already seeded: ${users.length} load users`);
    return users;
  }
  say(`seeding with db:seed --scale ${scale} (once)`);
  const seeded = spawnSync('npm', ['run', '--silent', 'db:seed', '--', '--scale', String(scale)], {
    env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (seeded.status !== 0) throw new Error('db:seed failed');
  users = await loadUsers(url);
  if (users.length < scale * usersPerUnit) throw new Error(`after seeding, only ${users.length} load users`);
  return users;
}

/**
 * Statements executed in one database as pg_stat_statements counts them (every client's, so every
 * server is counted the same way), leaving out this counter's own queries.
 */
export interface SqlCounter {
  reset(): Promise<void>;
  /** Statements executed since the reset, and the time PostgreSQL spent executing them (ms). */
  read(): Promise<{ statements: number; execMs: number }>;
  close(): Promise<void>;
}

/**
 * A counter when the extension exists in the database (`create`: made so first, in our own cluster,
 * which loads it) and answers; null otherwise ("n/a").
 */
export async function sqlCounter(url: string, create: boolean): Promise<SqlCounter | null> {
  const sql = postgres(url, quiet);
  try {
    if (create) await sql`create extension if not exists pg_stat_statements`;
    await sql`select count(*) from pg_stat_statements`;
  } catch {
    await sql.end();
    return null;
  }
  // resetting only this database's entries leaves other users of a shared server alone
  const read = async () => {
    const [row] = await sql`select coalesce(sum(calls), 0)::bigint as n, coalesce(sum(total_exec_time), 0)::float8 as ms from pg_stat_statements
                            where dbid = (select oid from pg_database where datname = current_database())
                              and query not like '%pg_stat_statements%'`;
    return { statements: Number(row.n), execMs: Number(row.ms) };
  };
  let base = { statements: 0, execMs: 0 };
  return {
    async reset() {
      try {
        await sql`select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)`;
        base = { statements: 0, execMs: 0 };
      } catch {
        base = await read(); // not allowed to reset: count from here instead
      }
    },
    read: async () => {
      const now = await read();
      return { statements: now.statements - base.statements, execMs: now.execMs - base.execMs };
    },
    close: () => sql.end(),
  };
}
