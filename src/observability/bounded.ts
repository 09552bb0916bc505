import { LRUCache } from 'lru-cache';

export interface BoundedSetOptions {
  /** Most keys held at once. */
  max: number;
  /** A key unused this long leaves the set, freeing its place for another. */
  idleMs: number;
  /** Told of every key that leaves (e.g. to remove its metric series). */
  onLeave?: (key: string) => void;
}

/**
 * A set of client-chosen keys (operation names, client names, label combinations) that can never
 * grow past `max`: a new key joins only while there is room, and a key unused for `idleMs` leaves.
 * A flood of invented names therefore gets nothing (the caller maps refused keys to "other"), and
 * the names real clients keep using keep their places.
 */
export function createBoundedSet({ max, idleMs, onLeave }: BoundedSetOptions) {
  const keys = new LRUCache<string, true>({
    max,
    ttl: idleMs,
    updateAgeOnGet: true,
    ttlAutopurge: true,
    dispose: (_value, key) => onLeave?.(key),
  });
  return {
    /** True when `key` is (now) in the set; false when the set is full. */
    admit(key: string): boolean {
      if (keys.get(key)) return true;
      if (keys.size >= max) return false;
      keys.set(key, true);
      return true;
    },
    get size() {
      return keys.size;
    },
  };
}
