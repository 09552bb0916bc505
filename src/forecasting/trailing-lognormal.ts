/**
 * The simple, honest estimator that stands in until real forecasting models exist: log returns are
 * taken as independent and normal with the mean and volatility of a trailing window, so a horizon's
 * log return is normal with mean μk and variance σ²k (k = the horizon in rows of the series).
 */

export interface PricePoint {
  date: string;
  close: number;
}

export interface ForecastEstimate {
  asOf: string;
  horizonDays: number;
  expectedReturn: number;
  lower: number;
  upper: number;
}

export const TRAILING_LOGNORMAL = {
  name: 'trailing-lognormal',
  version: '1',
  /** Three years of trading days: long enough for a stable mean on monthly data (36 rows). */
  windowTradingDays: 756,
} as const;

export const TRADING_DAYS_PER_YEAR = 252;
const Z95 = 1.959963984540054;

/**
 * How many trading days one row of the series stands for, from the median calendar gap between
 * rows: 1 for daily closes, about 21 for monthly ones.
 */
export function tradingDaysPerRow(series: PricePoint[]): number {
  const gaps: number[] = [];
  for (let i = 1; i < series.length; i++) gaps.push((Date.parse(series[i].date) - Date.parse(series[i - 1].date)) / 86_400_000);
  if (gaps.length === 0) return 1;
  gaps.sort((a, b) => a - b);
  const median = gaps[Math.floor(gaps.length / 2)];
  return Math.max(1, Math.round((median * TRADING_DAYS_PER_YEAR) / 365));
}

/** Forecasts at each horizon (in trading days) from the series' rows up to its last; [] when too short. */
export function forecastTrailingLognormal(series: PricePoint[], horizons: number[], windowTradingDays: number = TRAILING_LOGNORMAL.windowTradingDays): ForecastEstimate[] {
  const perRow = tradingDaysPerRow(series);
  const windowRows = Math.max(12, Math.ceil(windowTradingDays / perRow));
  const tail = series.slice(-(windowRows + 1));
  const returns: number[] = [];
  for (let i = 1; i < tail.length; i++) returns.push(Math.log(tail[i].close / tail[i - 1].close));
  if (returns.length < 3) return [];
  const mean = returns.reduce((a, b) => a + b, 0) / returns.length;
  const variance = returns.reduce((a, r) => a + (r - mean) ** 2, 0) / (returns.length - 1);
  const sigma = Math.sqrt(variance);
  const asOf = series[series.length - 1].date;
  return horizons.map((horizonDays) => {
    const k = horizonDays / perRow;
    const m = mean * k;
    const s = sigma * Math.sqrt(k);
    return {
      asOf,
      horizonDays,
      expectedReturn: Math.exp(m + (s * s) / 2) - 1,
      lower: Math.exp(m - Z95 * s) - 1,
      upper: Math.exp(m + Z95 * s) - 1,
    };
  });
}
