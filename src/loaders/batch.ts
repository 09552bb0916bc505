import DataLoader from 'dataloader';
import { sql, type SQL } from 'drizzle-orm';
import { scopeDb, type Db } from '../db/client.js';
import type { Deadline } from '../db/deadline.js';
import type { SqlStats } from '../db/sql-stats.js';
import { codedCause, DeadlineExceededError } from '../errors.js';
import { inSpan } from '../observability/tracing.js';

/**
 * An array bound as ONE parameter (`$1::int[]`), so a batch of any size is the same statement text:
 * one prepared statement, one pg_stat_statements entry. (Drizzle expands a bare JS array into a list.)
 */
export function array(values: readonly (number | string)[], type: 'int' | 'int8' | 'text'): SQL {
  return sql`${sql.param(values)}::${sql.raw(type)}[]`;
}

/** One field of every key as one array parameter: the columns that `unnest(...) with ordinality` zips back into keys. */
export function column<K>(keys: readonly K[], type: 'int' | 'int8' | 'text', pick: (key: K, index: number) => number | string): SQL {
  return array(keys.map(pick), type);
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

/**
 * Groups the rows of a batch whose keys went in as `unnest(...) with ordinality as k(..., ord)`:
 * `ord` is the key's position counted from 1 (an int8: a string from postgres.js). One list per key,
 * in key order; a key without rows gets an empty list.
 */
export function groupByOrdinal<K, R extends { ord: number | string }, V>(keys: readonly K[], rows: R[], pick: (r: R) => V): V[][] {
  const groups: V[][] = keys.map(() => []);
  for (const r of rows) groups[Number(r.ord) - 1]?.push(pick(r));
  return groups;
}

/** One dispatched batch: which loader, how many keys, how many rows came back, how long it took. */
export interface BatchEvent {
  loader: string;
  keys: number;
  rows: number;
  ms: number;
  /** The statements the batch sent (none when a shared cache answered), for the slow-SQL log. */
  statements: { query: string; params: unknown[] }[];
}

/** Observes each batch a loader dispatches, e.g. for a request's actual cost, metrics or slow logs. */
export type BatchObserver = (event: BatchEvent) => void;

/** Rows in a batch's results: a page or list counts its items, a single row counts one, null none. */
function countRows(results: unknown[]): number {
  let n = 0;
  for (const r of results) {
    if (r === null || r === undefined || r instanceof Error) continue;
    if (Array.isArray(r)) n += r.length;
    else if (typeof r === 'object' && Array.isArray((r as { rows?: unknown }).rows)) n += (r as { rows: unknown[] }).rows.length;
    else n += 1; // one row, or a count
  }
  return n;
}

/**
 * A per-request DataLoader whose batch function runs one SQL statement. Object keys (pages, ranges)
 * are cached by their JSON text, so the same page asked twice in one request is fetched once.
 */
export interface LoaderHooks {
  /** The database the loader reads (the request's handle: each batch's statements count in its unit too, see scopeDb). */
  db: Db;
  observe?: BatchObserver;
  /** Once the request's deadline has passed, no further batch is sent to the database. */
  deadline?: Deadline;
  /** False: every key alone (the naive N+1 design the incident bench compares with); true by default. */
  batching?: boolean;
}

/** A batch function over a database handle: the loader gives each batch a handle of its own, which captures its statements. */
export type BatchOver<K, V> = (db: Db) => (keys: readonly K[]) => Promise<V[]>;

export function loader<K, V>(name: string, batch: BatchOver<K, V>, hooks: LoaderHooks): DataLoader<K, V, string | K> {
  const { db, observe, deadline, batching = true } = hooks;
  return new DataLoader<K, V, string | K>(
    async (keys) => {
      // by the clock, not only the signal: its timer may not have had a turn yet
      if (deadline && deadline.remainingMs() <= 0) throw new DeadlineExceededError(deadline.ms);
      // one span per batch: the loading a resolver waits for, and its one SQL statement
      return inSpan(`loader ${name}`, { 'foliograph.loader': name, 'foliograph.keys': keys.length, 'db.system': 'postgresql' }, async (span) => {
        const started = performance.now();
        // the batch's own unit of work, part of the request's: its statements for the slow-SQL log
        const unit: SqlStats = { statements: 0, capture: [], deadline };
        let results: V[];
        try {
          results = await batch(scopeDb(db, unit))(keys);
        } catch (e) {
          // the gate's refusals (OVERLOADED, DATABASE_UNAVAILABLE) reach the client with their code and status, not as Drizzle's wrapper
          throw codedCause(e) ?? e;
        }
        const statements = unit.capture!;
        const rows = countRows(results);
        span.setAttribute('foliograph.rows', rows);
        observe?.({ loader: name, keys: keys.length, rows, ms: performance.now() - started, statements });
        return results;
      });
    },
    {
      name,
      maxBatchSize: batching ? 1000 : 1,
      cacheKeyFn: (k) => (typeof k === 'object' && k !== null ? JSON.stringify(k) : k),
    },
  );
}
