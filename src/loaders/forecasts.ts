import { sql } from 'drizzle-orm';
import { rows, type Db } from '../db/client.js';
import { byKey, column, groupByOrdinal } from './batch.js';

export interface ForecastModelRecord {
  name: string;
  version: string;
  active: boolean;
}

export interface ForecastRecord {
  instrumentId: number;
  model: ForecastModelRecord;
  asOf: string;
  horizonDays: number;
  expectedReturn: number;
  lower: number;
  upper: number;
  generatedAt: Date;
}

export interface LatestForecastKey {
  instrumentId: number;
  horizonDays: number;
}

/**
 * Forecasts of active model versions, or of one named version of `model`, active or not (a candidate
 * to compare before activating it); '' and 0 mean "any model", "the active version", "any horizon".
 */
export interface ForecastListKey {
  instrumentId: number;
  model: string;
  version: string;
  horizonDays: number;
  first: number;
}

interface ForecastSqlRow {
  ord: number;
  instrument_id: number;
  as_of: string;
  horizon_days: number;
  expected_return: number;
  lower95: number;
  upper95: number;
  generated_at: string;
  name: string;
  version: string;
  active: boolean;
}

const columns = sql`f.instrument_id, f.as_of::text as as_of, f.horizon_days, f.expected_return, f.lower95, f.upper95,
                    to_json(f.generated_at) #>> '{}' as generated_at, m.name, m.version, m.active`;

function toForecast(r: ForecastSqlRow): ForecastRecord {
  return {
    instrumentId: r.instrument_id,
    model: { name: r.name, version: r.version, active: r.active },
    asOf: r.as_of,
    horizonDays: r.horizon_days,
    expectedReturn: Number(r.expected_return),
    lower: Number(r.lower95),
    upper: Number(r.upper95),
    generatedAt: new Date(r.generated_at),
  };
}

/** The newest forecast of the default model's active version per (instrument, horizon). */
export function latestForecasts(db: Db, defaultModel: string) {
  return async (keys: readonly LatestForecastKey[]): Promise<(ForecastRecord | null)[]> => {
    const found = await rows<ForecastSqlRow>(
      db,
      sql`select k.ord::int as ord, ${columns}
          from unnest(${column(keys, 'int', (_, i) => i)}, ${column(keys, 'int', (k) => k.instrumentId)},
                      ${column(keys, 'int', (k) => k.horizonDays)}) as k(ord, instrument_id, horizon)
          join forecast_models m on m.name = ${defaultModel} and m.active
          cross join lateral (
            select * from forecasts f
            where f.model_id = m.id and f.instrument_id = k.instrument_id and f.horizon_days = k.horizon
            order by f.as_of desc limit 1
          ) f`,
    );
    return byKey(
      keys.map((_, i) => i),
      found,
      (r) => Number(r.ord),
      toForecast,
      () => null,
    );
  };
}

export function forecastLists(db: Db) {
  return async (keys: readonly ForecastListKey[]): Promise<ForecastRecord[][]> => {
    const found = await rows<ForecastSqlRow>(
      db,
      sql`select k.ord, ${columns}
          from unnest(${column(keys, 'int', (k) => k.instrumentId)}, ${column(keys, 'text', (k) => k.model)},
                      ${column(keys, 'text', (k) => k.version)}, ${column(keys, 'int', (k) => k.horizonDays)},
                      ${column(keys, 'int', (k) => k.first)})
               with ordinality as k(instrument_id, model, version, horizon, lim, ord)
          cross join lateral (
            select f.*, fm.id as active_model_id from forecasts f join forecast_models fm on fm.id = f.model_id
            where f.instrument_id = k.instrument_id
              and (case when k.version = '' then fm.active else fm.version = k.version end)
              and (k.model = '' or fm.name = k.model) and (k.horizon = 0 or f.horizon_days = k.horizon)
            order by f.as_of desc, fm.name, f.horizon_days limit k.lim
          ) f
          join forecast_models m on m.id = f.active_model_id
          order by k.ord, f.as_of desc, m.name, f.horizon_days`,
    );
    return groupByOrdinal(keys, found, toForecast);
  };
}
