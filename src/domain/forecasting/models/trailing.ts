import { z } from 'zod';
import type { ForecastModel } from './model.js';

/**
 * The core's stand-in estimator, kept as a baseline: log returns independent and normal with the
 * mean and volatility of a trailing window (three years), scaled by the square root of time. Its
 * intervals ignore the current volatility, so they are too wide in calm spells and too narrow in
 * storms; the backtest shows how much the other models gain on it.
 */
export const TRAILING_LOGNORMAL = {
  name: 'trailing-lognormal',
  version: '1',
  /** Three years of trading days: long enough for a stable mean on monthly data (36 rows). */
  windowTradingDays: 756,
} as const;

export const trailingParameters = z
  .object({
    windowTradingDays: z.number().int().min(20).default(TRAILING_LOGNORMAL.windowTradingDays),
  })
  .strict();

export type TrailingParameters = z.infer<typeof trailingParameters>;

export const TRAILING: ForecastModel<TrailingParameters> = {
  name: TRAILING_LOGNORMAL.name,
  version: TRAILING_LOGNORMAL.version,
  summary: 'baseline: mean and volatility of the trailing 3 years of log returns, square-root-of-time horizons',
  parameters: trailingParameters,
  fit(returns, { params, tradingDaysPerRow }) {
    const windowRows = Math.max(12, Math.ceil(params.windowTradingDays / tradingDaysPerRow));
    const window = returns.slice(-windowRows);
    if (window.length < 3) return null;
    const mean = window.reduce((a, b) => a + b, 0) / window.length;
    const variance = window.reduce((a, r) => a + (r - mean) ** 2, 0) / (window.length - 1);
    return { horizon: (rows) => ({ mean: mean * rows, sd: Math.sqrt(variance * rows) }) };
  },
};
