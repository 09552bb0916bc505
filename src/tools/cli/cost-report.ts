import { costReport } from '../../limits/cost-recorder.js';
import { option, runCommand, say } from './common.js';

// npm run cost:report [-- --min-samples N] [--json] — the operations and list fields whose @cost and
// @listSize are furthest from what they really cost, as the running servers recorded them.
const args = process.argv.slice(2);
const minSamples = Number(option(args, 'min-samples') ?? 1);
await runCommand(async ({ database }) => {
  const report = await costReport(database.db, Number.isFinite(minSamples) && minSamples > 0 ? minSamples : 1);
  if (args.includes('--json')) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  if (report.length === 0) {
    say('nothing recorded yet: servers flush what they observe every 30 s');
    return;
  }
  const fixed = (n: number, d = 1) => n.toFixed(d);
  const lines = [
    ['kind', 'name', 'samples', 'estimated', 'actual', 'actual/estimated', 'sql/op', 'sql ms/op'].join('\t'),
    ...report.map((r) =>
      [r.kind, r.name, r.samples, fixed(r.estimated), fixed(r.actual), fixed(r.ratio, 2), fixed(r.sqlStatements), fixed(r.sqlMs, 2)].join('\t'),
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  say('furthest from the estimate first: a ratio far below 1 means the weights overcharge, far above 1 that they undercharge');
});
