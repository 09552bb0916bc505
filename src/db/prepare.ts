import { LRUCache } from 'lru-cache';

export interface PreparePolicyOptions {
  /** A statement text is prepared from its this-many-th run on: one-off texts are not worth a server-side statement. */
  minRuns?: number;
  /** Most texts prepared; past it, new texts run unprepared (each is a statement kept on every connection). */
  maxPrepared?: number;
  /** Most texts whose runs are counted (least recently seen forgotten first). */
  maxCounted?: number;
}

/**
 * Which statements postgres.js sends as named prepared statements. Drizzle asks for none (it prepares
 * only what is given a name), so every loader batch had PostgreSQL parse and plan its text again and
 * carried the whole text over the wire. The loaders' texts are a small fixed set: prepared once per
 * connection, a batch is a Bind and an Execute. Bounded, because each prepared text lives on every
 * connection of the pool until it closes: texts that vary (a list written out literally) stay unprepared.
 */
export function createPreparePolicy({ minRuns = 3, maxPrepared = 200, maxCounted = 2000 }: PreparePolicyOptions = {}) {
  const runs = new LRUCache<string, number>({ max: maxCounted });
  const prepared = new Set<string>();
  return (text: string): boolean => {
    if (prepared.has(text)) return true;
    const seen = (runs.get(text) ?? 0) + 1;
    runs.set(text, seen);
    if (seen < minRuns || prepared.size >= maxPrepared) return false;
    prepared.add(text);
    runs.delete(text);
    return true;
  };
}
