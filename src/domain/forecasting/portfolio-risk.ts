import { Decimal } from '../decimal.js';
import { Z95 } from './models/model.js';

/**
 * Portfolio-level risk, computed on request: the distribution of a whole portfolio's return over a
 * horizon, from its holdings' weights and the covariance of their returns. Pure: no GraphQL, no SQL.
 *
 * Method (model `portfolio-covariance`, version 1):
 * 1. Weights: each open holding's market value (quantity × latest close, exact decimals) over the
 *    total of the holdings the estimate includes. Money stays decimal; only the weights become floats.
 * 2. As of: the oldest of the holdings' latest-price dates (a valuation's asOf): the window ends there.
 * 3. A common grid at the coarsest frequency held: month-end closes (the last close of each calendar
 *    month, matched by calendar month) when any holding's closes are more than 5 days apart at the
 *    median, else the trading days on which every holding has a close.
 * 4. Window: the trailing 36 months (36 returns between consecutive calendar months) or 756 trading
 *    days (756 returns between consecutive grid days) up to asOf. A holding with fewer than 12 monthly
 *    or 60 daily returns of its own in that window is left out and listed as excluded, as is one
 *    without a price; the rest are re-weighted and `coverage` says which share of the market value
 *    they are. Null when the included holdings share fewer returns than that.
 * 5. Log returns over the common periods; their sample mean vector μ and sample covariance matrix Σ
 *    (divisor n − 1, every return weighted equally).
 * 6. Horizon: k = horizonDays / 21 months on a monthly grid (about 21 trading days a month), or
 *    horizonDays days on a daily one. Returns are taken as independent and the portfolio's log return
 *    as the weighted sum of its holdings' (weights held fixed over the horizon: close to the log of
 *    the weighted sum of simple returns over short horizons), so over the horizon it is normal with
 *    mean m = k·(w·μ) and variance s² = k·(wᵀΣw).
 * 7. Answer: expected simple return exp(m + s²/2) − 1 and the 95% interval exp(m ± 1.96·s) − 1.
 *
 * With one holding this is the trailing log-normal estimate of that instrument alone.
 */
export const PORTFOLIO_COVARIANCE = {
  name: 'portfolio-covariance',
  version: '1',
  /** The trailing window on a monthly grid, in months (returns). */
  windowMonths: 36,
  /** The trailing window on a daily grid, in trading days (returns). */
  windowTradingDays: 756,
  /** Fewest returns a holding needs on the grid to be included (and the portfolio to be forecast). */
  minReturns: { MONTHLY: 12, DAILY: 60 },
  /** Trading days one month of a monthly grid stands for. */
  tradingDaysPerMonth: 21,
  /** Closes further apart than this (median, in calendar days) make a series monthly. */
  monthlyGapDays: 5,
  /** The longest horizon it answers, in trading days (a year). */
  maxHorizonDays: 252,
} as const;

export type RiskFrequency = 'DAILY' | 'MONTHLY';

/** A close as the database gives it: `date` is YYYY-MM-DD, `close` an exact decimal string. */
export interface Close {
  date: string;
  close: string;
}

export interface RiskHolding {
  instrumentId: number;
  /** Units held, an exact decimal; a holding of zero units is ignored. */
  quantity: string;
  /** The instrument's latest close; null when it has no price. */
  latest: Close | null;
  /** Its closes over `historyRange(asOf)` (more is ignored), oldest first. */
  history: Close[];
}

export interface RiskWeight {
  instrumentId: number;
  /** Share of the included market value, 0 to 1. */
  weight: number;
  /** Standard deviation of the instrument's own log return over the horizon. */
  volatility: number;
  /** Share of the portfolio's variance this holding carries, w·(Σw)ᵢ / wᵀΣw; they sum to 1. Null when the variance is 0. */
  riskContribution: number | null;
}

export interface RiskWindow {
  frequency: RiskFrequency;
  /** The earliest close used. */
  from: string;
  /** The latest close used (on a monthly grid, a month-end close may come after asOf in asOf's month). */
  to: string;
  /** How many returns each series contributed. */
  returns: number;
}

