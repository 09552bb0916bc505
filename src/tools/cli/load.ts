import { readFileSync, writeFileSync } from 'node:fs';
import { loadConfig } from '../../config.js';
import { htmlReport } from '../load/html.js';
import { formatReport, runLoad } from '../load/run.js';
import { judge, parseSlo } from '../load/slo.js';
import { SCENARIOS } from '../load/scenarios.js';
import { discoverTargets } from '../load/targets.js';
import { option, say } from './common.js';

// npm run load: runs a load scenario against a running server and prints a report (USAGE says how).
const args = process.argv.slice(2);

const USAGE = `usage: npm run load -- [--scenario NAME] [--url URL] [--seconds S] [--connections N] [--users N]
                        [--target-p99 MS] [--json] [--html FILE] [--slo FILE]
       npm run load -- --list | --help

Runs a load scenario against a running server and prints a report on stdout (a table, or JSON with --json).
  --scenario NAME     the scenario to run (default surge; --list names and describes them all)
  --url URL           the server's GraphQL endpoint (default http://127.0.0.1:4000/graphql)
  --seconds S         how long each stage runs (default 10)
  --connections N     the peak number of concurrent connections (default 100)
  --users N           how many users (ids 1..N) to sign in as (default 100)
  --target-p99 MS     the p99 a stage must hold in scenarios that step the rate (capacity; default 1000)
  --json              print the report as one JSON object
  --html FILE         also write the report as an HTML page with charts of throughput, latency and statuses over time
  --slo FILE          judge every stage by the objectives in FILE (JSON: p99Ms, maxFailedRatio, minSucceeded
                      by kind of request, stages); exit 1 when a stage breaks one
Tokens are signed with JWT_SECRET (the development secret when unset), which must be the server's; the partners
scenario takes its partner's API key from LOAD_API_KEY.
`;
const VALUED = ['--scenario', '--url', '--seconds', '--connections', '--users', '--target-p99', '--html', '--slo'];
const FLAGS = ['--json', '--list', '--help', '-h'];

function positive(name: string, fallback: number): number {
  const text = option(args, name);
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a whole number, at least 1; got ${text}`);
  return n;
}

try {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  // a mistyped option must not start a load run with defaults in its place
  for (let i = 0; i < args.length; i++) {
    if (VALUED.includes(args[i])) i++;
    else if (!FLAGS.includes(args[i])) throw new Error(`unknown option ${JSON.stringify(args[i])} (--help lists them)`);
  }
  if (args.includes('--list')) {
    for (const s of Object.values(SCENARIOS)) process.stdout.write(`${s.name.padEnd(11)} ${s.summary}\n`);
    process.exit(0);
  }
  const name = option(args, 'scenario') ?? 'surge';
  const scenario = SCENARIOS[name];
  if (!scenario) throw new Error(`unknown scenario "${name}"; scenarios: ${Object.keys(SCENARIOS).join(', ')} (--list describes them)`);
  const url = option(args, 'url') ?? 'http://127.0.0.1:4000/graphql';
  const seconds = positive('seconds', 10);
  const peak = positive('connections', 100);
  const users = positive('users', 100);
  const targetP99Ms = positive('target-p99', 1000);
  const htmlFile = option(args, 'html');
  const sloFile = option(args, 'slo');
  // a bad SLO file is found before the run, not after it
  const slo = sloFile === undefined ? undefined : parseSlo(readFileSync(sloFile, 'utf8'));
  const config = loadConfig();
  if (scenario.writes) say(`${scenario.name} WRITES to the server's database: ${scenario.summary}`);
  say(`finding users (ids 1..${users}) and instruments through ${url}`);
  scenario.prepare?.();
  // a partner's key comes from the environment, never the command line (where process lists show it)
  const apiKey = process.env.LOAD_API_KEY;
  if (scenario.needsApiKey && !apiKey) {
    throw new Error(
      `the ${scenario.name} scenario calls as a partner: set LOAD_API_KEY to its API key (npm run partner:create), with deploy/partner-example's manifest published for it (npm run pq:publish)`,
    );
  }
  const targets = { ...(await discoverTargets(url, { jwtSecret: config.auth.jwtSecret, users, withPortfolios: scenario.needsPortfolios })), apiKey };
  const refused = Object.entries(targets.refusals ?? {});
  say(
    `${targets.tokens.length} users, ${targets.symbols.length} instruments${refused.length ? ` (left out: ${refused.map(([c, n]) => `${c} ×${n}`).join(', ')})` : ''}; ${scenario.summary}`,
  );
  const report = await runLoad({ url, scenario, seconds, peak, targets, targetP99Ms, onProgress: say });
  const verdicts = slo ? judge(report, slo) : [];
  process.stdout.write(args.includes('--json') ? `${JSON.stringify({ ...report, ...(slo ? { slo: verdicts } : {}) })}\n` : `${formatReport(report)}\n`);
  if (htmlFile) {
    writeFileSync(htmlFile, htmlReport(report));
    say(`wrote ${htmlFile}`);
  }
  if (slo) {
    for (const v of verdicts) say(`SLO ${v.breaches.length ? 'BROKEN' : 'held'} in "${v.stage}"${v.breaches.length ? `: ${v.breaches.join('; ')}` : ''}`);
    if (verdicts.some((v) => v.breaches.length)) process.exitCode = 1;
  }
} catch (e) {
  say(`error: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
