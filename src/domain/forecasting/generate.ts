import { and, eq, sql } from 'drizzle-orm';
import { rows, type Db } from '../../db/client.js';
import { forecastModels, forecasts, type ForecastModelRow } from '../../db/schema.js';
import { notifyInvalidation } from '../../cache/invalidation.js';
import { instrumentTag } from '../../cache/tags.js';
import { publishModelTimings, type ModelTiming } from '../../observability/model-timings.js';
import { logReturns, modelByName, MODELS, parseParameters, type Fitted } from './models/index.js';
import { simpleReturns } from './models/model.js';
import { tradingDaysPerRow } from './series.js';
import { RegistryError } from './registry.js';

/** The horizons every model forecasts, in trading days (CONTRACT.md). */
export const HORIZONS = [1, 5, 21, 63];

export interface GenerateResult {
  models: number;
  instruments: number;
  forecasts: number;
  /** Instruments that got new forecasts. */
  touched: number[];
}

export interface GenerateOptions {
  /** Only this model (its active version, or `version`). */
  model?: string;
  /** Run this version of `model`, active or not: a candidate's forecasts can be stored and compared before it is activated. */
  version?: string;
  /** Only these instruments (by id); every instrument when absent. */
  instrumentIds?: readonly number[];
  /**
   * Besides each instrument's last price date, forecast as of these dates (the ones its series holds;
   * at most the latest MAX_AS_OF_DATES of them), each from the prices up to that date only: new prices
   * imported in bulk then get the forecasts a daily run would have made, and the outcomes to score them.
   */
  asOfDates?: ReadonlyMap<number, readonly string[]>;
  /** Replace forecasts already stored for the same version, instrument, horizon and date (after a price correction) instead of keeping them. */
  replace?: boolean;
  /** Told how long each model run took: `inference` for one instrument, `generation` for the whole run. */
  onTiming?: (model: string, version: string, stage: ModelTiming['stage'], seconds: number) => void;
}

/** Most as-of dates one instrument gets per run: about a year of daily closes. */
export const MAX_AS_OF_DATES = 260;

/** The central intervals stored beside the 95% one, for the live calibration (scoring.ts). */
const STORED_LEVELS = [0.5, 0.8, 0.9, 0.99] as const;

type ForecastInsert = typeof forecasts.$inferInsert;

/** A fitted model's forecast rows as of the series' last row, one per horizon in trading days. */
function forecastRows(fitted: Fitted, perRow: number, base: Pick<ForecastInsert, 'modelId' | 'instrumentId' | 'asOf'>): ForecastInsert[] {
  return HORIZONS.map((horizonDays) => {
    const distribution = fitted.horizon(horizonDays / perRow);
    const central = simpleReturns(distribution, 0.95);
    const [i50, i80, i90, i99] = STORED_LEVELS.map((level) => simpleReturns(distribution, level));
    return {
      ...base,
      horizonDays,
      expectedReturn: central.expectedReturn,
      lower95: central.lower,
      upper95: central.upper,
      lower50: i50.lower,
      upper50: i50.upper,
      lower80: i80.lower,
      upper80: i80.upper,
      lower90: i90.lower,
      upper90: i90.upper,
      lower99: i99.lower,
      upper99: i99.upper,
    };
  });
}

/** The versions a run uses: every active one, or only `model`'s, or exactly `model` at `version`. */
async function versionsToRun(db: Db, options: GenerateOptions): Promise<ForecastModelRow[]> {
  if (options.version !== undefined && !options.model) throw new RegistryError('--version needs --model');
  if (options.model) modelByName(options.model);
  const where = options.version
    ? and(eq(forecastModels.name, options.model!), eq(forecastModels.version, options.version))
    : options.model
      ? and(eq(forecastModels.active, true), eq(forecastModels.name, options.model))
      : eq(forecastModels.active, true);
  const found = await db.select().from(forecastModels).where(where).orderBy(forecastModels.name);
  if (options.model && found.length === 0) {
    throw new RegistryError(options.version ? `${options.model} has no version "${options.version}"` : `${options.model} has no active version`);
  }
  // versions of models this build does not know (a newer build registered them) are left alone
  return found.filter((m) => MODELS[m.name]);
}

