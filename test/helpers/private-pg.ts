import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A PostgreSQL cluster of a test's own, in a temporary directory on a free port, that the test may
 * stop, restart and kill (the shared server on 5432 is never touched). Needs the server binaries
 * (Debian's postgresql package); as root, the cluster runs as the `postgres` user.
 */
export interface PrivatePostgres {
  url: string;
  port: number;
  /** `pg_ctl restart -m fast`: connections are cut, the server is back at once. */
  restart(): void;
  /** `pg_ctl stop -m fast`. */
  stop(): void;
  start(): void;
  /** psql one statement as the superuser; returns its output. */
  psql(statement: string): string;
  /** `pg_ctl stop -m immediate`: the server dies at once, as in a crash. */
  kill(): void;
  /**
   * SIGSTOP to the server and every process of it: connections stay open and nothing answers, new
   * ones are accepted by the kernel and never greeted (a network partition, as a client sees it).
   */
  hang(): void;
  /** SIGCONT: it answers again. */
  wake(): void;
  /** A standby's: runs `fn` with its WAL replay paused (`pg_wal_replay_pause()`), and resumes it after. */
  replayPaused<T>(fn: () => Promise<T>): Promise<T>;
  destroy(): void;
}

const BIN_DIRS = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin'];

export const privatePostgresBin = BIN_DIRS.find((d) => existsSync(join(d, 'initdb')));

/** A free TCP port on 127.0.0.1, asked of the kernel. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A cluster of the test's own; with `standbyOf`, a streaming replica of that cluster instead:
 * `pg_basebackup -R` of it into a temporary directory, started on a port of its own (hot standby).
 */
export async function startPrivatePostgres(of: { standbyOf?: PrivatePostgres } = {}): Promise<PrivatePostgres> {
  if (!privatePostgresBin) throw new Error('no PostgreSQL server binaries');
  const bin = privatePostgresBin;
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'foliograph-pg-'));
  chmodSync(dir, 0o777);
  const data = join(dir, 'data');
  const port = await freePort();
  const as = (cmd: string, args: string[]) =>
    execFileSync(root ? 'runuser' : cmd, root ? ['-u', 'postgres', '--', cmd, ...args] : args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
  if (of.standbyOf) {
    // a copy of the primary streaming its WAL from it (initdb's trust rules allow replication from 127.0.0.1)
    as(join(bin, 'pg_basebackup'), ['-h', '127.0.0.1', '-p', String(of.standbyOf.port), '-U', 'postgres', '-D', data, '-R', '-X', 'stream', '--no-sync']);
  } else {
    as(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  }
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=100`;
  const pgctl = (...args: string[]) => as(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', ...args]);
  const start = () => pgctl('-o', options, 'start');
  start();
  const psql = (statement: string) =>
    as('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-AtX', '-v', 'ON_ERROR_STOP=1', '-c', statement]).trim();
  /** The postmaster and its children, by the pid the postmaster wrote. */
  const signalAll = (signal: 'STOP' | 'CONT') => {
    const pid = readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]!.trim();
    // the postmaster first when stopping (no new child is forked meanwhile), last when waking
    if (signal === 'STOP') execFileSync('kill', [`-${signal}`, pid]);
    execFileSync('pkill', [`-${signal}`, '-P', pid], { stdio: 'ignore' });
    if (signal === 'CONT') execFileSync('kill', [`-${signal}`, pid]);
  };
  let hung = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async replayPaused(fn) {
      psql('select pg_wal_replay_pause()');
      try {
        return await fn();
      } finally {
        psql('select pg_wal_replay_resume()');
      }
    },
    hang() {
      signalAll('STOP');
      hung = true;
    },
    wake() {
      signalAll('CONT');
      hung = false;
    },
    restart: () => void pgctl('-m', 'fast', '-o', options, 'restart'),
    stop: () => void pgctl('-m', 'fast', 'stop'),
    kill: () => void pgctl('-m', 'immediate', 'stop'),
    start: () => void start(),
    psql,
    destroy() {
      try {
        if (hung) signalAll('CONT');
        pgctl('-m', 'immediate', 'stop');
      } catch {
        /* already stopped */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
