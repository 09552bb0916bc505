import { randomBytes } from 'node:crypto';
import type { Cache } from '@envelop/response-cache';
import type { ExecutionResult } from 'graphql';
import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { createGenerations } from '../generations.js';
import { encodeInvalidation, encodeReset, listenToPeers } from '../invalidation.js';
import type { RedisLink } from '../redis-link.js';
import { sessionOfTag, sessionTag, tagOfEntity } from '../tags.js';
import { createLocalTier } from './local.js';
import { createSharedTier, type Seen } from './redis.js';

export interface ResponseStoreOptions {
  /** Most answers kept in process. */
  maxEntries: number;
  /** Most bytes (of JSON) kept in process. */
  maxBytes: number;
  /** A second tier shared by instances, and the channel their invalidations travel on. */
  redis?: RedisLink;
  /** Keeps one database's answers apart from another's in a shared Redis (see namespace.ts). */
  namespace?: string;
  logger: Logger;
  metrics?: Metrics;
  /**
   * Most tags whose invalidation could not reach Redis, kept to be replayed when it answers again;
   * past it the whole shared tier is dropped instead (a new epoch).
   */
  maxUnconfirmed?: number;
}

/** Most tags whose last invalidation the local tier remembers one by one (see generations.ts), and most sessions whose generation it tracks. */
const TRACKED_TAGS = 100_000;

export interface ResponseStore {
  /**
   * The envelop Cache for one request. Its answers are tagged with the request's session (so a
   * caller's writes reach all their private answers, lists included), and an answer is not stored if
   * one of its tags was invalidated after the request began (it may already be stale). `costOf`
   * tells the operation's estimated cost, kept beside its answer for hits before parsing.
   */
  forRequest(session: string | null, costOf?: () => number | null): Cache;
  /**
   * The answer stored here under `key` for a request of `session` (null: a public answer), ready to be
   * written out before anything is parsed; null on a miss (Redis is not asked: the executor's path does).
   */
  peek(key: string, session: string | null): CachedAnswer | null;
  /**
   * Drops every answer tagged with one of these, here at once and (with Redis) on every instance.
   * Waits for Redis at most one command timeout, and not at all while Redis is skipped: what cannot
   * reach Redis is replayed when it answers again.
   */
  invalidate(tags: string[]): Promise<void>;
  /**
   * Brings this process's copies of a session's answers up to date with Redis before a request of
   * that session looks at them (its cached answers, or an identical request in flight): a write
   * acknowledged on any instance before this request was sent is applied here first, even if its
   * message has not arrived yet. One round trip; nothing without Redis or while it is skipped.
   */
  sync(session: string): Promise<void>;
  /**
   * Drops every answer this process holds, and keeps any request already running from storing its
   * own: for when invalidations may have been missed (the LISTEN connection was lost).
   */
  forgetLocal(): void;
  /** Calls `listener` for every invalidation, from this instance or another (e.g. for the hot-entity cache). */
  onInvalidate(listener: (tags: string[]) => void): void;
  /** Calls `listener` whenever invalidations may have been missed (Redis failed, or another instance says it did). */
  onReset(listener: () => void): void;
}

/** A cached answer as the HTTP layer writes it. */
export interface CachedAnswer {
  /** The stored answer's UTF-8 JSON. */
  body: Buffer;
  cost: number;
}

/**
 * Two tiers of whole answers: an LRU in process, and (with a RedisLink) one shared by instances.
 *
 * Guarantees, on every instance: an answer is never kept by a request that began before one of its
 * tags was invalidated (generations, here and in Redis), an invalidation is one atomic step in Redis
 * that bumps the tags' generations before anyone is told, and no stale answer outlives a Redis
 * failure: while Redis is skipped, private answers neither come from nor go to this process's memory
 * (other instances' writes cannot be heard), invalidations that could not reach Redis are replayed
 * before it is used again, or past `maxUnconfirmed` the whole shared tier is dropped (a new epoch).
 */
