import { describe, expect, it } from 'vitest';
import { forecastSeries, parseParameters } from '../src/domain/forecasting/models/index.js';
import { TRAILING } from '../src/domain/forecasting/models/trailing.js';
import { tradingDaysPerRow, type PricePoint } from '../src/domain/forecasting/series.js';
import { monthlyDates, normals, weekdayDates } from './helpers/series.js';

// The trailing-lognormal model is pure arithmetic over a price series: these tests build series whose
// true log-return distribution is known and check the model recovers it. No database, no clock.

const Z95 = 1.959963984540054;

/** The registered trailing-lognormal model's forecasts as of the series' last row. */
const forecastTrailingLognormal = (series: PricePoint[], horizons: number[], windowTradingDays?: number) =>
  forecastSeries(TRAILING, parseParameters(TRAILING, windowTradingDays ? { windowTradingDays } : {}), series, horizons);
const DAY = 86_400_000;

/** ISO dates of `n` consecutive calendar days ending on `last`. */
function dailyDates(n: number, last = '2024-01-31'): string[] {
  const end = Date.parse(`${last}T00:00:00Z`);
  return Array.from({ length: n }, (_, i) => new Date(end - (n - 1 - i) * DAY).toISOString().slice(0, 10));
}

/** A series whose every log return is exactly `mu` (no noise). */
function constantGrowth(dates: string[], mu: number, start = 100): PricePoint[] {
  return dates.map((date, i) => ({ date, close: start * Math.exp(mu * i) }));
}

/** A geometric random walk: log returns i.i.d. normal(mu, sigma²). */
function randomWalk(dates: string[], mu: number, sigma: number, seed: number): PricePoint[] {
  const z = normals(seed);
  let close = 100;
  return dates.map((date, i) => {
    if (i > 0) close *= Math.exp(mu + sigma * z());
    return { date, close };
  });
}

/** The interval's half-width in log space: exactly z·σ·√k for this model. */
const logHalfWidth = (f: { lower: number; upper: number }) => (Math.log(1 + f.upper) - Math.log(1 + f.lower)) / 2;
/** The interval's centre in log space: exactly μ·k for this model. */
const logCentre = (f: { lower: number; upper: number }) => (Math.log(1 + f.upper) + Math.log(1 + f.lower)) / 2;

describe('tradingDaysPerRow', () => {
  it('is 1 for a daily series, with or without weekends', () => {
    expect(tradingDaysPerRow(constantGrowth(dailyDates(30), 0.001))).toBe(1);
    expect(tradingDaysPerRow(constantGrowth(weekdayDates(60), 0.001))).toBe(1);
  });

  it('is 21 for a monthly series', () => {
    expect(tradingDaysPerRow(constantGrowth(monthlyDates(48), 0.01))).toBe(21);
  });

  it('is 1 for a series too short to have a gap', () => {
    expect(tradingDaysPerRow([])).toBe(1);
    expect(tradingDaysPerRow([{ date: '2024-01-01', close: 1 }])).toBe(1);
  });
});

