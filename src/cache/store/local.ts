import { LRUCache } from 'lru-cache';
import type { Metrics } from '../../observability/metrics.js';
import { sessionOfTag, typeOfTag } from '../tags.js';

/** One stored answer. */
export interface Entry {
  /**
   * The answer as UTF-8 JSON (`{"data":…}`), encoded once when kept: what a hit before parsing writes
   * out as it is, and what envelop's own lookup parses. Its length is what the byte bound counts.
   */
  body: Buffer;
  tags: string[];
  /** The operation's estimated cost, charged to the budget of whoever it is served to (null: not known). */
  cost: number | null;
}

export interface LocalTierOptions {
  /** Most answers kept. */
  maxEntries: number;
  /** Most bytes (of JSON) kept. */
  maxBytes: number;
  metrics?: Metrics;
}

/**
 * The in-process tier: an LRU bounded in entries and bytes, and the index from each tag to the keys of
 * the answers carrying it, kept exact as entries come, go and are evicted. It knows nothing of Redis
 * or generations: tiers.ts decides what may be kept and when it must go.
 */
export function createLocalTier({ maxEntries, maxBytes, metrics }: LocalTierOptions) {
  const byTag = new Map<string, Set<string>>();
  const lru = new LRUCache<string, Entry>({
    max: maxEntries,
    maxSize: maxBytes,
    sizeCalculation: (e) => Math.max(1, e.body.length),
    ttlAutopurge: false,
    dispose: (entry, key, reason) => {
      for (const tag of entry.tags) {
        const keys = byTag.get(tag);
        keys?.delete(key);
        if (keys?.size === 0) byTag.delete(tag);
      }
      if (reason === 'evict') metrics?.cacheEvictions.inc();
    },
  });

  return {
    get: (key: string) => lru.get(key),

    /** Keeps an answer for `ttlMs` (one too big for the byte bound is not kept). */
    keep(key: string, entry: Entry, ttlMs: number) {
      lru.set(key, entry, { ttl: ttlMs });
      if (!lru.has(key)) return;
      for (const tag of entry.tags) {
        let keys = byTag.get(tag);
        if (!keys) byTag.set(tag, (keys = new Set()));
        keys.add(key);
      }
    },

    /** Whether an answer here carries the tag. */
    holds: (tag: string) => byTag.has(tag),

    /** Drops every answer carrying one of these tags (counted by the tag's type). */
    drop(tags: string[]) {
      for (const tag of tags) {
        for (const key of [...(byTag.get(tag) ?? [])]) lru.delete(key);
        byTag.delete(tag);
        metrics?.cacheInvalidations.inc({ type: typeOfTag(tag) });
      }
    },

    /** Drops every private answer (one that carries a session's tag); public ones stay. */
    dropPrivate() {
      for (const [tag, keys] of [...byTag]) if (sessionOfTag(tag) !== null) for (const key of [...keys]) lru.delete(key);
    },

    clear: () => lru.clear(),
  };
}

export type LocalTier = ReturnType<typeof createLocalTier>;