export function createResponseStore(options: ResponseStoreOptions): ResponseStore {
  const { logger, metrics, redis: link } = options;
  const maxUnconfirmed = options.maxUnconfirmed ?? 10_000;
  const origin = randomBytes(4).toString('hex');
  let epochs = 0;
  const shared = createSharedTier(options.namespace, () => `${origin}${(++epochs).toString(36)}`);
  const local = createLocalTier({ maxEntries: options.maxEntries, maxBytes: options.maxBytes, metrics });
  const generations = createGenerations(TRACKED_TAGS);
  const listeners: ((tags: string[]) => void)[] = [];
  const resetListeners: (() => void)[] = [];
  /** The generation ("<epoch>:<clock>") of each session's tag that this process's copies reflect. */
  const synced = new LRUCache<string, string>({ max: TRACKED_TAGS });
  /** Tags whose invalidation did not reach Redis, replayed when it answers again. */
  const unconfirmed = new Set<string>();
  let overflowed = false;

  function dropLocal(tags: string[]) {
    generations.invalidate(tags);
    local.drop(tags);
    for (const listener of listeners) listener(tags);
  }

  /** Every private answer here, and every answer still being computed, may have missed a write. */
  function dropLocalPrivate() {
    generations.invalidateAll();
    synced.clear();
    local.dropPrivate();
    for (const listener of resetListeners) listener();
  }

  function remember(tags: string[]) {
    if (overflowed) return;
    for (const tag of tags) unconfirmed.add(tag);
    if (unconfirmed.size > maxUnconfirmed) {
      overflowed = true;
      unconfirmed.clear();
    }
  }

  async function sendInvalidation(redis: Redis, tags: string[]) {
    for (let i = 0; i < tags.length; i += 500) {
      const batch = tags.slice(i, i + 500);
      const at = await shared.invalidate(redis, encodeInvalidation(origin, batch), batch);
      noteSynced(batch, at);
    }
  }

  /** This process's copies of these sessions reflect generation `at` (they were dropped for it). */
  function noteSynced(tags: string[], at: string) {
    for (const tag of tags) if (sessionOfTag(tag) !== null) synced.set(tag, at);
  }

  /** Replays the invalidations that missed Redis, or, past the bound, drops the whole shared tier. */
  async function catchUp(redis: Redis) {
    if (overflowed) {
      await shared.dropAll(redis, encodeReset(origin));
      logger.warn({ maxUnconfirmed }, 'response cache: more invalidations missed Redis than can be replayed: the shared tier was dropped whole');
      overflowed = false;
      unconfirmed.clear();
    }
    const missed = [...unconfirmed];
    await sendInvalidation(redis, missed);
    for (const tag of missed) unconfirmed.delete(tag);
  }

  if (link) {
    listenToPeers(link, shared.channel, origin, {
      dropped(tags, at) {
        dropLocal(tags);
        noteSynced(tags, at);
      },
      reset: dropLocalPrivate,
    });
    link.onDown(dropLocalPrivate);
    link.onRecover(async (redis) => {
      await catchUp(redis);
      // answers begun while Redis was skipped may have missed other instances' writes
      dropLocalPrivate();
    });
    // what was missed during the recovery itself
    link.onUp(() => {
      if (overflowed || unconfirmed.size) void link.run(catchUp).catch(() => {});
    });
  }

  /** While Redis is skipped, this process cannot hear other instances' writes to a session. */
  const localUsableFor = (session: string | null) => session === null || !link || link.up;

  const store: ResponseStore = {
    forRequest(session, costOf = () => null) {
      const tag = session ? sessionTag(session) : null;
      const since = generations.now();
      const localUsable = () => localUsableFor(session);
      let seen: Seen | null = null;
      return {
        async get(key) {
          if (localUsable()) {
            const hit = local.get(key);
            if (hit) {
              metrics?.cacheRequests.inc({ result: 'hit', tier: 'local' });
              return JSON.parse(hit.body.toString('utf8')) as ExecutionResult;
            }
          }
          if (!link?.up) {
            metrics?.cacheRequests.inc({ result: 'miss', tier: 'local' });
            return null;
          }
          try {
            const { epoch, clock, json, ttlMs: ttl, tags } = await link.run((redis) => shared.read(redis, key));
            seen = { epoch, clock };
            // An invalidation this process made or heard since the request began may be newer than the
            // entry (its READ can have reached Redis first). One begun before the READ was sent is
            // already applied: Redis applies one connection's commands in the order they were sent, and
            // the replay of invalidations that missed Redis is sent before any read once it is back.
            if (json && typeof ttl === 'number' && ttl > 0 && generations.unchangedSince(tags, since)) {
              metrics?.cacheRequests.inc({ result: 'hit', tier: 'redis' });
              if (localUsable()) local.keep(key, { body: Buffer.from(json, 'utf8'), tags, cost: costOf() }, ttl);
              return JSON.parse(json) as ExecutionResult;
            }
          } catch {
            /* the link opened its breaker and logs; a miss */
          }
          metrics?.cacheRequests.inc({ result: 'miss', tier: 'redis' });
          return null;
        },

        async set(key, result, entities, ttl) {
          const tags = [...new Set([...[...entities].map(tagOfEntity), ...(tag ? [tag] : [])])];
          // a write to one of its entities since the request began: the answer may predate it
          if (!generations.unchangedSince(tags, since)) return;
          const json = JSON.stringify(result);
          if (localUsable()) local.keep(key, { body: Buffer.from(json, 'utf8'), tags, cost: costOf() }, ttl);
          if (!link?.up || !seen) return;
          const stored = seen;
          await link.run((redis) => shared.write(redis, stored, key, json, ttl, tags)).catch(() => {});
        },

        invalidate: (entities) => store.invalidate([...entities].map(tagOfEntity)),
      };
    },

    peek(key, session) {
      if (!localUsableFor(session)) return null;
      const hit = local.get(key);
      if (!hit || hit.cost === null) return null;
      metrics?.cacheRequests.inc({ result: 'hit', tier: 'local' });
      return { body: hit.body, cost: hit.cost };
    },

    async sync(session) {
      if (!link?.up) return;
      const tag = sessionTag(session);
      try {
        const current = await link.run((redis) => shared.generation(redis, tag));
        const known = synced.get(tag);
        if (known === current) return;
        // a write this process has not heard of yet, or one it cannot rule out (it remembers nothing
        // of the session): its copies go, and requests of it still running keep nothing
        if (known !== undefined || local.holds(tag)) dropLocal([tag]);
        else generations.invalidate([tag]);
        synced.set(tag, current);
      } catch {
        /* the link opened its breaker: private copies are not used until it closes */
      }
    },

    async invalidate(given) {
      const tags = [...new Set(given)];
      if (tags.length === 0) return;
      dropLocal(tags);
      if (!link) return;
      if (!link.up) {
        remember(tags);
        return;
      }
      try {
        await link.run((redis) => sendInvalidation(redis, tags));
      } catch {
        // the breaker is open now: the recovery replays these before Redis is used again
        remember(tags);
      }
    },

    onInvalidate(listener) {
      listeners.push(listener);
    },

    forgetLocal() {
      generations.invalidateAll();
      synced.clear();
      local.clear();
      for (const listener of resetListeners) listener();
    },

    onReset(listener) {
      resetListeners.push(listener);
    },
  };
  return store;
}
