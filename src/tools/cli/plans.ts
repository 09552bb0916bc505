import { formatProbe, formatSummary, runPlans } from '../plans.js';
import { option, runCommand, say } from './common.js';

// npm run db:plans [-- --max-ms 50] [--large-rows 10000] [--only TEXT] — EXPLAIN (ANALYZE, BUFFERS) of
// every loader's and mutation's SQL against a `db:seed --scale N` data set; exit 1 when a statement
// scans a large table sequentially or runs past the bound. Writes are rolled back. PostgreSQL only.
const args = process.argv.slice(2);

function positive(name: string, fallback: number): number {
  const text = option(args, name);
  const n = text === undefined ? fallback : Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    say(`error: --${name} takes a number greater than 0, got ${JSON.stringify(text)}`);
    process.exit(1);
  }
  return n;
}

const maxMs = positive('max-ms', 50);
const largeRows = positive('large-rows', 10_000);
const only = option(args, 'only');

// loadConfig treats an empty variable as unset; without it runCommand would open PGlite
if (!process.env.DATABASE_URL) {
  say('error: db:plans needs PostgreSQL: set DATABASE_URL to a database seeded with npm run db:seed -- --scale N (PGlite is not supported)');
  process.exit(1);
}

let failed = false;
await runCommand(async ({ config, database }) => {
  if (database.driver !== 'postgres' || !config.database.url) throw new Error('db:plans needs PostgreSQL (DATABASE_URL); PGlite is not supported');
  // EXPLAIN ANALYZE in a transaction of its own, with a statement timeout: directly, not through a pooler
  const report = await runPlans(database.db, config.database.directUrl ?? config.database.url, {
    maxMs,
    largeRows,
    defaultModel: config.forecasts.defaultModel,
    only,
    log: say,
  });
  for (const probe of report.probes) process.stdout.write(`${formatProbe(probe)}\n\n`);
  process.stdout.write(`${formatSummary(report)}\n`);
  failed = report.failed;
});
if (failed) process.exit(1);
