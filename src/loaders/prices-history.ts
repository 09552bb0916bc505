import { sql } from 'drizzle-orm';
import { rows, type Db } from '../db/client.js';
import { column, groupByOrdinal } from './batch.js';
import type { PriceRecord } from './instruments.js';

// Instrument data is public: this loader takes no viewer.

/** An instrument's closes over a window of dates, both ends inclusive (YYYY-MM-DD). */
export interface PriceHistoryKey {
  instrumentId: number;
  from: string;
  to: string;
}

/**
 * Every close of each key's window, oldest first: the history a risk model reads. Windows are bounded
 * by the caller (a few years at most), so there is no row cap. One statement per batch: the primary
 * key's (instrument_id, date) index is walked once per key.
 */
export function priceHistoriesByInstrument(db: Db) {
  return async (keys: readonly PriceHistoryKey[]): Promise<PriceRecord[][]> => {
    const found = await rows<{ ord: string | number; instrument_id: number; date: string; close: string }>(
      db,
      sql`select k.ord, k.id as instrument_id, p.date::text as date, p.close::text as close
          from unnest(${column(keys, 'int', (k) => k.instrumentId)}, ${column(keys, 'text', (k) => k.from)},
                      ${column(keys, 'text', (k) => k.to)}) with ordinality as k(id, from_date, to_date, ord)
          cross join lateral (
            select date, close from prices
            where instrument_id = k.id and date >= k.from_date::date and date <= k.to_date::date
          ) p
          order by k.ord, p.date`,
    );
    return groupByOrdinal(keys, found, (r): PriceRecord => ({ instrumentId: r.instrument_id, date: r.date, close: r.close }));
  };
}
