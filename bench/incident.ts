// The incident, replayed against three designs in one run, on the same PostgreSQL database: unbatched,
// N+1 by key (every loader key its own statement, nothing cached, nothing shed), batching only
// (DataLoader batches, nothing cached, nothing shed), and foliograph as it runs (batching, the
// response and hot-entity caches, admission by the database's health). Each gets the same surge (the
// load command's mix: 70% dashboards of Zipf-distributed users, 30% quotes) on the same number of
// connections, and the report gives each design's throughput (all answers, and answers 200), p50,
// p99, SQL statements per request and per second, and their ratios to the unbatched design.
//
//   npm run bench -- incident [--connections 200] [--seconds 15] [--scale 10] [--pool 10]
//
// BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/foliograph_bench) is created and
// seeded with `db:seed --scale N` when it has no load users yet. Nothing here passes or fails: the
// machine is shared and noisy, and only the ratios measured side by side mean anything.
import { ensureDatabase, numberOption, say, startServer, stopServer, surge, surgeTargets, warmUp, type Outcome } from './surge.js';

// nothing shed: a line for connections as long as the surge makes it
const UNBOUNDED = { DB_QUEUE_MAX: '1000000', ADMISSION_TARGET_WAIT_MS: '1000000', ADMISSION_MAX_COST_IN_FLIGHT: '1000000000' };

const DESIGNS: [string, Record<string, string>][] = [
  ['unbatched (N+1 by key)', { LOADER_BATCHING: 'off', RESPONSE_CACHE: 'off', HOT_CACHE_TTL_MS: '0', ...UNBOUNDED }],
  ['batching only', { RESPONSE_CACHE: 'off', HOT_CACHE_TTL_MS: '0', ...UNBOUNDED }],
  ['foliograph', {}],
];

export async function incidentBenchmark(args: string[]): Promise<void> {
  if (args.includes('--help')) {
    process.stdout.write('npm run bench -- incident [--connections 200] [--seconds 15] [--scale 10] [--pool 10]\n');
    return;
  }
  const connections = numberOption(args, 'connections', 200);
  const seconds = numberOption(args, 'seconds', 15);
  const scale = numberOption(args, 'scale', 10);
  const pool = numberOption(args, 'pool', 10);
  await ensureDatabase(scale);
  const targets = await surgeTargets();
  say(`${targets.tokens.length} users, ${targets.symbols.length} instruments, ${connections} connections, ${seconds} s per design, DB_POOL_MAX=${pool}`);
  const outcomes: [string, Outcome][] = [];
  for (const [index, [label, env]] of DESIGNS.entries()) {
    const port = 4750 + index;
    const server = await startServer(port, { DB_POOL_MAX: String(pool), ...env });
    try {
      say(`${label}: warming up`);
      await warmUp(port, targets.symbols[0]);
      say(`${label}: surge`);
      outcomes.push([label, await surge(port, targets, connections, seconds)]);
    } finally {
      await stopServer(server);
    }
  }
  const unbatched = outcomes[0][1];
  const ratio = (a: number, b: number) => {
    const r = a / Math.max(b, 1e-9);
    return r >= 0.1 || r === 0 ? `${r.toFixed(1)}×` : `1/${Math.round(1 / r)}`;
  };
  const lines = [
    `the incident's surge: ${connections} connections, ${seconds} s per design, 70% dashboards of ${targets.tokens.length} Zipf-distributed users, 30% quotes of ${targets.symbols.length} instruments, DB_POOL_MAX=${pool}`,
    '',
    '| design | req/s | 200/s | p50 ms | p99 ms | SQL/request | SQL/s | shed (503) | other errors | 200/s vs unbatched | p99 vs unbatched | SQL/request vs unbatched |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...outcomes.map(
      ([label, o]) =>
        `| ${label} | ${o.rps.toFixed(0)} | ${o.okPerSecond.toFixed(0)} | ${o.p50} | ${o.p99} | ${o.sqlPerRequest.toFixed(2)} | ${o.sqlPerSecond.toFixed(0)} | ${o.shed} | ${o.errors - o.shed} | ` +
        `${ratio(o.okPerSecond, unbatched.okPerSecond)} | ${ratio(o.p99, unbatched.p99)} | ${ratio(o.sqlPerRequest, unbatched.sqlPerRequest)} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
