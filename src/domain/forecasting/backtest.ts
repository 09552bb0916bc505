import { logReturns, type ForecastModel } from './models/index.js';
import { simpleReturns, type FitContext } from './models/model.js';
import { tradingDaysPerRow, type PricePoint } from './series.js';

/**
 * Walk-forward evaluation of a model on one price series. At each row t the model is fitted to the
 * log returns up to row t — nothing after it — and forecasts the simple return from row t to row
 * t + h (h counted in rows); the forecast is then scored against what happened. Every row from the
 * first the model can forecast from to the last with a realised outcome counts once, so the
 * outcomes of neighbouring rows overlap when h > 1, as they do for anyone using the forecasts.
 */
export interface BacktestOptions {
  model: ForecastModel<unknown>;
  version: string;
  params: unknown;
  horizonRows: number;
  /** Forecast only from rows on or after this date (the model still sees every row before it), so that models needing different amounts of history are scored on the same rows. */
  from?: string;
  /** Keep every step's forecast and outcome in the result (for tests and charts). */
  keepSteps?: boolean;
}

export interface BacktestStep {
  asOf: string;
  expectedReturn: number;
  lower: number;
  upper: number;
  realised: number;
}

export interface BacktestResult {
  model: string;
  version: string;
  /** The horizon in rows of the series (trading days for daily closes). */
  horizonDays: number;
  tradingDaysPerRow: number;
  forecasts: number;
  from: string | null;
  to: string | null;
  /** Share of realised returns inside the 95% interval. */
  coverage95: number;
  /** Mean of upper − lower of the 95% interval. */
  meanWidth95: number;
  /** Coverage of central intervals at other levels, by level in percent. */
  coverage: Record<string, number>;
  /** Mean width of those intervals. */
  meanWidth: Record<string, number>;
  /** Winkler's interval score at 95%: width plus 2/0.05 times the miss, averaged; lower is better, and it punishes too wide as well as too narrow. */
  intervalScore95: number;
  /** Mean of |realised − expected return|. */
  meanAbsError: number;
  /** Mean of realised − expected return. */
  meanError: number;
  /** Share of realised returns below the lower bound (a well-calibrated 95% interval has about 0.025). */
  belowLower95: number;
  aboveUpper95: number;
  /** Share of realised returns below each level's interval, by level in percent (about (1 − level)/2 each when calibrated). */
  below: Record<string, number>;
  /** Share above each level's interval. */
  above: Record<string, number>;
  /** Winkler's interval score at each level: width plus 2/(1 − level) times the miss, averaged. */
  intervalScore: Record<string, number>;
  steps?: BacktestStep[];
}

export const LEVELS = [0.5, 0.8, 0.9, 0.95, 0.99];

export function backtest(series: readonly PricePoint[], options: BacktestOptions): BacktestResult {
  const { model, params, horizonRows: h } = options;
  if (!Number.isInteger(h) || h < 1) throw new RangeError(`the horizon must be a whole number of rows, at least 1; got ${h}`);
  const perRow = tradingDaysPerRow(series);
  const returns = logReturns(series);
  const warm: NonNullable<FitContext<unknown>['warm']> = {};
  const tally = () => new Map(LEVELS.map((l) => [l, 0]));
  const inside = tally();
  const width = tally();
  const below = tally();
  const above = tally();
  const score = tally();
  let n = 0;
  let absError = 0;
  let error = 0;
  let from: string | null = null;
  let to: string | null = null;
  const steps: BacktestStep[] = [];
  for (let t = 1; t + h < series.length; t++) {
    if (options.from && series[t].date < options.from) continue;
    // the model sees returns 1..t, i.e. the closes of rows 0..t
    const fitted = model.fit(returns.slice(0, t), { params, tradingDaysPerRow: perRow, warm });
    if (!fitted) continue;
    const distribution = fitted.horizon(h);
    const realised = series[t + h].close / series[t].close - 1;
    const add = (m: Map<number, number>, level: number, x: number) => m.set(level, m.get(level)! + x);
    for (const level of LEVELS) {
      const { lower, upper } = simpleReturns(distribution, level);
      add(inside, level, realised >= lower && realised <= upper ? 1 : 0);
      add(below, level, realised < lower ? 1 : 0);
      add(above, level, realised > upper ? 1 : 0);
      add(width, level, upper - lower);
      add(score, level, upper - lower + (2 / (1 - level)) * (Math.max(0, lower - realised) + Math.max(0, realised - upper)));
    }
    const { expectedReturn, lower, upper } = simpleReturns(distribution, 0.95);
    absError += Math.abs(realised - expectedReturn);
    error += realised - expectedReturn;
    from ??= series[t].date;
    to = series[t].date;
    n++;
    if (options.keepSteps) steps.push({ asOf: series[t].date, expectedReturn, lower, upper, realised });
  }
  const mean = (x: number) => (n ? x / n : NaN);
  const byLevel = (m: Map<number, number>) => Object.fromEntries(LEVELS.map((l) => [String(Math.round(l * 100)), round(mean(m.get(l)!))]));
  return {
    model: model.name,
    version: options.version,
    horizonDays: h,
    tradingDaysPerRow: perRow,
    forecasts: n,
    from,
    to,
    coverage95: round(mean(inside.get(0.95)!)),
    meanWidth95: round(mean(width.get(0.95)!)),
    coverage: byLevel(inside),
    meanWidth: byLevel(width),
    intervalScore95: round(mean(score.get(0.95)!)),
    meanAbsError: round(mean(absError)),
    meanError: round(mean(error)),
    belowLower95: round(mean(below.get(0.95)!)),
    aboveUpper95: round(mean(above.get(0.95)!)),
    below: byLevel(below),
    above: byLevel(above),
    intervalScore: byLevel(score),
    ...(options.keepSteps ? { steps } : {}),
  };
}

const round = (x: number) => (Number.isFinite(x) ? Math.round(x * 1e6) / 1e6 : x);