describe('forecastTrailingLognormal', () => {
  it('forecasts exp(μk) − 1 with a zero-width interval on a noiseless daily series', () => {
    const mu = 0.0004;
    const series = constantGrowth(dailyDates(900), mu);
    const horizons = [1, 5, 21, 63];
    const out = forecastTrailingLognormal(series, horizons);
    expect(out.map((f) => f.horizonDays)).toEqual(horizons);
    for (const f of out) {
      const k = f.horizonDays;
      expect(f.asOf).toBe('2024-01-31');
      expect(f.expectedReturn).toBeCloseTo(Math.exp(mu * k) - 1, 12);
      expect(f.lower).toBeCloseTo(f.expectedReturn, 12);
      expect(f.upper).toBeCloseTo(f.expectedReturn, 12);
      expect(f.upper - f.lower).toBeLessThan(1e-9);
    }
  });

  it('converts horizons in trading days to rows on a monthly series', () => {
    const mu = 0.01; // per month
    const series = constantGrowth(monthlyDates(60), mu);
    const [h21, h63, h5] = forecastTrailingLognormal(series, [21, 63, 5]);
    // 21 trading days is one monthly row, 63 is three, 5 is 5/21 of one
    expect(h21.expectedReturn).toBeCloseTo(Math.exp(mu) - 1, 12);
    expect(h63.expectedReturn).toBeCloseTo(Math.exp(3 * mu) - 1, 12);
    expect(h5.expectedReturn).toBeCloseTo(Math.exp((mu * 5) / 21) - 1, 12);
    expect(h21.asOf).toBe(series[series.length - 1].date);
  });

  it('gives an interval about 2·1.96·σ·√k wide on a random normal series, with lower < expected < upper', () => {
    const [mu, sigma] = [0.0003, 0.012];
    const series = randomWalk(dailyDates(1500), mu, sigma, 20240131);
    const out = forecastTrailingLognormal(series, [1, 5, 21, 63]);
    expect(out).toHaveLength(4);
    for (const f of out) {
      const k = f.horizonDays;
      const trueWidth = 2 * Z95 * sigma * Math.sqrt(k);
      // 756 returns estimate σ to within a few per cent; the simple-return interval is a little
      // wider than the log one (exp is convex), hence the loose tolerance
      expect(f.upper - f.lower).toBeGreaterThan(trueWidth * 0.85);
      expect(f.upper - f.lower).toBeLessThan(trueWidth * 1.2);
      expect(logHalfWidth(f)).toBeGreaterThan(Z95 * sigma * Math.sqrt(k) * 0.9);
      expect(logHalfWidth(f)).toBeLessThan(Z95 * sigma * Math.sqrt(k) * 1.1);
      expect(f.lower).toBeLessThan(f.expectedReturn);
      expect(f.expectedReturn).toBeLessThan(f.upper);
    }
  });

  it('scales the interval with √k and its centre with k', () => {
    const series = randomWalk(dailyDates(1200), 0.0005, 0.02, 7);
    const [h1, h4, h16, h64] = forecastTrailingLognormal(series, [1, 4, 16, 64]);
    // in log space the half-width is z·σ·√k and the centre μ·k, exactly
    expect(logHalfWidth(h4) / logHalfWidth(h1)).toBeCloseTo(2, 9);
    expect(logHalfWidth(h16) / logHalfWidth(h1)).toBeCloseTo(4, 9);
    expect(logHalfWidth(h64) / logHalfWidth(h1)).toBeCloseTo(8, 9);
    expect(logCentre(h16) / logCentre(h1)).toBeCloseTo(16, 9);
    expect(logCentre(h64) / logCentre(h4)).toBeCloseTo(16, 9);
    // and the simple-return intervals widen with the horizon
    expect(h4.upper - h4.lower).toBeGreaterThan(h1.upper - h1.lower);
    expect(h64.upper - h64.lower).toBeGreaterThan(h16.upper - h16.lower);
  });

  it('uses only the trailing window', () => {
    // a wild first half, then a calm, steady second half longer than the window: only the calm part counts
    const dates = dailyDates(2000);
    const wild = randomWalk(dates.slice(0, 1000), 0, 0.05, 99);
    const last = wild[wild.length - 1].close;
    const calm = dates.slice(1000).map((date, i) => ({ date, close: last * Math.exp(0.001 * (i + 1)) }));
    const [f] = forecastTrailingLognormal([...wild, ...calm], [10]);
    expect(f.expectedReturn).toBeCloseTo(Math.exp(0.01) - 1, 10);
    expect(f.upper - f.lower).toBeLessThan(1e-9);
    // a window reaching back into the wild part sees its noise
    const [wide] = forecastTrailingLognormal([...wild, ...calm], [10], 1500);
    expect(wide.upper - wide.lower).toBeGreaterThan(0.05);
  });

  it('returns [] for a series too short to estimate from (fewer than 3 returns)', () => {
    const horizons = [1, 5, 21, 63];
    expect(forecastTrailingLognormal([], horizons)).toEqual([]);
    expect(forecastTrailingLognormal(constantGrowth(dailyDates(1), 0.01), horizons)).toEqual([]);
    expect(forecastTrailingLognormal(constantGrowth(dailyDates(3), 0.01), horizons)).toEqual([]);
    // four closes are three returns: the shortest series that gets a forecast
    expect(forecastTrailingLognormal(constantGrowth(dailyDates(4), 0.01), horizons)).toHaveLength(4);
  });
});
