import { LRUCache } from 'lru-cache';

/**
 * "Last invalidated at" marks of one process-local clock, so that an answer computed by a request
 * that began before an invalidation of one of its tags is never kept after it (it may predate the
 * write). Bounded: the tags invalidated least recently are forgotten, and a forgotten tag counts as
 * invalidated at the newest mark ever forgotten (the floor), which can only refuse more, never less.
 */
export function createGenerations(maxTags = 100_000) {
  let clock = 0;
  let floor = 0;
  const marks = new LRUCache<string, number>({
    max: maxTags,
    dispose: (at, _tag, reason) => {
      if (reason === 'evict') floor = Math.max(floor, at);
    },
  });
  return {
    /** The clock now: what a request notes when it begins. */
    now: () => clock,
    /** Marks these tags invalidated now. */
    invalidate(tags: Iterable<string>) {
      clock++;
      for (const tag of tags) marks.set(tag, clock);
    },
    /** Marks every tag invalidated now. */
    invalidateAll() {
      floor = ++clock;
      marks.clear();
    },
    /** Whether an answer with these tags, read by a request that began at `since`, may still be kept. */
    unchangedSince(tags: Iterable<string>, since: number): boolean {
      if (floor > since) return false;
      for (const tag of tags) if ((marks.peek(tag) ?? 0) > since) return false;
      return true;
    },
    /** Tags remembered one by one (at most `maxTags`). */
    get size() {
      return marks.size;
    },
  };
}

export type Generations = ReturnType<typeof createGenerations>;
