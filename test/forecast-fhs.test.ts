import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backtest, LEVELS } from '../src/domain/forecasting/backtest.js';
import { EWMA } from '../src/domain/forecasting/models/ewma.js';
import { empiricalQuantile, FHS } from '../src/domain/forecasting/models/fhs.js';
import { logReturns, MODELS, parseParameters } from '../src/domain/forecasting/models/index.js';
import { simpleReturns, zForLevel } from '../src/domain/forecasting/models/model.js';
import { parsePriceCsv } from '../src/domain/forecasting/price-csv.js';
import type { PricePoint } from '../src/domain/forecasting/series.js';
import { demoDataDir } from '../src/paths.js';
import { normals, weekdayDates } from './helpers/series.js';

// Filtered historical simulation: the shape of the distribution from history, its scale from EWMA.
// A random walk says it is no wider than the truth; fat tails say it keeps them; the S&P 500 says it
// meets issue 16's calibration targets at every level and in both tails; a warm walk forward says
// it answers exactly what a fit from scratch does.

const params = FHS.parameters.parse({});

function seriesFrom(returns: number[]): PricePoint[] {
  const dates = weekdayDates(returns.length + 1);
  let close = 100;
  return dates.map((date, i) => {
    if (i > 0) close *= Math.exp(returns[i - 1]);
    return { date, close };
  });
}

const run = (name: string, series: PricePoint[], horizonRows: number, from?: string) =>
  backtest(series, { model: MODELS[name], version: '1', params: parseParameters(MODELS[name], {}), horizonRows, from });

describe('empirical quantiles', () => {
  it('interpolate at rank p(n + 1) and stay at the extremes beyond the sample', () => {
    const sorted = [1, 2, 3, 4];
    expect(empiricalQuantile(sorted, 0.2)).toBe(1); // rank 1
    expect(empiricalQuantile(sorted, 0.5)).toBe(2.5); // rank 2.5
    expect(empiricalQuantile(sorted, 0.8)).toBe(4); // rank 4
    expect(empiricalQuantile(sorted, 0.01)).toBe(1);
    expect(empiricalQuantile(sorted, 0.99)).toBe(4);
  });
});

