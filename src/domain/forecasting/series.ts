/** A price series as the models, the backtest and the chart see it: closes by date, oldest first. */
export interface PricePoint {
  date: string;
  close: number;
}

/** A model's forecast of the simple return over a horizon, with its 95% interval. */
export interface ForecastEstimate {
  asOf: string;
  horizonDays: number;
  expectedReturn: number;
  lower: number;
  upper: number;
}

export const TRADING_DAYS_PER_YEAR = 252;

/**
 * How many trading days one row of the series stands for, from the median calendar gap between
 * rows: 1 for daily closes, about 21 for monthly ones.
 */
export function tradingDaysPerRow(series: readonly PricePoint[]): number {
  const gaps: number[] = [];
  for (let i = 1; i < series.length; i++) gaps.push((Date.parse(series[i].date) - Date.parse(series[i - 1].date)) / 86_400_000);
  if (gaps.length === 0) return 1;
  gaps.sort((a, b) => a - b);
  const median = gaps[Math.floor(gaps.length / 2)];
  return Math.max(1, Math.round((median * TRADING_DAYS_PER_YEAR) / 365));
}
