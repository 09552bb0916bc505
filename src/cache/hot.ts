import { LRUCache } from 'lru-cache';
import { createGenerations } from './generations.js';
import { instrumentOfTag, instrumentTag } from './tags.js';
import type { InstrumentRow } from '../db/schema.js';
import type { PriceRecord } from '../loaders/instruments.js';

export interface HotCacheOptions {
  /** How long an entry is shared across requests. */
  ttlMs: number;
  /** Most entries per kind. */
  max?: number;
}

type Batch<K, V> = (keys: readonly K[]) => Promise<V[]>;

/**
 * Instruments (by id and by symbol) and latest prices, shared across requests for a short time below
 * the response cache, so that even response-cache misses on different portfolios rarely reach those
 * tables. Dropped at once by invalidations that name an instrument (new prices, forecasts), and a
 * batch that began before such an invalidation keeps nothing it read (it may predate the write).
 */
export function createHotCache({ ttlMs, max = 50_000 }: HotCacheOptions) {
  const byId = new LRUCache<number, { row: InstrumentRow | null }>({ max, ttl: ttlMs });
  const bySymbol = new LRUCache<string, { row: InstrumentRow | null }>({ max, ttl: ttlMs });
  const prices = new LRUCache<number, { price: PriceRecord | null }>({ max, ttl: ttlMs });
  const generations = createGenerations(max);
  const tagOf = (id: number | undefined) => (id === undefined ? [] : [instrumentTag(id)]);

  /** A batch function that asks the database only for the keys the cache does not hold. */
  function through<K extends string | number, V, E extends object>(
    cache: LRUCache<K, E>,
    batch: Batch<K, V>,
    wrap: (v: V) => E,
    unwrap: (e: E) => V,
    /** The instrument a fetched value belongs to (a symbol's is known only once its row is read). */
    idOf: (key: K, value: V) => number | undefined,
  ): Batch<K, V> {
    return async (keys) => {
      const since = generations.now();
      const out = new Array<V>(keys.length);
      const missing: K[] = [];
      const where: number[] = [];
      keys.forEach((k, i) => {
        const hit = cache.get(k);
        if (hit) out[i] = unwrap(hit);
        else {
          missing.push(k);
          where.push(i);
        }
      });
      if (missing.length) {
        const fetched = await batch(missing);
        fetched.forEach((v, j) => {
          out[where[j]] = v;
          if (!(v instanceof Error) && generations.unchangedSince(tagOf(idOf(missing[j], v)), since)) cache.set(missing[j], wrap(v));
        });
      }
      return out;
    };
  }

  return {
    instrumentsById: (batch: Batch<number, InstrumentRow | null>) =>
      through(
        byId,
        batch,
        (row) => ({ row }),
        (e) => e.row,
        (id) => id,
      ),
    instrumentsBySymbol: (batch: Batch<string, InstrumentRow | null>) =>
      through(
        bySymbol,
        batch,
        (row) => ({ row }),
        (e) => e.row,
        (_, row) => row?.id,
      ),
    latestPrices: (batch: Batch<number, PriceRecord | null>) =>
      through(
        prices,
        batch,
        (price) => ({ price }),
        (e) => e.price,
        (id) => id,
      ),
    /** Drops what invalidation tags name: one instrument, or every instrument for `Instrument`/`Price`. */
    invalidate(tags: string[]) {
      for (const tag of tags) {
        const id = instrumentOfTag(tag);
        if (id === null) continue;
        if (id === 'all') {
          generations.invalidateAll();
          byId.clear();
          bySymbol.clear();
          prices.clear();
          continue;
        }
        generations.invalidate([instrumentTag(id)]);
        byId.delete(id);
        prices.delete(id);
        for (const [symbol, e] of bySymbol.entries()) if (e.row?.id === id) bySymbol.delete(symbol);
      }
    },
  };
}

export type HotCache = ReturnType<typeof createHotCache>;
