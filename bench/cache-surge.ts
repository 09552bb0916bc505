// The surge, replayed: many users at once, Zipf-distributed over users and instruments, asking for
// their dashboards and for instrument quotes. The same load runs twice in one run, against a server
// with the response cache (and hot-entity cache) off, then on, on the same PostgreSQL database, and
// the report gives each side's throughput, latency, SQL statements per second and per request, and
// the ratios between them. Nothing here is a pass/fail test: the machine is shared and noisy.
//
//   npm run bench:cache [-- --connections 200 --seconds 20 --scale 10]
//
// BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/foliograph_bench) is created and
// seeded with `db:seed --scale N` when it has no load users yet.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import postgres from 'postgres';
import { signUserToken } from '../src/admission/tokens.js';
import { DASHBOARD, QUOTE, SCENARIOS, zipf } from '../src/tools/load/scenarios.js';
import { seededRandom } from '../src/tools/random.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const CONNECTIONS = opt('connections', 200);
const SECONDS = opt('seconds', 20);
const SCALE = opt('scale', 10);
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/foliograph_bench';
const SECRET = 'bench-secret-0123456789abcdef0123456789';
const say = (m: string) => process.stderr.write(`${m}\n`);

async function ensureDatabase(): Promise<void> {
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
  if (users < SCALE * 25) {
    say(`seeding ${DATABASE_URL} with --scale ${SCALE} (once)`);
    const seeded = spawnSync('npm', ['run', '--silent', 'db:seed', '--', '--scale', String(SCALE)], {
      env: { ...process.env, DATABASE_URL },
      stdio: 'inherit',
    });
    if (seeded.status !== 0) throw new Error('seeding failed');
  }
}

async function startServer(port: number, env: Record<string, string>): Promise<ChildProcess> {
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

async function sqlStatements(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/^foliograph_sql_statements_total (\d+)/m.exec(text)?.[1] ?? 0);
}

interface Outcome {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  sqlPerSecond: number;
  sqlPerRequest: number;
}

async function surge(port: number, tokens: string[], symbols: string[]): Promise<Outcome> {
  // the load command's surge mix: 70% dashboards (private, per user), 30% quotes (public, shared)
  const random = seededRandom(42);
  const pick = { user: zipf(tokens.length, random), symbol: zipf(symbols.length, random) };
  const url = `http://127.0.0.1:${port}/graphql`;
  const before = await sqlStatements(port);
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: SECONDS,
    requests: [
      {
        method: 'POST',
        setupRequest: (request) => {
          const next = SCENARIOS.surge.next({ tokens, symbols }, random, pick);
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
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx,
    sqlPerSecond: statements / SECONDS,
    sqlPerRequest: requests ? statements / requests : 0,
  };
}

/** Medians of one connection asking for one cached answer over and over: the server's own time (its Server-Timing header) and the round trip. */
async function hitLatency(port: number, token: string): Promise<{ server: number; roundTrip: number }> {
  const body = JSON.stringify({ query: DASHBOARD });
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  const times: number[] = [];
  const server: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const started = performance.now();
    const res = await fetch(`http://127.0.0.1:${port}/graphql`, { method: 'POST', headers, body });
    await res.text();
    if (i < 50) continue; // the first ones warm the cache and the JIT
    times.push(performance.now() - started);
    server.push(Number(/dur=([\d.]+)/.exec(res.headers.get('server-timing') ?? '')?.[1] ?? NaN));
  }
  const median = (xs: number[]) => Number(xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)].toFixed(2));
  return { server: median(server), roundTrip: median(times) };
}

async function main() {
  await ensureDatabase();
  const db = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  const users = await db`select id from users where email like 'load-%' order by id limit 500`;
  const symbols = (await db`select symbol from instruments order by symbol`).map((r) => r.symbol as string);
  await db.end();
  const tokens = await Promise.all(users.map((u) => signUserToken(SECRET, u.id as number, '1h')));
  say(`${tokens.length} users, ${symbols.length} instruments, ${CONNECTIONS} connections, ${SECONDS} s per side`);

  const sides: [string, Record<string, string>][] = [
    ['caching off', { RESPONSE_CACHE: 'off', HOT_CACHE_TTL_MS: '0' }],
    ['caching on', { RESPONSE_CACHE: 'on' }],
  ];
  const outcomes: Record<string, Outcome & { hit?: { server: number; roundTrip: number } }> = {};
  for (const [label, env] of sides) {
    const port = 4700 + Object.keys(outcomes).length;
    const server = await startServer(port, env);
    try {
      say(`${label}: warming up`);
      await autocannon({
        url: `http://127.0.0.1:${port}/graphql`,
        connections: 10,
        duration: 3,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: QUOTE, variables: { s: symbols[0] } }),
      });
      say(`${label}: surge`);
      outcomes[label] = await surge(port, tokens, symbols);
      if (env.RESPONSE_CACHE === 'on') outcomes[label].hit = await hitLatency(port, tokens[0]);
    } finally {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
    }
  }

  const off = outcomes['caching off'];
  const on = outcomes['caching on'];
  const row = (label: string, o: Outcome) =>
    `| ${label} | ${o.rps.toFixed(0)} | ${o.p50} | ${o.p99} | ${o.sqlPerSecond.toFixed(0)} | ${o.sqlPerRequest.toFixed(2)} | ${o.errors} |`;
  const lines = [
    `surge: ${CONNECTIONS} connections, ${SECONDS} s each, 70% dashboards of ${tokens.length} Zipf-distributed users, 30% quotes of ${symbols.length} Zipf-distributed instruments`,
    '',
    '| server | req/s | p50 ms | p99 ms | SQL/s | SQL/request | errors |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    row('caching off', off),
    row('caching on', on),
    '',
    `throughput: ${(on.rps / off.rps).toFixed(1)}× with caching; SQL per request: ${(off.sqlPerRequest / Math.max(on.sqlPerRequest, 1e-9)).toFixed(1)}× fewer; p99: ${(off.p99 / Math.max(on.p99, 1e-9)).toFixed(1)}× lower`,
    `a cached dashboard, one connection: median server time ${on.hit?.server} ms (Server-Timing), median round trip ${on.hit?.roundTrip} ms`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((e) => {
  say(`bench failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
