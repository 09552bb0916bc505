// How honest each model's intervals are on the demo series, walked forward with only the past at each
// step (src/domain/forecasting/backtest.ts): the share of realised returns inside the central interval
// at each level (50, 80, 90, 95, 99%), the shares below and above the 95% one (about 2.5% each when
// calibrated), the 95% interval's mean width, and Winkler's interval score (width plus 2/(1 − level)×
// any miss; lower is better) at 95%. The width ratio compares each model with the trailing-lognormal
// baseline run on the same rows (every model forecasts from the same first date, once GARCH and FHS
// have their two years or five years of history), so the table says both "does it hold what it
// claims, in both tails?" and "is it any narrower than the naive answer?".
//
//   npm run bench:forecasts [-- --models fhs,ewma,garch,trailing-lognormal]
//
// Prints a Markdown table on stdout (the README's), progress on stderr. Takes about a minute.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { backtest, LEVELS, type BacktestResult } from '../src/domain/forecasting/backtest.js';
import { MODELS, parseParameters } from '../src/domain/forecasting/models/index.js';
import { parsePriceCsv } from '../src/domain/forecasting/price-csv.js';
import { demoDataDir } from '../src/paths.js';

const args = process.argv.slice(2);
const i = args.indexOf('--models');
const names = i >= 0 ? args[i + 1].split(',') : ['fhs', 'ewma', 'garch', 'trailing-lognormal'];
const say = (m: string) => process.stderr.write(`${m}\n`);

const spx = parsePriceCsv(readFileSync(join(demoDataDir, 'sp500-2000.csv'), 'utf8'));
const stocksCsv = readFileSync(join(demoDataDir, 'stocks.csv'), 'utf8');
const monthly = ['AAPL', 'AMZN', 'GOOG', 'IBM', 'MSFT'].map((symbol) => parsePriceCsv(stocksCsv, { symbol }));

function run(name: string, series: ReturnType<typeof parsePriceCsv>, horizonRows: number, from: string): BacktestResult {
  const model = MODELS[name];
  return backtest(series, { model, version: model.version, params: parseParameters(model, {}), horizonRows, from });
}

/** Several series' backtests as one: forecasts summed, the rest weighted by forecasts. */
function pool(results: BacktestResult[]) {
  const n = results.reduce((s, r) => s + r.forecasts, 0);
  const avg = (f: (r: BacktestResult) => number) => results.reduce((s, r) => s + f(r) * r.forecasts, 0) / n;
  return {
    forecasts: n,
    coverage: LEVELS.map((l) => avg((r) => r.coverage[String(Math.round(l * 100))])),
    meanWidth95: avg((r) => r.meanWidth95),
    intervalScore95: avg((r) => r.intervalScore95),
    below: avg((r) => r.belowLower95),
    above: avg((r) => r.aboveUpper95),
  };
}

const cases = [
  ...[1, 5, 21, 63].map((h) => ({
    series: 'SPX daily, 2002–2020',
    horizon: `${h} day${h > 1 ? 's' : ''}`,
    run: (name: string) => pool([run(name, spx, h, '2002-01-01')]),
  })),
  ...[1, 3].map((h) => ({
    series: '5 stocks monthly, 2005–2010',
    horizon: `${h} month${h > 1 ? 's' : ''}`,
    run: (name: string) => pool(monthly.map((s) => run(name, s, h, '2005-01-01'))),
  })),
];

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
console.log(
  '| series | horizon | model | forecasts | coverage 50 / 80 / 90 / 95 / 99% | below / above 95% | mean width 95% | width vs baseline | interval score 95% |',
);
console.log('|---|---|---|---:|---:|---:|---:|---:|---:|');
for (const c of cases) {
  const baseline = c.run('trailing-lognormal');
  for (const name of names) {
    say(`${c.series}, ${c.horizon}: ${name}`);
    const r = name === 'trailing-lognormal' ? baseline : c.run(name);
    const coverage = r.coverage.map((x) => (x * 100).toFixed(1)).join(' / ');
    console.log(
      `| ${c.series} | ${c.horizon} | ${name} | ${r.forecasts} | ${coverage} | ${pct(r.below)} / ${pct(r.above)} | ${pct(r.meanWidth95)} | ${(r.meanWidth95 / baseline.meanWidth95).toFixed(2)} | ${r.intervalScore95.toFixed(4)} |`,
    );
  }
}
