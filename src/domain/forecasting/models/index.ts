import { EWMA } from './ewma.js';
import { FHS } from './fhs.js';
import { GARCH } from './garch.js';
import { simpleReturns, type FitContext, type ForecastModel } from './model.js';
import { TRAILING } from './trailing.js';
import { tradingDaysPerRow, type ForecastEstimate, type PricePoint } from '../series.js';

export type { ForecastModel, Fitted, HorizonDistribution } from './model.js';

/** The built-in model implementations by name; versions and their parameters live in forecast_models. */
export const MODELS: Record<string, ForecastModel<unknown>> = Object.fromEntries(
  [EWMA, FHS, GARCH, TRAILING].map((m) => [m.name, m as ForecastModel<unknown>]),
);

export function modelByName(name: string): ForecastModel<unknown> {
  const model = MODELS[name];
  if (!model) throw new Error(`unknown model "${name}"; built-in models: ${Object.keys(MODELS).join(', ')}`);
  return model;
}

/** A version's stored parameters (JSON text), validated and completed with the model's defaults. */
export function parseParameters(model: ForecastModel<unknown>, stored: string | object): unknown {
  const raw = typeof stored === 'string' ? JSON.parse(stored || '{}') : stored;
  const parsed = model.parameters.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`bad parameters for model "${model.name}": ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

/** Log returns between consecutive closes. */
export function logReturns(series: readonly PricePoint[]): number[] {
  const returns: number[] = [];
  for (let i = 1; i < series.length; i++) returns.push(Math.log(series[i].close / series[i - 1].close));
  return returns;
}

/**
 * A model's forecasts as of the series' last row at each horizon in trading days (converted to rows
 * by the series' frequency); [] when the series is too short for the model.
 */
export function forecastSeries(
  model: ForecastModel<unknown>,
  params: unknown,
  series: readonly PricePoint[],
  horizonsDays: readonly number[],
): ForecastEstimate[] {
  if (series.length < 2) return [];
  const perRow = tradingDaysPerRow(series);
  const context: FitContext<unknown> = { params, tradingDaysPerRow: perRow };
  const fitted = model.fit(logReturns(series), context);
  if (!fitted) return [];
  const asOf = series[series.length - 1].date;
  return horizonsDays.map((horizonDays) => ({ asOf, horizonDays, ...simpleReturns(fitted.horizon(horizonDays / perRow)) }));
}
