import DataLoader from 'dataloader';
import { sql, type SQL } from 'drizzle-orm';

/**
 * An array bound as ONE parameter (`$1::int[]`), so a batch of any size is the same statement text:
 * one prepared statement, one pg_stat_statements entry. (Drizzle expands a bare JS array into a list.)
 */
export function array(values: readonly (number | string)[], type: 'int' | 'int8' | 'text'): SQL {
  return sql`${sql.param(values)}::${sql.raw(type)}[]`;
}

/** Puts rows in key order: one result per key, `fallback()` where no row matched (DataLoader's contract). */
export function byKey<K, R, V>(keys: readonly K[], rows: R[], rowKey: (r: R) => K, pick: (r: R) => V, fallback: () => V): V[] {
  const found = new Map<K, V>();
  for (const r of rows) found.set(rowKey(r), pick(r));
  return keys.map((k) => (found.has(k) ? (found.get(k) as V) : fallback()));
}

/** Groups rows under their key, in key order; a key without rows gets an empty list. */
export function groupByKey<K, R, V>(keys: readonly K[], rows: R[], rowKey: (r: R) => K, pick: (r: R) => V): V[][] {
  const groups = new Map<K, V[]>(keys.map((k) => [k, []]));
  for (const r of rows) groups.get(rowKey(r))?.push(pick(r));
  return keys.map((k) => groups.get(k) ?? []);
}

/** Observes each batch a loader dispatches (its name and size), e.g. for metrics or slow logs. */
export type BatchObserver = (loader: string, size: number) => void;

/**
 * A per-request DataLoader whose batch function runs one SQL statement. Object keys (pages, ranges)
 * are cached by their JSON text, so the same page asked twice in one request is fetched once.
 */
export function loader<K, V>(name: string, batch: (keys: readonly K[]) => Promise<V[]>, observe?: BatchObserver): DataLoader<K, V, string | K> {
  return new DataLoader<K, V, string | K>(
    async (keys) => {
      observe?.(name, keys.length);
      return batch(keys);
    },
    {
      name,
      maxBatchSize: 1000,
      cacheKeyFn: (k) => (typeof k === 'object' && k !== null ? JSON.stringify(k) : k),
    },
  );
}
