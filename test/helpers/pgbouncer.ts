import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './private-pg.js';

/**
 * A PgBouncer of a test's own in front of a PostgreSQL server, in a temporary directory on a free
 * port, running in the foreground as a child process. Needs Debian's pgbouncer package (1.18 on
 * bookworm: no protocol-level prepared statements, which came in 1.21); as root, it runs as the
 * `postgres` user, since PgBouncer refuses to run as root.
 */
export interface PgBouncer {
  /** The upstream URL's database and user, through the pooler. */
  url: string;
  port: number;
  /** Everything PgBouncer wrote to stderr so far (its log). */
  log(): string;
  /** Stops PgBouncer (connections through it are cut) and removes its directory. */
  destroy(): Promise<void>;
}

export interface PgBouncerOptions {
  /** Server connections per database and user (default_pool_size); default 20. */
  poolSize?: number;
  /** When a server connection goes back to the pool: after each transaction (default) or when its client leaves. */
  mode?: 'transaction' | 'session';
  /** Seconds after which PgBouncer cancels a query (query_timeout); default 0, never. */
  queryTimeoutS?: number;
}

export const pgbouncerBin = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((p) => existsSync(p));

export async function startPgBouncer(upstreamUrl: string, options: PgBouncerOptions = {}): Promise<PgBouncer> {
  if (!pgbouncerBin) throw new Error('no pgbouncer binary (apt-get install pgbouncer)');
  const upstream = new URL(upstreamUrl);
  const user = decodeURIComponent(upstream.username || 'postgres');
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'foliograph-pgbouncer-'));
  chmodSync(dir, 0o777); // readable by the postgres user when we are root
  const port = await freePort();
  // trust: PgBouncer checks no password, only that the user is in the userlist; it logs in upstream
  // with the password written there (none for the trust-auth servers of the tests)
  writeFileSync(join(dir, 'userlist.txt'), `"${user}" "${decodeURIComponent(upstream.password)}"\n`);
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      // every database name goes upstream under its own name: tests create a database per file
      `* = host=${upstream.hostname} port=${upstream.port || '5432'}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      // SHOW POOLS and the like on the console database `pgbouncer`, in the simple query protocol
      `admin_users = ${user}`,
      `pool_mode = ${options.mode ?? 'transaction'}`,
      `default_pool_size = ${options.poolSize ?? 20}`,
      'max_client_conn = 1000',
      // no ignore_startup_parameters: foliograph behind a pooler sends none PgBouncer would refuse
      // the pooler's stand-in for the statement_timeout it cannot send: a query running longer is cancelled
      `query_timeout = ${options.queryTimeoutS ?? 0}`,
      // a failed login upstream (the server restarting) is retried after 1 s, not the default 15
      'server_login_retry = 1',
      'log_connections = 0',
      'log_disconnections = 0',
      '',
    ].join('\n'),
  );
  const ini = join(dir, 'pgbouncer.ini');
  const child = spawn(root ? 'runuser' : pgbouncerBin, root ? ['-u', 'postgres', '--', pgbouncerBin, ini] : [ini], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (chunk) => (log = (log + chunk).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const destroy = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM'); // runuser passes it on
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  // listening means the config was read; it connects upstream only when a client comes
  for (let waited = 0; !(await accepts(port)); waited += 50) {
    if (child.exitCode !== null || waited > 10_000) {
      await destroy();
      throw new Error(`pgbouncer did not listen on ${port}: ${log.slice(-500)}`);
    }
    await sleep(50);
  }
  const url = new URL(upstreamUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return { url: url.toString(), port, log: () => log, destroy };
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
