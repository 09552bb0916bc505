import { describe, expect, it } from 'vitest';
import { forecastPortfolioRisk, historyRange, type Close, type RiskHolding } from '../src/domain/forecasting/portfolio-risk.js';

// Pure math: no database, no clock. Prices move by powers of two, so every log return is a whole
// multiple of a = ln 2 and the statistics can be done by hand in units of a.
const a = Math.LN2;
const Z = 1.959963984540054;

/** Closes dated the 1st of consecutive months, the last one in `lastMonth` (YYYY-MM). */
function monthly(closes: (string | number)[], lastMonth = '2024-01'): Close[] {
  const [y, m] = lastMonth.split('-').map(Number);
  const last = y * 12 + m - 1;
  return closes.map((close, i) => {
    const idx = last - (closes.length - 1 - i);
    return { date: `${Math.floor(idx / 12)}-${String((idx % 12) + 1).padStart(2, '0')}-01`, close: String(close) };
  });
}

/** Closes on consecutive weekdays (Monday to Friday) ending on `last`. */
function weekdays(count: number, last: string, close: (i: number, date: string) => number): Close[] {
  const dates: string[] = [];
  for (let t = Date.parse(`${last}T00:00:00Z`); dates.length < count; t -= 86_400_000) {
    const day = new Date(t).getUTCDay();
    if (day !== 0 && day !== 6) dates.unshift(new Date(t).toISOString().slice(0, 10));
  }
  return dates.map((date, i) => ({ date, close: String(close(i, date)) }));
}

const holding = (instrumentId: number, quantity: string, history: Close[]): RiskHolding => ({
  instrumentId,
  quantity,
  latest: history.at(-1) ?? null,
  history,
});

/** What a log-normal with log-mean m and log-sd s says: expected return and 95% interval. */
const lognormal = (m: number, s: number) => ({ expectedReturn: Math.exp(m + (s * s) / 2) - 1, lower: Math.exp(m - Z * s) - 1, upper: Math.exp(m + Z * s) - 1 });

// A: ×2, ×½, … twelve times. Log returns (in a): +1 −1 +1 −1 +1 −1 +1 −1 +1 −1 +1 −1
//    μA = 0; squared deviations sum to 12, so var A = 12/11 a² (sample variance, n − 1 = 11).
const A = monthly([100, 200, 100, 200, 100, 200, 100, 200, 100, 200, 100, 200, 100]);
// B: ×4 or ×1. Log returns (in a): 2 0 2 0 2 0 2 2 0 0 2 0
//    μB = 12/12 = 1 a; deviations ±1 as listed, so var B = 12/11 a².
//    Deviation products with A: six +1 (months 1–6), then +1 −1 −1 +1 +1 +1: sum 8, cov = 8/11 a²,
//    correlation ρ = (8/11) / (12/11) = 2/3.
const B = monthly([1, 4, 4, 16, 16, 64, 64, 256, 1024, 1024, 1024, 4096, 4096]);
// Weights: A 122.88 × 100 = 12288, B 1 × 4096 = 4096, total 16384: w = (0.75, 0.25).
// Per month: w·μ = 0.25 a
//            wᵀΣw = (a²/11)·(0.75²·12 + 0.25²·12 + 2·0.75·0.25·8) = (a²/11)·(6.75 + 0.75 + 3) = 21/22 a²
// Σw = (a²/11)·(12·0.75 + 8·0.25, 8·0.75 + 12·0.25) = (a²/11)·(11, 9); risk shares 0.75·11/10.5 = 11/14
// and 0.25·9/10.5 = 3/14.
const TWO = [holding(1, '122.88', A), holding(2, '1', B)];