export interface PortfolioRisk {
  model: { name: string; version: string };
  horizonDays: number;
  /** The oldest of the holdings' latest-price dates: the estimate is as fresh as its stalest price. */
  asOf: string;
  /** Expected simple return over the horizon. */
  expectedReturn: number;
  /** The 95% interval of that return. */
  lower: number;
  upper: number;
  /** Standard deviation of the portfolio's log return over the horizon (s). */
  volatility: number;
  window: RiskWindow;
  /** The included holdings, in the order given. */
  weights: RiskWeight[];
  /** Instruments held but left out (no price, or too little history in the window), in the order given. */
  excluded: number[];
  /** Share of the priced holdings' market value that the estimate covers, 0 to 1. */
  coverage: number;
}

// ----------------------------------------------------------------------------------------------
// Calendar helpers on YYYY-MM-DD strings (UTC, no time zones involved)

const monthIndex = (date: string) => Number(date.slice(0, 4)) * 12 + Number(date.slice(5, 7)) - 1;
const pad = (n: number, width = 2) => String(n).padStart(width, '0');
const firstOfMonth = (index: number) => `${pad(Math.floor(index / 12), 4)}-${pad((index % 12) + 1)}-01`;
const lastOfMonth = (index: number) => new Date(Date.UTC(Math.floor(index / 12), (index % 12) + 1, 0)).toISOString().slice(0, 10);
const dayNumber = (date: string) => Date.parse(`${date}T00:00:00Z`) / 86_400_000;

/** The oldest of the latest-price dates of priced holdings; null when none is priced. */
export function riskAsOf(latest: readonly (Close | null)[]): string | null {
  let asOf: string | null = null;
  for (const p of latest) if (p && (asOf === null || p.date < asOf)) asOf = p.date;
  return asOf;
}

/**
 * The closes to load for a forecast as of `asOf`, whatever the grid turns out to be: from the first
 * day of the 37th month before asOf's month (so 757 trading days fit on a daily grid) to the end of
 * asOf's month (whose month-end closes a monthly grid uses).
 */
export function historyRange(asOf: string): { from: string; to: string } {
  const m = monthIndex(asOf);
  return { from: firstOfMonth(m - PORTFOLIO_COVARIANCE.windowMonths - 1), to: lastOfMonth(m) };
}

/** MONTHLY when the median gap between closes is over 5 calendar days; null with fewer than 2 closes. */
export function frequencyOf(history: readonly Close[]): RiskFrequency | null {
  if (history.length < 2) return null;
  const gaps: number[] = [];
  for (let i = 1; i < history.length; i++) gaps.push(dayNumber(history[i].date) - dayNumber(history[i - 1].date));
  gaps.sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)] > PORTFOLIO_COVARIANCE.monthlyGapDays ? 'MONTHLY' : 'DAILY';
}

/** A series on the grid: grid key (month index or date) → the close used there. */
type GridKey = string | number;
type GridSeries = Map<GridKey, { date: string; close: number }>;

function onGrid(history: readonly Close[], frequency: RiskFrequency, asOf: string): GridSeries {
  const series: GridSeries = new Map();
  if (frequency === 'MONTHLY') {
    const last = monthIndex(asOf);
    const first = last - PORTFOLIO_COVARIANCE.windowMonths;
    // oldest first, so the last close of each month overwrites the earlier ones
    for (const c of history) {
      const m = monthIndex(c.date);
      if (m >= first && m <= last) series.set(m, { date: c.date, close: Number(c.close) });
    }
  } else {
    for (const c of history) if (c.date <= asOf) series.set(c.date, { date: c.date, close: Number(c.close) });
  }
  return series;
}

/**
 * The periods returns are taken over, oldest first: consecutive calendar months on a monthly grid (a
 * month missing breaks the chain rather than making a two-month return), consecutive grid days on a
 * daily one (a day some holding did not trade is simply not on the grid).
 */