/** What a replacing run overwrites: the forecast, and the outcome it must now be scored on afresh. */
const replaced = {
  expectedReturn: sql`excluded.expected_return`,
  lower95: sql`excluded.lower95`,
  upper95: sql`excluded.upper95`,
  lower50: sql`excluded.lower50`,
  upper50: sql`excluded.upper50`,
  lower80: sql`excluded.lower80`,
  upper80: sql`excluded.upper80`,
  lower90: sql`excluded.lower90`,
  upper90: sql`excluded.upper90`,
  lower99: sql`excluded.lower99`,
  upper99: sql`excluded.upper99`,
  generatedAt: sql`now()`,
  realisedReturn: sql`null`,
  outcomeDate: sql`null`,
};

/**
 * Runs the chosen model versions over each instrument's full price history and stores a forecast per
 * horizon as of the last price (and, when asked, as of earlier dates). A forecast that exists for that
 * model version, instrument, horizon and date is kept (replaced with `replace`), so running twice changes nothing. Every run is timed per instrument and in all;
 * the timings go to `onTiming` and, at the end, to every server's metrics (see model-timings.ts).
 */
export async function generateForecasts(db: Db, options: GenerateOptions = {}): Promise<GenerateResult> {
  const started = performance.now();
  const runnable = (await versionsToRun(db, options)).map((row) => {
    const model = modelByName(row.name);
    return { row, model, params: parseParameters(model, row.parameters) };
  });
  const timings: ModelTiming[] = [];
  const timed = (model: string, version: string, stage: ModelTiming['stage'], seconds: number) => {
    timings.push({ model, version, stage, seconds });
    options.onTiming?.(model, version, stage, seconds);
  };
  const instrumentIds = options.instrumentIds ?? (await rows<{ id: number }>(db, sql`select id from instruments order by id`)).map((r) => r.id);
  let written = 0;
  const touched: number[] = [];
  for (const id of instrumentIds) {
    const series = (
      await rows<{ date: string; close: string }>(
        db,
        sql`select date::text as date, close::text as close from prices where instrument_id = ${id} order by date`,
      )
    ).map((r) => ({ date: r.date, close: Number(r.close) }));
    if (series.length < 2) continue;
    const perRow = tradingDaysPerRow(series);
    const returns = logReturns(series);
    // the rows to forecast from, oldest first: the asked dates the series holds, and always its last
    const wanted = new Set(options.asOfDates?.get(id) ?? []);
    const ends = series.flatMap((p, i) => (wanted.has(p.date) && i < series.length - 1 ? [i] : [])).slice(-(MAX_AS_OF_DATES - 1));
    ends.push(series.length - 1);
    for (const { row, model, params } of runnable) {
      const inferred = performance.now();
      // one walk forward per version: each fit sees returns up to its row only, warm from the previous
      const warm = {};
      const values = ends.flatMap((end) => {
        const fitted = model.fit(returns.slice(0, end), { params, tradingDaysPerRow: perRow, warm });
        return fitted ? forecastRows(fitted, perRow, { modelId: row.id, instrumentId: id, asOf: series[end].date }) : [];
      });
      timed(row.name, row.version, 'inference', (performance.now() - inferred) / 1000);
      if (values.length === 0) continue;
      let inserted = 0;
      for (let i = 0; i < values.length; i += 500) {
        const insert = db.insert(forecasts).values(values.slice(i, i + 500));
        const done = options.replace
          ? await insert
              .onConflictDoUpdate({
                target: [forecasts.modelId, forecasts.instrumentId, forecasts.horizonDays, forecasts.asOf],
                set: replaced,
              })
              .returning({ id: forecasts.id })
          : await insert.onConflictDoNothing().returning({ id: forecasts.id });
        inserted += done.length;
      }
      written += inserted;
      if (inserted && !touched.includes(id)) touched.push(id);
    }
  }
  for (const { row } of runnable) timed(row.name, row.version, 'generation', (performance.now() - started) / 1000);
  // answers that show these instruments' forecasts are stale now, on every server
  if (written > 0) await notifyInvalidation(db, touched.map(instrumentTag));
  await publishModelTimings(db, timings);
  return { models: runnable.length, instruments: instrumentIds.length, forecasts: written, touched };
}