describe('portfolio risk (portfolio-covariance)', () => {
  it('matches the hand-computed two-asset example at 21 trading days (one month)', () => {
    const r = forecastPortfolioRisk(TWO, 21)!;
    const m = 0.25 * a;
    const s = a * Math.sqrt(21 / 22);
    const expected = lognormal(m, s);
    expect(r.model).toEqual({ name: 'portfolio-covariance', version: '1' });
    expect(r.asOf).toBe('2024-01-01');
    expect(r.window).toEqual({ frequency: 'MONTHLY', from: '2023-01-01', to: '2024-01-01', returns: 12 });
    expect(r.volatility).toBeCloseTo(s, 12);
    expect(r.expectedReturn).toBeCloseTo(expected.expectedReturn, 12);
    expect(r.lower).toBeCloseTo(expected.lower, 12);
    expect(r.upper).toBeCloseTo(expected.upper, 12);
    expect(r.weights.map((w) => w.instrumentId)).toEqual([1, 2]);
    expect(r.weights[0].weight).toBe(0.75);
    expect(r.weights[1].weight).toBe(0.25);
    expect(r.weights[0].volatility).toBeCloseTo(a * Math.sqrt(12 / 11), 12);
    expect(r.weights[1].volatility).toBeCloseTo(a * Math.sqrt(12 / 11), 12);
    expect(r.weights[0].riskContribution).toBeCloseTo(11 / 14, 12);
    expect(r.weights[1].riskContribution).toBeCloseTo(3 / 14, 12);
    expect(r.excluded).toEqual([]);
    expect(r.coverage).toBe(1);
    // the numbers themselves: m = 0.17329, s = 0.67721, so +49.57% expected, from −68.46% to +348.44%
    expect(r.expectedReturn).toBeCloseTo(0.4957, 4);
    expect(r.lower).toBeCloseTo(-0.6846, 4);
    expect(r.upper).toBeCloseTo(3.4844, 4);
  });

  it('scales mean and variance with the horizon: 63 trading days are three months', () => {
    const r = forecastPortfolioRisk(TWO, 63)!;
    // m = 3 · 0.25 a, s² = 3 · 21/22 a²
    const expected = lognormal(0.75 * a, a * Math.sqrt(63 / 22));
    expect(r.horizonDays).toBe(63);
    expect(r.volatility).toBeCloseTo(a * Math.sqrt(63 / 22), 12);
    expect(r.expectedReturn).toBeCloseTo(expected.expectedReturn, 12);
    expect(r.lower).toBeCloseTo(expected.lower, 12);
    expect(r.upper).toBeCloseTo(expected.upper, 12);
  });

  it('gives a single holding its own interval, whatever the quantity', () => {
    // A alone: m = 0, s² = 12/11 a²; B alone: m = a, s² = 12/11 a²
    for (const [h, m] of [
      [holding(1, '3', A), 0],
      [holding(2, '0.5', B), a],
    ] as const) {
      const r = forecastPortfolioRisk([h], 21)!;
      const s = a * Math.sqrt(12 / 11);
      const expected = lognormal(m, s);
      expect(r.weights).toEqual([{ instrumentId: h.instrumentId, weight: 1, volatility: r.volatility, riskContribution: 1 }]);
      expect(r.volatility).toBeCloseTo(s, 12);
      expect(r.expectedReturn).toBeCloseTo(expected.expectedReturn, 12);
      expect(r.lower).toBeCloseTo(expected.lower, 12);
      expect(r.upper).toBeCloseTo(expected.upper, 12);
    }
  });

  it('is null for an empty portfolio, one with nothing priced, and one of zero quantities', () => {
    expect(forecastPortfolioRisk([], 21)).toBeNull();
    expect(forecastPortfolioRisk([{ instrumentId: 1, quantity: '10', latest: null, history: [] }], 21)).toBeNull();
    expect(forecastPortfolioRisk([holding(1, '0', A)], 21)).toBeNull();
  });

  it('leaves out holdings without a price or with too little history, and says how much it covers', () => {
    const young = monthly([50, 60, 70, 80, 90]); // five closes: four returns, under the 12 needed
    const r = forecastPortfolioRisk(
      [
        holding(1, '122.88', A),
        holding(3, '10', young), // 10 × 90 = 900
        { instrumentId: 4, quantity: '5', latest: null, history: [] },
        holding(5, '0', A), // a closed position: neither weighed nor listed
        holding(2, '1', B),
      ],
      21,
    )!;
    const two = forecastPortfolioRisk(TWO, 21)!;
    expect(r.excluded).toEqual([3, 4]);
    expect(r.weights.map((w) => w.instrumentId)).toEqual([1, 2]);
    expect(r.weights.map((w) => w.weight)).toEqual([0.75, 0.25]);
    expect(r.expectedReturn).toBeCloseTo(two.expectedReturn, 12);
    expect(r.lower).toBeCloseTo(two.lower, 12);
    expect(r.upper).toBeCloseTo(two.upper, 12);
    // 16384 of 16384 + 900
    expect(r.coverage).toBeCloseTo(16384 / 17284, 12);
  });

  it('aligns a daily series to month-end closes, by calendar month, when another holding is monthly', () => {
    // M: monthly closes on the 1st, 2021-01 to 2024-01 (37 closes, 36 returns)
    const M = monthly(
      Array.from({ length: 37 }, (_, i) => 100 + 7 * Math.sin(i) + i),
      '2024-01',
    );
    // D: every weekday from 2020-12 to the end of 2024-01; its last weekday of each month closes at
    // that month's `monthEnd`, every other day at something else entirely
    const monthEnd = (month: string) => 50 + (Number(month.slice(0, 4)) - 2020) * 3 + Number(month.slice(5, 7)) * (Number(month.slice(5, 7)) % 3);
    const days = weekdays(820, '2024-01-31', () => 0);
    const D = days.map((c, i) => {
      const month = c.date.slice(0, 7);
      const lastOfMonth = i === days.length - 1 || days[i + 1].date.slice(0, 7) !== month;
      return { date: c.date, close: String(lastOfMonth ? monthEnd(month) : 1000 + i) };
    });
    expect(D[0].date < '2021-01-01').toBe(true);
    const mixed = forecastPortfolioRisk([holding(1, '10', M), holding(2, '20', D)], 21)!;

    // the same portfolio with D given as its month-end closes dated the 1st of each month
    const DMonthly = monthly(
      Array.from({ length: 37 }, (_, i) => monthEnd(M[i].date.slice(0, 7))),
      '2024-01',
    );
    const equivalent = forecastPortfolioRisk([holding(1, '10', M), { instrumentId: 2, quantity: '20', latest: D.at(-1)!, history: DMonthly }], 21)!;

    expect(mixed.asOf).toBe('2024-01-01'); // the older of the two latest prices
    expect(mixed.window).toEqual({ frequency: 'MONTHLY', from: '2021-01-01', to: '2024-01-31', returns: 36 });
    expect(mixed.weights.map((w) => w.weight)).toEqual(equivalent.weights.map((w) => w.weight));
    for (const key of ['expectedReturn', 'lower', 'upper', 'volatility'] as const) expect(mixed[key]).toBeCloseTo(equivalent[key], 12);
    expect(mixed.weights[1].volatility).toBeCloseTo(equivalent.weights[1].volatility, 12);
  });

  it('uses the trailing 756 trading days on a daily grid, only on days every holding has a close', () => {
    const X = weekdays(1000, '2024-01-31', (i) => 100 * Math.exp(0.01 * Math.sin(i)));
    const Y = weekdays(1000, '2024-01-31', (i) => 50 * Math.exp(0.02 * Math.cos(i / 3)));
    const r = forecastPortfolioRisk([holding(1, '1', X), holding(2, '1', Y)], 5)!;
    expect(r.window.frequency).toBe('DAILY');
    expect(r.window.returns).toBe(756);
    expect(r.window.to).toBe('2024-01-31');
    expect(r.window.from).toBe(X[1000 - 757].date);
    // a day missing from one series is dropped from the grid (the window reaches one day further back)
    const gap = forecastPortfolioRisk(
      [
        holding(1, '1', X),
        holding(
          2,
          '1',
          Y.filter((_, i) => i !== 900),
        ),
      ],
      5,
    )!;
    expect(gap.window.returns).toBe(756);
    expect(gap.window.from).toBe(X[1000 - 758].date);
  });

  it('is null when the holdings share too few returns, and has no risk shares without variance', () => {
    const zigzag = (n: number) => Array.from({ length: n }, (_, i) => (i % 2 ? 12 : 10));
    // X has 5 + 19 returns of its own, Y 23; but they share only 5 (2021-01..06) + 6 (2022-06..12)
    // consecutive months, and 2024-01 follows no common month: 11 common returns, under the 12 needed
    const X = [...monthly(zigzag(6), '2021-06'), ...monthly(zigzag(20), '2024-01')];
    const Y = [...monthly(zigzag(24), '2022-12'), ...monthly(zigzag(1), '2024-01')];
    expect(forecastPortfolioRisk([holding(1, '1', X)], 21)!.window.returns).toBe(24);
    expect(forecastPortfolioRisk([holding(2, '1', Y)], 21)!.window.returns).toBe(23);
    expect(forecastPortfolioRisk([holding(1, '1', X), holding(2, '1', Y)], 21)).toBeNull();
    const flat = forecastPortfolioRisk([holding(1, '1', monthly(Array(13).fill('10')))], 21)!;
    expect(flat.volatility).toBe(0);
    expect(flat.expectedReturn).toBe(0);
    expect(flat.weights[0].riskContribution).toBeNull();
  });

  it('refuses horizons outside 1 to 252 trading days', () => {
    expect(() => forecastPortfolioRisk(TWO, 0)).toThrow(RangeError);
    expect(() => forecastPortfolioRisk(TWO, 253)).toThrow(RangeError);
    expect(() => forecastPortfolioRisk(TWO, 2.5)).toThrow(RangeError);
  });

  it('loads from the first day 37 months back to the end of the as-of month', () => {
    expect(historyRange('2010-03-01')).toEqual({ from: '2007-02-01', to: '2010-03-31' });
    expect(historyRange('2024-02-15')).toEqual({ from: '2021-01-01', to: '2024-02-29' });
    expect(historyRange('2024-12-31')).toEqual({ from: '2021-11-01', to: '2024-12-31' });
  });
});
