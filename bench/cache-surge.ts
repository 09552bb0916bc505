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
import { DASHBOARD } from '../src/tools/load/scenarios.js';
import { ensureDatabase, numberOption, say, startServer, stopServer, surge, surgeTargets, warmUp, type Outcome } from './surge.js';

const args = process.argv.slice(2);
const CONNECTIONS = numberOption(args, 'connections', 200);
const SECONDS = numberOption(args, 'seconds', 20);
const SCALE = numberOption(args, 'scale', 10);

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
  await ensureDatabase(SCALE);
  const targets = await surgeTargets();
  const { tokens, symbols } = targets;
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
      await warmUp(port, symbols[0]);
      say(`${label}: surge`);
      outcomes[label] = await surge(port, targets, CONNECTIONS, SECONDS);
      if (env.RESPONSE_CACHE === 'on') outcomes[label].hit = await hitLatency(port, tokens[0]);
    } finally {
      await stopServer(server);
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
