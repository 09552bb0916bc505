import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backtest } from '../src/domain/forecasting/backtest.js';
import { EWMA, ewmaLambda, ewmaVariance } from '../src/domain/forecasting/models/ewma.js';
import { fitGarch, GARCH, garchHorizonVariance } from '../src/domain/forecasting/models/garch.js';
import { forecastSeries, logReturns, MODELS, parseParameters } from '../src/domain/forecasting/models/index.js';
import { normalQuantile, simpleReturns, zForLevel } from '../src/domain/forecasting/models/model.js';
import { parsePriceCsv } from '../src/domain/forecasting/price-csv.js';
import type { PricePoint } from '../src/domain/forecasting/series.js';
import { demoDataDir } from '../src/paths.js';
import { seededRandom } from '../src/tools/random.js';
import { normals } from './helpers/series.js';

// The models are pure arithmetic over price series. Synthetic series whose true distribution is known
// say whether intervals hold what they claim and are no wider than the truth; the demo series say
// how they do on real prices; a shuffled future says the backtest cannot see it.

/** Daily closes from log returns, dated on consecutive weekdays from 2000-01-03. */
function seriesFrom(returns: number[], start = 100): PricePoint[] {
  const out: PricePoint[] = [];
  const day = new Date('2000-01-03T00:00:00Z');
  let close = start;
  for (let i = 0; i <= returns.length; i++) {
    if (i > 0) close *= Math.exp(returns[i - 1]);
    out.push({ date: day.toISOString().slice(0, 10), close });
    do day.setUTCDate(day.getUTCDate() + 1);
    while (day.getUTCDay() === 0 || day.getUTCDay() === 6);
  }
  return out;
}

/** A GARCH(1,1) path with known parameters, and each row's true conditional standard deviation. */
function garchPath(n: number, { omega, alpha, beta }: { omega: number; alpha: number; beta: number }, seed: number) {
  const z = normals(seed);
  let variance = omega / (1 - alpha - beta);
  const returns: number[] = [];
  const sd: number[] = [];
  for (let i = 0; i < n; i++) {
    sd.push(Math.sqrt(variance));
    const r = Math.sqrt(variance) * z();
    returns.push(r);
    variance = omega + alpha * r * r + beta * variance;
  }
  return { returns, sd };
}

const defaults = (name: string) => parseParameters(MODELS[name], {});
const run = (name: string, series: PricePoint[], horizonRows: number, extra: { keepSteps?: boolean; from?: string } = {}) =>
  backtest(series, { model: MODELS[name], version: '1', params: defaults(name), horizonRows, ...extra });

describe('normal quantiles', () => {
  it('gives the familiar z values', () => {
    expect(zForLevel(0.95)).toBeCloseTo(1.959964, 6);
    expect(zForLevel(0.99)).toBeCloseTo(2.575829, 6);
    expect(zForLevel(0.5)).toBeCloseTo(0.67449, 5);
    expect(normalQuantile(0.001)).toBeCloseTo(-3.090232, 5);
    // the approximation itself, beside the table of exact values zForLevel uses for common levels
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 6);
    expect(zForLevel(0.98)).toBeCloseTo(2.326348, 6);
    expect(() => normalQuantile(1)).toThrow(RangeError);
  });

  it('turns a normal log return into a simple-return interval and mean', () => {
    const { expectedReturn, lower, upper } = simpleReturns({ mean: 0.01, sd: 0.1 });
    expect(expectedReturn).toBeCloseTo(Math.exp(0.015) - 1, 12);
    expect(lower).toBeCloseTo(Math.exp(0.01 - 1.959964 * 0.1) - 1, 6);
    expect(upper).toBeCloseTo(Math.exp(0.01 + 1.959964 * 0.1) - 1, 6);
  });
});

