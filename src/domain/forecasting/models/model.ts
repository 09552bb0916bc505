import type { z } from 'zod';

/**
 * What every forecasting model is: a recipe that, given the log returns seen so far (oldest first)
 * and how many trading days one row stands for, fits itself and then says how the log return over
 * any horizon is distributed. Most models here treat that log return as normal with the mean and
 * standard deviation they derive, and intervals at any level, and the expected simple return, follow
 * from those two; a model whose log return is not normal (fhs) also gives its quantile function and
 * expected simple return, and `simpleReturns` uses them. A model never sees GraphQL or the database:
 * generation, the backtest and the tests all drive it alike.
 */
export interface HorizonDistribution {
  /** Mean of the log return over the horizon. */
  mean: number;
  /** Standard deviation of the log return over the horizon. */
  sd: number;
  /** The log return's quantile at probability p in (0, 1), nondecreasing in p, when it is not the normal one of `mean` and `sd`. */
  quantile?(p: number): number;
  /** E[exp(log return)] − 1 when it is not the lognormal exp(mean + sd²/2) − 1. */
  expectedReturn?: number;
}

export interface Fitted {
  /** The log return's distribution `rows` rows ahead (fractional rows are allowed: 1 trading day of a monthly series is 1/21 row). */
  horizon(rows: number): HorizonDistribution;
}

export interface FitContext<P> {
  params: P;
  /** Trading days per row of the series: 1 for daily closes, about 21 for monthly ones. */
  tradingDaysPerRow: number;
  /**
   * Carried from one fit to the next by a caller that walks a series forward (the backtest), so a
   * model may start its optimiser where the last step ended. Only ever holds what earlier, shorter
   * prefixes of the same series produced: it can make a fit faster, never let it see the future.
   */
  warm?: { state?: unknown };
}

export interface ForecastModel<P = unknown> {
  name: string;
  /** The version registered when no other exists, with the default parameters. */
  version: string;
  /** One line for `forecasts:models` and the README. */
  summary: string;
  /** Validates a version's stored parameters, filling in defaults. */
  parameters: z.ZodType<P>;
  /** The model fitted to `returns` (log returns, oldest first), or null when there are too few of them. */
  fit(returns: readonly number[], context: FitContext<P>): Fitted | null;
}

/** The standard normal quantile of a central 95% interval, to full precision. */
export const Z95 = 1.959963984540054;

/** The levels the backtest reports, to full precision; others come from the approximation below. */
const CENTRAL_Z: Record<number, number> = { 0.5: 0.6744897501960817, 0.8: 1.2815515655446004, 0.9: 1.6448536269514722, 0.95: Z95, 0.99: 2.5758293035489004 };

/** Two-sided standard normal quantile for a central interval of the given level (0.95 → 1.96). */
export function zForLevel(level: number): number {
  return CENTRAL_Z[level] ?? normalQuantile(0.5 + level / 2);
}

/**
 * The central interval at `level` and the expected simple return over a horizon: from the
 * distribution's own quantiles and expected return when it has them, else from a normal log return.
 */
export function simpleReturns(d: HorizonDistribution, level = 0.95) {
  const expectedReturn = d.expectedReturn ?? Math.exp(d.mean + (d.sd * d.sd) / 2) - 1;
  if (d.quantile) {
    const tail = (1 - level) / 2;
    return { expectedReturn, lower: Math.exp(d.quantile(tail)) - 1, upper: Math.exp(d.quantile(1 - tail)) - 1 };
  }
  const z = zForLevel(level);
  return { expectedReturn, lower: Math.exp(d.mean - z * d.sd) - 1, upper: Math.exp(d.mean + z * d.sd) - 1 };
}

/** Inverse standard normal CDF (Acklam's rational approximation, relative error below 1.2e-9). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalQuantile: p must lie in (0, 1), got ${p}`);
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  let x: number;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - low) {
    const q = p - 0.5;
    const r = q * q;
    x = ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  return x;
}