describe('FHS', () => {
  it('is the ewma normal, exactly, where history is too short for a shape: few returns, a monthly series, a long horizon', () => {
    const z = normals(13);
    const ewmaParams = EWMA.parameters.parse({});
    expect(FHS.fit(Array(19).fill(0.01), { params, tradingDaysPerRow: 1 })).toBeNull();
    const cases: [number, number, number][] = [
      [25, 21, 1], // fewer returns than the monthly seed (33 rows)
      [120, 21, 3], // ten years of monthly closes: 85 blocks
      [300, 1, 1], // 283 one-day blocks after the seed: enough for the empirical shape
      [600, 1, 63], // 63 days on two years: 9 non-overlapping spans
    ];
    for (const [n, perRow, rows] of cases) {
      const returns = Array.from({ length: n }, () => 0.01 * z());
      const fhs = FHS.fit(returns, { params, tradingDaysPerRow: perRow })!.horizon(rows);
      const ewma = EWMA.fit(returns, { params: ewmaParams, tradingDaysPerRow: perRow })!.horizon(rows);
      if (n === 300) {
        expect(fhs.quantile, 'enough one-day blocks: the empirical shape').toBeDefined();
        continue;
      }
      expect(fhs.quantile, `n=${n} rows=${rows}`).toBeUndefined();
      expect(fhs.mean).toBe(0);
      expect(fhs.sd / ewma.sd, `n=${n} rows=${rows}`).toBeCloseTo(1, 12);
    }
  });

  it('on a random walk holds every level, with intervals as wide as the truth (0.9–1.15×)', () => {
    const z = normals(31);
    const sigma = 0.01;
    const series = seriesFrom(Array.from({ length: 3000 }, () => sigma * z()));
    for (const h of [1, 5]) {
      const result = run('fhs', series, h);
      for (const level of LEVELS) {
        const key = String(Math.round(level * 100));
        const trueWidth = Math.exp(zForLevel(level) * sigma * Math.sqrt(h)) - Math.exp(-zForLevel(level) * sigma * Math.sqrt(h));
        expect(result.meanWidth[key] / trueWidth, `h=${h} ${key}%`).toBeGreaterThan(0.9);
        expect(result.meanWidth[key] / trueWidth, `h=${h} ${key}%`).toBeLessThan(1.15);
        expect(Math.abs(result.coverage[key] - level), `h=${h} ${key}%`).toBeLessThan(h === 1 ? 0.02 : 0.035);
      }
    }
  });

  it('keeps fat tails that a normal model misses: on Student-t returns its 99% interval holds 99%', () => {
    // t with 3 degrees of freedom, scaled to sd 1%: z / sqrt(chi²₃ / 3) · sqrt(1/3)
    const z = normals(47);
    const t3 = () => z() / Math.sqrt((z() ** 2 + z() ** 2 + z() ** 2) / 3) / Math.sqrt(3);
    const series = seriesFrom(Array.from({ length: 4000 }, () => 0.01 * t3()));
    const fhs = run('fhs', series, 1);
    const ewma = run('ewma', series, 1);
    expect(Math.abs(fhs.coverage['99'] - 0.99)).toBeLessThan(0.006);
    expect(Math.abs(fhs.coverage['50'] - 0.5)).toBeLessThan(0.03);
    // the normal interval is too wide in the middle and too narrow at the extremes
    expect(ewma.coverage['50']).toBeGreaterThan(fhs.coverage['50']);
    expect(ewma.coverage['99']).toBeLessThan(fhs.coverage['99']);
    expect(fhs.intervalScore['99']).toBeLessThan(ewma.intervalScore['99']);
  });

  it('takes its scale from EWMA: the same returns at twice the size give intervals twice as wide in log terms', () => {
    const z = normals(3);
    const returns = Array.from({ length: 800 }, () => 0.01 * z());
    const one = FHS.fit(returns, { params, tradingDaysPerRow: 1 })!.horizon(5);
    const two = FHS.fit(
      returns.map((r) => 2 * r),
      { params, tradingDaysPerRow: 1 },
    )!.horizon(5);
    for (const p of [0.005, 0.025, 0.5, 0.975, 0.995]) expect(two.quantile!(p)).toBeCloseTo(2 * one.quantile!(p), 12);
  });

  it('answers the same walked forward with warm state as fitted from scratch at each step', () => {
    const z = normals(9);
    const returns = Array.from({ length: 900 }, () => 0.01 * z() * (1 + 0.5 * Math.sin(z())));
    const warm = {};
    for (let n = 504; n <= 900; n += 7) {
      const walked = FHS.fit(returns.slice(0, n), { params, tradingDaysPerRow: 1, warm })!;
      const cold = FHS.fit(returns.slice(0, n), { params, tradingDaysPerRow: 1 })!;
      for (const h of [1, 5, 21]) {
        for (const level of [0.5, 0.95, 0.99]) expect(simpleReturns(walked.horizon(h), level), `n=${n} h=${h}`).toEqual(simpleReturns(cold.horizon(h), level));
      }
    }
  });
});

describe('FHS on the S&P 500 daily series, forecasts from 2002', () => {
  const spx = parsePriceCsv(readFileSync(join(demoDataDir, 'sp500-2000.csv'), 'utf8'));
  // issue 16: points of tolerance at 1 day, 1.5× that at 5 days, 2.5× at 21
  const tolerance: Record<string, number> = { 50: 3, 80: 2, 90: 1.5, 95: 1.2, 99: 0.6 };

  for (const [h, scale] of [
    [1, 1],
    [5, 1.5],
    [21, 2.5],
  ]) {
    it(`covers 50/80/90/95/99% within the targets at ${h} day${h > 1 ? 's' : ''}${h < 21 ? ', with 1.3–3.7% in each tail of the 95% interval' : ''}`, () => {
      const result = run('fhs', spx, h, '2002-01-01');
      expect(result.forecasts).toBeGreaterThan(4500);
      for (const [level, points] of Object.entries(tolerance)) {
        expect(Math.abs(result.coverage[level] * 100 - Number(level)), `${level}%`).toBeLessThanOrEqual(points * scale);
      }
      if (h < 21) {
        for (const tail of [result.below['95'], result.above['95']]) {
          expect(tail).toBeGreaterThanOrEqual(0.013);
          expect(tail).toBeLessThanOrEqual(0.037);
        }
      }
      // and it beats the default normal EWMA on the 95% interval score
      expect(result.intervalScore95).toBeLessThan(run('ewma', spx, h, '2002-01-01').intervalScore95);
    });
  }

  it('sees the market fall faster than it rises: the lower 99% bound lies further out than the upper', () => {
    const fitted = FHS.fit(logReturns(spx), { params, tradingDaysPerRow: 1 })!;
    const d = fitted.horizon(5);
    expect(-d.quantile!(0.005)).toBeGreaterThan(d.quantile!(0.995));
  });
});