describe('EWMA', () => {
  it('follows the RiskMetrics recursion from a seed of the first returns', () => {
    const r = [0.01, -0.02, 0.015, 0.03, -0.01];
    // λ = 0.5 → seed over round(1/(1 − 0.5)) = 3 returns, then two steps
    let v = (0.01 ** 2 + 0.02 ** 2 + 0.015 ** 2) / 3;
    v = 0.5 * v + 0.5 * 0.03 ** 2;
    v = 0.5 * v + 0.5 * 0.01 ** 2;
    expect(ewmaVariance(r, 0.5)).toBeCloseTo(v, 15);
  });

  it('decays at 0.94 on daily rows and 0.97 on monthly ones', () => {
    const params = EWMA.parameters.parse({});
    expect(ewmaLambda(params, 1)).toBe(0.94);
    expect(ewmaLambda(params, 21)).toBeCloseTo(0.97, 12);
    expect(ewmaLambda(params, 5)).toBeGreaterThan(0.94);
    expect(ewmaLambda(params, 5)).toBeLessThan(0.97);
  });

  it('scales variance with the horizon (square root of time) around a zero mean', () => {
    const fitted = EWMA.fit([0.01, -0.01, 0.02, -0.02, 0.01, 0.0, 0.01, -0.01, 0.02, -0.02, 0.01, 0, 0.01, -0.01, 0.02, -0.02, 0.01, 0, 0.01, -0.01], {
      params: EWMA.parameters.parse({}),
      tradingDaysPerRow: 1,
    })!;
    expect(fitted.horizon(1).mean).toBe(0);
    expect(fitted.horizon(25).sd).toBeCloseTo(5 * fitted.horizon(1).sd, 12);
  });

  it('refuses a series shorter than its minimum', () => {
    expect(EWMA.fit([0.01, 0.02], { params: EWMA.parameters.parse({}), tradingDaysPerRow: 1 })).toBeNull();
  });

  it('holds 95% of outcomes on i.i.d. normal returns, with intervals as wide as the truth', () => {
    const z = normals(7);
    const sigma = 0.01;
    const series = seriesFrom(Array.from({ length: 3000 }, () => sigma * z()));
    for (const h of [1, 5]) {
      const result = run('ewma', series, h);
      expect(result.coverage95, `h=${h}`).toBeGreaterThan(0.93);
      expect(result.coverage95, `h=${h}`).toBeLessThan(0.97);
      const trueWidth = Math.exp(1.959964 * sigma * Math.sqrt(h)) - Math.exp(-1.959964 * sigma * Math.sqrt(h));
      expect(result.meanWidth95 / trueWidth, `h=${h}`).toBeGreaterThan(0.93);
      expect(result.meanWidth95 / trueWidth, `h=${h}`).toBeLessThan(1.05);
    }
  });
});

describe('GARCH(1,1)', () => {
  const truth = { omega: 0.000002, alpha: 0.08, beta: 0.9 };

  it('recovers known parameters by maximum likelihood', () => {
    const { returns } = garchPath(4000, truth, 11);
    const fit = fitGarch(returns, 400)!;
    expect(fit.alpha).toBeGreaterThan(0.04);
    expect(fit.alpha).toBeLessThan(0.13);
    expect(fit.beta).toBeGreaterThan(0.84);
    expect(fit.beta).toBeLessThan(0.95);
    expect(fit.alpha + fit.beta).toBeLessThan(1);
    expect(fit.longRunVariance).toBeGreaterThan(0.5 * (truth.omega / (1 - truth.alpha - truth.beta)));
  });

  it("reverts the forecast variance to the long run: one row is the next row's variance, far rows the unconditional one", () => {
    const fit = { mu: 0, longRunVariance: 1e-4, alpha: 0.1, beta: 0.85, nextVariance: 4e-4 };
    expect(garchHorizonVariance(fit, 1)).toBeCloseTo(4e-4, 15);
    // two rows: σ²₁ + (v̄ + (α+β)(σ²₁ − v̄))
    expect(garchHorizonVariance(fit, 2)).toBeCloseTo(4e-4 + 1e-4 + 0.95 * 3e-4, 15);
    expect(garchHorizonVariance(fit, 100_000) / 100_000 / 1e-4).toBeCloseTo(1, 2);
  });

  it('tracks the true conditional volatility and holds 95% of next-day outcomes on a GARCH path', () => {
    const { returns, sd } = garchPath(2500, truth, 23);
    const series = seriesFrom(returns);
    const result = run('garch', series, 1, { keepSteps: true });
    expect(result.coverage95).toBeGreaterThan(0.93);
    expect(result.coverage95).toBeLessThan(0.97);
    // each step's predicted sd (from its interval) against the true sd of the row it forecast
    const ratios = result.steps!.map((s) => {
      const t = series.findIndex((p) => p.date === s.asOf);
      const predictedSd = Math.log((1 + s.upper) / (1 + s.lower)) / (2 * 1.959964);
      return predictedSd / sd[t];
    });
    ratios.sort((a, b) => a - b);
    const median = ratios[Math.floor(ratios.length / 2)];
    expect(median).toBeGreaterThan(0.9);
    expect(median).toBeLessThan(1.1);
  });

  it('needs two years of history', () => {
    const params = GARCH.parameters.parse({});
    expect(GARCH.fit(Array(503).fill(0.01), { params, tradingDaysPerRow: 1 })).toBeNull();
    expect(GARCH.fit(Array(59).fill(0.01), { params, tradingDaysPerRow: 21 })).toBeNull();
  });
});

