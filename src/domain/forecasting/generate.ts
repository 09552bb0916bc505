import { and, eq, sql } from 'drizzle-orm';
import { rows, type Db } from '../../db/client.js';
import { forecastModels, forecasts, type ForecastModelRow } from '../../db/schema.js';
import { notifyInvalidation } from '../../cache/invalidation.js';
import { instrumentTag } from '../../cache/tags.js';
import { publishModelTimings, type ModelTiming } from '../../observability/model-timings.js';
import { forecastSeries, modelByName, MODELS, parseParameters } from './models/index.js';
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
  /** Told how long each model run took: `inference` for one instrument, `generation` for the whole run. */
  onTiming?: (model: string, version: string, stage: ModelTiming['stage'], seconds: number) => void;
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

/**
 * Runs the chosen model versions over each instrument's full price history and stores a forecast per
 * horizon as of the last price. A forecast that exists for that model version, instrument, horizon
 * and date is kept, so running twice changes nothing. Every run is timed per instrument and in all;
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
  const instrumentIds = (await rows<{ id: number }>(db, sql`select id from instruments order by id`)).map((r) => r.id);
  let written = 0;
  const touched: number[] = [];
  for (const id of instrumentIds) {
    const series = (
      await rows<{ date: string; close: string }>(
        db,
        sql`select date::text as date, close::text as close from prices where instrument_id = ${id} order by date`,
      )
    ).map((r) => ({ date: r.date, close: Number(r.close) }));
    for (const { row, model, params } of runnable) {
      const inferred = performance.now();
      const estimates = forecastSeries(model, params, series, HORIZONS);
      timed(row.name, row.version, 'inference', (performance.now() - inferred) / 1000);
      if (estimates.length === 0) continue;
      const inserted = await db
        .insert(forecasts)
        .values(
          estimates.map((e) => ({
            modelId: row.id,
            instrumentId: id,
            asOf: e.asOf,
            horizonDays: e.horizonDays,
            expectedReturn: e.expectedReturn,
            lower95: e.lower,
            upper95: e.upper,
          })),
        )
        .onConflictDoNothing()
        .returning({ id: forecasts.id });
      written += inserted.length;
      if (inserted.length && !touched.includes(id)) touched.push(id);
    }
  }
  for (const { row } of runnable) timed(row.name, row.version, 'generation', (performance.now() - started) / 1000);
  // answers that show these instruments' forecasts are stale now, on every server
  if (written > 0) await notifyInvalidation(db, touched.map(instrumentTag));
  await publishModelTimings(db, timings);
  return { models: runnable.length, instruments: instrumentIds.length, forecasts: written, touched };
}
