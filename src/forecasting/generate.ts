import { and, eq, sql } from 'drizzle-orm';
import { rows, type Db } from '../db/client.js';
import { forecastModels, forecasts } from '../db/schema.js';
import { notifyInvalidation } from '../cache/notify.js';
import { forecastTrailingLognormal, TRAILING_LOGNORMAL, type PricePoint } from './trailing-lognormal.js';

/** The horizons every model forecasts, in trading days (CONTRACT.md). */
export const HORIZONS = [1, 5, 21, 63];

/** Model implementations by name; the registry rows in forecast_models say which version is active. */
const MODELS: Record<string, (series: PricePoint[], horizons: number[]) => ReturnType<typeof forecastTrailingLognormal>> = {
  [TRAILING_LOGNORMAL.name]: (series, horizons) => forecastTrailingLognormal(series, horizons, TRAILING_LOGNORMAL.windowTradingDays),
};

/** Registers the built-in model and activates it unless its name already has an active version. */
export async function ensureDefaultModel(db: Db): Promise<void> {
  const { name, version, windowTradingDays } = TRAILING_LOGNORMAL;
  await db
    .insert(forecastModels)
    .values({ name, version, active: false, parameters: JSON.stringify({ windowTradingDays }) })
    .onConflictDoNothing();
  await db.execute(sql`update forecast_models set active = true
    where name = ${name} and version = ${version}
      and not exists (select 1 from forecast_models where name = ${name} and active)`);
}

export interface GenerateResult {
  models: number;
  instruments: number;
  forecasts: number;
  /** Instruments that got new forecasts. */
  touched: number[];
}

/**
 * Runs every active model version (or only `model`) over each instrument's full price history and
 * stores a forecast per horizon as of the last price. A forecast that exists for that model version,
 * instrument, horizon and date is kept, so running twice changes nothing.
 */
export interface GenerateOptions {
  /** Only this model's active version. */
  model?: string;
  /** Told how long each model run took: `inference` for one instrument, `generation` for the whole run. */
  onTiming?: (model: string, version: string, stage: 'inference' | 'generation', seconds: number) => void;
}

export async function generateForecasts(db: Db, options: GenerateOptions = {}): Promise<GenerateResult> {
  const started = performance.now();
  const active = await db
    .select()
    .from(forecastModels)
    .where(options.model ? and(eq(forecastModels.active, true), eq(forecastModels.name, options.model)) : eq(forecastModels.active, true));
  const runnable = active.filter((m) => MODELS[m.name]);
  const instrumentIds = (await rows<{ id: number }>(db, sql`select id from instruments order by id`)).map((r) => r.id);
  let written = 0;
  const touched: number[] = [];
  for (const id of instrumentIds) {
    const series = (
      await rows<{ date: string; close: string }>(db, sql`select date::text as date, close::text as close from prices where instrument_id = ${id} order by date`)
    ).map((r) => ({ date: r.date, close: Number(r.close) }));
    for (const model of runnable) {
      const inferred = performance.now();
      const estimates = MODELS[model.name](series, HORIZONS);
      options.onTiming?.(model.name, model.version, 'inference', (performance.now() - inferred) / 1000);
      if (estimates.length === 0) continue;
      const inserted = await db
        .insert(forecasts)
        .values(
          estimates.map((e) => ({
            modelId: model.id,
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
  for (const model of runnable) options.onTiming?.(model.name, model.version, 'generation', (performance.now() - started) / 1000);
  // answers that show these instruments' forecasts are stale now, on every server
  if (written > 0) await notifyInvalidation(db, touched.map((id) => `Instrument:${id}`));
  return { models: runnable.length, instruments: instrumentIds.length, forecasts: written, touched };
}