describe('every model', () => {
  it('converts trading-day horizons into rows on a monthly series', () => {
    const monthly = parsePriceCsv(readFileSync(join(demoDataDir, 'stocks.csv'), 'utf8'), { symbol: 'IBM' });
    for (const name of Object.keys(MODELS)) {
      const [d21, d63] = forecastSeries(MODELS[name], defaults(name), monthly, [21, 63]);
      const fitted = MODELS[name].fit(logReturns(monthly), { params: defaults(name), tradingDaysPerRow: 21 })!;
      expect(d21.asOf).toBe('2010-03-01');
      expect(d21.upper).toBeCloseTo(simpleReturns(fitted.horizon(1)).upper, 12);
      expect(d63.upper).toBeCloseTo(simpleReturns(fitted.horizon(3)).upper, 12);
      expect(d63.upper - d63.lower).toBeGreaterThan(d21.upper - d21.lower);
    }
  });

  it('cannot see the future in a backtest: shuffling the rows after a date leaves earlier forecasts unchanged', () => {
    const spx = parsePriceCsv(readFileSync(join(demoDataDir, 'sp500-2000.csv'), 'utf8')).slice(0, 1200);
    const cut = 900;
    const uniform = seededRandom(5);
    const future = spx.slice(cut + 1).map((p) => p.close);
    for (let i = future.length - 1; i > 0; i--) {
      const j = Math.floor(uniform() * (i + 1));
      [future[i], future[j]] = [future[j], future[i]];
    }
    const shuffled = spx.map((p, i) => (i > cut ? { ...p, close: future[i - cut - 1] } : p));
    for (const name of Object.keys(MODELS)) {
      const before = run(name, spx, 5, { keepSteps: true }).steps!.filter((s) => s.asOf <= spx[cut].date);
      const after = run(name, shuffled, 5, { keepSteps: true }).steps!.filter((s) => s.asOf <= spx[cut].date);
      expect(before.length, name).toBeGreaterThan(300);
      expect(
        after.map(({ realised: _, ...f }) => f),
        name,
      ).toEqual(before.map(({ realised: _, ...f }) => f));
      // and the shuffle did reach the outcomes: later forecasts differ
      expect(run(name, shuffled, 5).coverage95, name).not.toBe(run(name, spx, 5).coverage95);
    }
  });
});

describe('on the S&P 500 daily series, 2000–2020', () => {
  const spx = parsePriceCsv(readFileSync(join(demoDataDir, 'sp500-2000.csv'), 'utf8'));

  it('EWMA holds 93–97% of outcomes in its 95% interval at 1, 5 and 21 days, narrower than the trailing baseline', () => {
    for (const h of [1, 5, 21]) {
      const ewma = run('ewma', spx, h, { from: '2002-01-01' });
      const baseline = run('trailing-lognormal', spx, h, { from: '2002-01-01' });
      expect(ewma.coverage95, `h=${h}`).toBeGreaterThanOrEqual(0.93);
      expect(ewma.coverage95, `h=${h}`).toBeLessThanOrEqual(0.97);
      expect(ewma.meanWidth95, `h=${h}`).toBeLessThan(baseline.meanWidth95);
      expect(ewma.intervalScore95, `h=${h}`).toBeLessThan(baseline.intervalScore95);
    }
  });

  it('GARCH holds 93–97% at 21 days', { timeout: 60_000 }, () => {
    const garch = run('garch', spx, 21);
    expect(garch.forecasts).toBeGreaterThan(4000);
    expect(garch.coverage95).toBeGreaterThanOrEqual(0.93);
    expect(garch.coverage95).toBeLessThanOrEqual(0.97);
  });
});

describe('price CSVs', () => {
  it('reads date,close with or without a header, and one symbol of a multi-symbol file', () => {
    expect(parsePriceCsv('2020-01-01,10\n2020-01-02,11\n')).toEqual([
      { date: '2020-01-01', close: 10 },
      { date: '2020-01-02', close: 11 },
    ]);
    expect(parsePriceCsv('close,date\n10,2020-01-01\n11,2020-01-02')).toHaveLength(2);
    expect(parsePriceCsv('symbol,date,price\nA,Jan 1 2000,5\nB,Jan 1 2000,6\nA,Feb 1 2000,7', { symbol: 'a' })).toEqual([
      { date: '2000-01-01', close: 5 },
      { date: '2000-02-01', close: 7 },
    ]);
  });

  it('refuses rows out of order, non-positive closes and bad dates, naming the line', () => {
    expect(() => parsePriceCsv('date,close\n2020-01-02,1\n2020-01-01,2')).toThrow(/line 3: 2020-01-01 is not after 2020-01-02/);
    expect(() => parsePriceCsv('date,close\n2020-01-01,0')).toThrow(/line 2: close "0"/);
    expect(() => parsePriceCsv('date,close\nyesterday,1')).toThrow(/line 2: "yesterday" is not a date/);
    expect(() => parsePriceCsv('symbol,date,price\nA,Jan 1 2000,5', { symbol: 'Z' })).toThrow(/no rows for symbol Z/);
  });
});