function periods(keys: GridKey[], frequency: RiskFrequency): [GridKey, GridKey][] {
  const sorted = [...keys].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const pairs: [GridKey, GridKey][] = [];
  for (let t = 1; t < sorted.length; t++) {
    if (frequency === 'DAILY' || (sorted[t] as number) - (sorted[t - 1] as number) === 1) pairs.push([sorted[t - 1], sorted[t]]);
  }
  return pairs;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * The portfolio's return distribution over `horizonDays` trading days (see the method above); null
 * when nothing can be estimated: no open priced holding, or too little common history.
 */
export function forecastPortfolioRisk(holdings: readonly RiskHolding[], horizonDays: number): PortfolioRisk | null {
  const { maxHorizonDays, minReturns, windowMonths, windowTradingDays, tradingDaysPerMonth } = PORTFOLIO_COVARIANCE;
  if (!Number.isInteger(horizonDays) || horizonDays < 1 || horizonDays > maxHorizonDays) {
    throw new RangeError(`horizonDays must be a whole number from 1 to ${maxHorizonDays}, got ${horizonDays}`);
  }
  const open = holdings.filter((h) => new Decimal(h.quantity).gt(0));
  const priced = open.filter((h) => h.latest !== null);
  const asOf = riskAsOf(priced.map((h) => h.latest));
  if (asOf === null) return null;
  const left = new Set(open.filter((h) => h.latest === null).map((h) => h.instrumentId));

  // the coarsest frequency among holdings with closes in the window sets the grid
  const frequencies = priced.map((h) => frequencyOf(h.history));
  const frequency: RiskFrequency = frequencies.includes('MONTHLY') ? 'MONTHLY' : 'DAILY';
  const candidates: { holding: RiskHolding; series: GridSeries }[] = [];
  priced.forEach((holding, i) => {
    const series = frequencies[i] === null ? null : onGrid(holding.history, frequency, asOf);
    if (series && periods([...series.keys()], frequency).length >= minReturns[frequency]) candidates.push({ holding, series });
    else left.add(holding.instrumentId);
  });
  if (candidates.length === 0) return null;

  // periods on which every included holding has both closes, the trailing window of them
  const common = [...candidates[0].series.keys()].filter((key) => candidates.every((c) => c.series.has(key)));
  const window = periods(common, frequency).slice(-(frequency === 'MONTHLY' ? windowMonths : windowTradingDays));
  const n = window.length;
  if (n < minReturns[frequency]) return null;

  const returns = candidates.map(({ series }) => window.map(([from, to]) => Math.log(series.get(to)!.close / series.get(from)!.close)));
  const mu = returns.map(mean);
  const cov = returns.map((ri, i) =>
    returns.map((rj, j) => {
      let sum = 0;
      for (let t = 0; t < n; t++) sum += (ri[t] - mu[i]) * (rj[t] - mu[j]);
      return sum / (n - 1);
    }),
  );

  const values = candidates.map(({ holding }) => new Decimal(holding.quantity).times(holding.latest!.close));
  const included = values.reduce((a, b) => a.plus(b), new Decimal(0));
  const total = priced.reduce((a, h) => a.plus(new Decimal(h.quantity).times(h.latest!.close)), new Decimal(0));
  const w = values.map((v) => v.div(included).toNumber());

  const sigmaW = cov.map((row) => row.reduce((a, c, j) => a + c * w[j], 0));
  const perPeriodMean = w.reduce((a, wi, i) => a + wi * mu[i], 0);
  const perPeriodVariance = Math.max(
    0,
    w.reduce((a, wi, i) => a + wi * sigmaW[i], 0),
  );
  const k = frequency === 'MONTHLY' ? horizonDays / tradingDaysPerMonth : horizonDays;
  const m = k * perPeriodMean;
  const s = Math.sqrt(k * perPeriodVariance);

  const datesAt = (key: GridKey) => candidates.map(({ series }) => series.get(key)!.date).sort();
  return {
    model: { name: PORTFOLIO_COVARIANCE.name, version: PORTFOLIO_COVARIANCE.version },
    horizonDays,
    asOf,
    expectedReturn: Math.exp(m + (s * s) / 2) - 1,
    lower: Math.exp(m - Z95 * s) - 1,
    upper: Math.exp(m + Z95 * s) - 1,
    volatility: s,
    window: { frequency, from: datesAt(window[0][0])[0], to: datesAt(window[n - 1][1]).at(-1)!, returns: n },
    weights: candidates.map(({ holding }, i) => ({
      instrumentId: holding.instrumentId,
      weight: w[i],
      volatility: Math.sqrt(k * cov[i][i]),
      riskContribution: perPeriodVariance > 0 ? (w[i] * sigmaW[i]) / perPeriodVariance : null,
    })),
    excluded: open.filter((h) => left.has(h.instrumentId)).map((h) => h.instrumentId),
    coverage: total.isZero() ? 0 : included.div(total).toNumber(),
  };
}
