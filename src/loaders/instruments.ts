import { sql } from 'drizzle-orm';
import { rows, type Db } from '../db/client.js';
import { instruments, type InstrumentRow } from '../db/schema.js';
import { array, byKey, column, groupByOrdinal } from './batch.js';
import type { ForecastRecord } from './forecasts.js';

// Instrument data is public: these loaders take no viewer.

/** A closing price as the API shows it; `date` is YYYY-MM-DD and `close` an exact decimal string. */
export interface PriceRecord {
  instrumentId: number;
  date: string;
  close: string;
}

/** An instrument with what the request already loaded of it beside (see openPositionsByPortfolio). */
export interface InstrumentNode extends InstrumentRow {
  /** Its latest close (null: it has none), when loaded with it. */
  latestPrice?: PriceRecord | null;
  /** The latest forecast of the default model's active version by horizon, for the horizons loaded with it. */
  latestForecasts?: Map<number, ForecastRecord | null>;
}

/** A slice of an instrument's price history: dates inclusive, '' for open ends, the latest `first`. */
export interface PriceRangeKey {
  instrumentId: number;
  from: string;
  to: string;
  first: number;
}

export function instrumentsById(db: Db) {
  return async (ids: readonly number[]): Promise<(InstrumentRow | null)[]> => {
    const found = await db
      .select()
      .from(instruments)
      .where(sql`${instruments.id} = any(${array(ids, 'int')})`);
    return byKey(
      ids,
      found,
      (r) => r.id,
      (r) => r,
      () => null,
    );
  };
}

/** Symbols are stored in capitals; keys are expected normalised (see normaliseSymbol). */
export function instrumentsBySymbol(db: Db) {
  return async (symbols: readonly string[]): Promise<(InstrumentRow | null)[]> => {
    const found = await db
      .select()
      .from(instruments)
      .where(sql`${instruments.symbol} = any(${array(symbols, 'text')})`);
    return byKey(
      symbols,
      found,
      (r) => r.symbol,
      (r) => r,
      () => null,
    );
  };
}

export const normaliseSymbol = (symbol: string) => symbol.trim().toUpperCase();

/** The latest close of each instrument: a LATERAL walk of the (instrument_id, date) key backwards. */
export function latestPricesByInstrument(db: Db) {
  return async (ids: readonly number[]): Promise<(PriceRecord | null)[]> => {
    const found = await rows<{ instrument_id: number; date: string; close: string }>(
      db,
      sql`select k.id as instrument_id, p.date::text as date, p.close::text as close
          from unnest(${array(ids, 'int')}) as k(id)
          cross join lateral (select date, close from prices where instrument_id = k.id order by date desc limit 1) p`,
    );
    return byKey(
      ids,
      found,
      (r) => r.instrument_id,
      toPrice,
      () => null,
    );
  };
}

const toPrice = (r: { instrument_id: number; date: string; close: string }): PriceRecord => ({
  instrumentId: r.instrument_id,
  date: r.date,
  close: r.close,
});

export function priceRangesByInstrument(db: Db) {
  return async (keys: readonly PriceRangeKey[]): Promise<PriceRecord[][]> => {
    const found = await rows<{ ord: string | number; instrument_id: number; date: string; close: string }>(
      db,
      sql`select k.ord, k.id as instrument_id, p.date::text as date, p.close::text as close
          from unnest(${column(keys, 'int', (k) => k.instrumentId)}, ${column(keys, 'text', (k) => k.from)},
                      ${column(keys, 'text', (k) => k.to)}, ${column(keys, 'int', (k) => k.first)})
               with ordinality as k(id, from_date, to_date, lim, ord)
          cross join lateral (
            select date, close from prices
            where instrument_id = k.id
              and (k.from_date = '' or date >= nullif(k.from_date, '')::date)
              and (k.to_date = '' or date <= nullif(k.to_date, '')::date)
            order by date desc limit k.lim
          ) p
          order by k.ord, p.date`,
    );
    return groupByOrdinal(keys, found, toPrice);
  };
}
