// What the surge benchmarks share (bench/cache-surge.ts, bench/incident.ts): a seeded PostgreSQL
// database, foliograph servers started on it with the environment a side asks for, and the surge
// itself (the load command's mix of dashboards and quotes, Zipf-distributed) driven by autocannon,
// with the SQL each side cost read from its /metrics.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import postgres from 'postgres';
import { signUserToken } from '../src/admission/tokens.js';
import { QUOTE, SCENARIOS, zipf } from '../src/tools/load/scenarios.js';
import { seededRandom } from '../src/tools/random.js';

export const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/foliograph_bench';
const SECRET = 'bench-secret-0123456789abcdef0123456789';
export const say = (m: string) => process.stderr.write(`${m}\n`);

/** A numeric option `--name N` of the command line, or `fallback`. */
export function numberOption(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
}

/** Creates the benchmark database and seeds it with `db:seed --scale N` when it has too few load users. */
export async function ensureDatabase(scale: number): Promise<void> {
  const url = new URL(DATABASE_URL);
  const name = url.pathname.slice(1);
  url.pathname = '/postgres';
  const admin = postgres(url.toString(), { max: 1, onnotice: () => {} });
  const [exists] = await admin`select 1 from pg_database where datname = ${name}`;
  if (!exists) await admin.unsafe(`create database "${name}"`);
  await admin.end();
  const db = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  const [row] = await db`select count(*)::int as n from information_schema.tables where table_name = 'users'`;
  const users = row.n ? (await db`select count(*)::int as n from users where email like 'load-%'`)[0].n : 0;
  await db.end();
  if (users < scale * 25) {
    say(`seeding ${DATABASE_URL} with --scale ${scale} (once)`);
    const seeded = spawnSync('npm', ['run', '--silent', 'db:seed', '--', '--scale', String(scale)], {
      env: { ...process.env, DATABASE_URL },
      stdio: 'inherit',
    });
    if (seeded.status !== 0) throw new Error('seeding failed');
  }
}

/** Tokens of the seeded load users (at most 500) and every instrument's symbol. */
export async function surgeTargets(): Promise<{ tokens: string[]; symbols: string[] }> {
  const db = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  const users = await db`select id from users where email like 'load-%' order by id limit 500`;
  const symbols = (await db`select symbol from instruments order by symbol`).map((r) => r.symbol as string);
  await db.end();
  const tokens = await Promise.all(users.map((u) => signUserToken(SECRET, u.id as number, '1h')));
  return { tokens, symbols };
}

/** A production foliograph on `port` over the benchmark database, ready; `env` is the side's own. */
export async function startServer(port: number, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: {
      ...process.env,
      DATABASE_URL,
      PORT: String(port),
      JWT_SECRET: SECRET,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      RATE_LIMIT_COST_PER_MINUTE: '1000000000',
      DB_POOL_MAX: '10',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; i < 200; i++) {
    if ((await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.ok) return child;
    await sleep(100);
  }
  throw new Error('server did not become ready');
}

export async function stopServer(child: ChildProcess): Promise<void> {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}

/** Three seconds of one quote on ten connections: the JIT and the pools warm before a side is measured. */
export async function warmUp(port: number, symbol: string): Promise<void> {
  await autocannon({
    url: `http://127.0.0.1:${port}/graphql`,
    connections: 10,
    duration: 3,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: QUOTE, variables: { s: symbol } }),
  });
}

async function sqlStatements(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/^foliograph_sql_statements_total (\d+)/m.exec(text)?.[1] ?? 0);
}

export interface Outcome {
  requests: number;
  rps: number;
  /** Answers 200 per second. */
  okPerSecond: number;
  p50: number;
  p99: number;
  /** Answers other than 2xx, and connection errors. */
  errors: number;
  /** Of those, 503 (shed). */
  shed: number;
  sqlPerSecond: number;
  sqlPerRequest: number;
}

/** The surge against the server on `port`: `connections` clients for `seconds`, 70% dashboards and 30% quotes. */
export async function surge(port: number, targets: { tokens: string[]; symbols: string[] }, connections: number, seconds: number): Promise<Outcome> {
  const random = seededRandom(42);
  const pick = { user: zipf(targets.tokens.length, random), symbol: zipf(targets.symbols.length, random) };
  const before = await sqlStatements(port);
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/graphql`,
    connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        setupRequest: (request) => {
          const next = SCENARIOS.surge.next(targets, random, pick);
          return { ...request, headers: next.headers, body: next.body };
        },
      },
    ],
  });
  const statements = (await sqlStatements(port)) - before;
  const requests = result.requests.total;
  return {
    requests,
    rps: result.requests.average,
    okPerSecond: result['2xx'] / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx,
    shed: result.statusCodeStats?.['503']?.count ?? 0,
    sqlPerSecond: statements / seconds,
    sqlPerRequest: requests ? statements / requests : 0,
  };
}
