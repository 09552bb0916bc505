import { z } from 'zod';
import type { ForecastModel } from './model.js';

/**
 * RiskMetrics-style EWMA volatility. The variance of the next row's log return is an exponentially
 * weighted average of past squared returns, σ²ₜ₊₁ = λσ²ₜ + (1 − λ)rₜ², with the mean taken as zero
 * (RiskMetrics' convention: a drift estimate is noise next to daily volatility). Over k rows the log
 * return is normal with variance kσ²ₜ₊₁ — the square-root-of-time rule, since EWMA has no mean
 * reversion in its forecasts.
 *
 * The decay follows the data's frequency: 0.94 for daily rows and 0.97 for monthly ones, the two values
 * RiskMetrics (1996) settled on; rows between (weekly, say) interpolate on the log of the row length.
 * The recursion starts from the sample variance of the first `seedRows` returns.
 */
export const ewmaParameters = z
  .object({
    lambdaDaily: z.number().gt(0).lt(1).default(0.94),
    lambdaMonthly: z.number().gt(0).lt(1).default(0.97),
    /** Fewest returns to forecast from. */
    minReturns: z.number().int().min(3).default(20),
  })
  .strict();

export type EwmaParameters = z.infer<typeof ewmaParameters>;

/** The decay for rows of this many trading days. */
export function ewmaLambda(params: EwmaParameters, tradingDaysPerRow: number): number {
  const t = Math.min(1, Math.max(0, Math.log(Math.max(1, tradingDaysPerRow)) / Math.log(21)));
  return params.lambdaDaily + t * (params.lambdaMonthly - params.lambdaDaily);
}

/** σ² of the row after the last, by the EWMA recursion over all of `returns`. */
export function ewmaVariance(returns: readonly number[], lambda: number): number {
  const seedRows = Math.min(returns.length, Math.max(3, Math.round(1 / (1 - lambda))));
  let variance = 0;
  for (let i = 0; i < seedRows; i++) variance += returns[i] * returns[i];
  variance /= seedRows;
  for (let i = seedRows; i < returns.length; i++) variance = lambda * variance + (1 - lambda) * returns[i] * returns[i];
  return variance;
}

export const EWMA: ForecastModel<EwmaParameters> = {
  name: 'ewma',
  version: '1',
  summary: 'RiskMetrics EWMA volatility (λ 0.94 daily, 0.97 monthly), zero mean, square-root-of-time horizons',
  parameters: ewmaParameters,
  fit(returns, { params, tradingDaysPerRow }) {
    if (returns.length < params.minReturns) return null;
    const variance = ewmaVariance(returns, ewmaLambda(params, tradingDaysPerRow));
    return { horizon: (rows) => ({ mean: 0, sd: Math.sqrt(variance * rows) }) };
  },
};
