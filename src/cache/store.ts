import { randomUUID } from 'node:crypto';
import type { Cache, CacheEntityRecord } from '@envelop/response-cache';
import type { ExecutionResult } from 'graphql';
import { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../logger.js';
import type { Metrics } from '../observability/metrics.js';

export interface ResponseStoreOptions {
  /** Most answers kept in process. */
  maxEntries: number;
  /** Most bytes (of JSON) kept in process. */
  maxBytes: number;
  /** A second tier shared by instances, and the channel their invalidations travel on. */
  redisUrl?: string;
  /** Keeps one database's answers apart from another's in a shared Redis (see namespace.ts). */
  namespace?: string;
  logger: Logger;
  metrics?: Metrics;
}

export interface ResponseStore {
  /**
   * The envelop Cache for one request. Its answers are tagged with the request's session (so a
   * caller's writes reach all their private answers, lists included), and an answer is not stored if
   * a write to its session happened after the request began (it may already be stale).
   */
  forRequest(session: string | null): Cache;
  /** Drops every answer tagged with one of these entities, here and (with Redis) on every instance. */
  invalidate(entities: CacheEntityRecord[]): Promise<void>;
  /** Drops answers tagged with these here only (another process has already cleared the shared tier). */
  invalidateLocal(tags: string[]): void;
  /** Calls `listener` for every invalidation, from this instance or another (e.g. for the hot-entity cache). */
  onInvalidate(listener: (tags: string[]) => void): void;
  close(): Promise<void>;
}

export const sessionTag = (session: string) => `Session:${session}`;
const tagOf = (e: CacheEntityRecord) => (e.id === undefined || e.id === null ? e.typename : `${e.typename}:${e.id}`);

interface Entry {
  result: ExecutionResult;
  tags: string[];
  bytes: number;
}

// Stores an answer in Redis only if no write to its session happened since the request read the
// session's generation. KEYS: entry, generation. ARGV: json, ttl ms, generation seen, tags...
const SET_IF_CURRENT = `
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 4, #ARGV do
  redis.call('SADD', ARGV[i], KEYS[1])
  redis.call('PEXPIRE', ARGV[i], 3600000)
end
return 1
`;

export function createResponseStore(options: ResponseStoreOptions): ResponseStore {
  const scope = options.namespace ? `${options.namespace}:` : '';
  const CHANNEL = `foliograph:${scope}invalidate`;
  const PREFIX = `foliograph:${scope}rc:`;
  const { logger, metrics } = options;
  const origin = randomUUID();
  const byTag = new Map<string, Set<string>>();
  const generations = new Map<string, number>();
  const listeners: ((tags: string[]) => void)[] = [];

  const local = new LRUCache<string, Entry>({
    max: options.maxEntries,
    maxSize: options.maxBytes,
    sizeCalculation: (e) => Math.max(1, e.bytes),
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

  const redis = options.redisUrl ? new Redis(options.redisUrl, { maxRetriesPerRequest: 1, connectTimeout: 2000 }) : null;
  const subscriber = options.redisUrl ? new Redis(options.redisUrl, { maxRetriesPerRequest: null, connectTimeout: 2000 }) : null;
  redis?.on('error', (e) => logger.warn({ err: e }, 'response cache: redis error'));
  subscriber?.on('error', (e) => logger.warn({ err: e }, 'response cache: redis subscriber error'));
  const subscribed = subscriber
    ? subscriber.subscribe(CHANNEL).catch((e) => logger.warn({ err: e }, 'response cache: cannot subscribe to invalidations'))
    : Promise.resolve();
  subscriber?.on('message', (_channel, message) => {
    try {
      const { from, tags } = JSON.parse(message) as { from: string; tags: string[] };
      if (from !== origin) dropLocal(tags);
    } catch {
      /* not ours */
    }
  });

  function dropLocal(tags: string[]) {
    for (const tag of tags) {
      generations.set(tag, (generations.get(tag) ?? 0) + 1);
      for (const key of [...(byTag.get(tag) ?? [])]) local.delete(key);
      byTag.delete(tag);
      metrics?.cacheInvalidations.inc({ type: tag.split(':')[0] });
    }
    for (const listener of listeners) listener(tags);
  }

  function keep(key: string, entry: Entry, ttlMs: number) {
    local.set(key, entry, { ttl: ttlMs });
    if (!local.has(key)) return; // too big for the byte bound
    for (const tag of entry.tags) {
      let keys = byTag.get(tag);
      if (!keys) byTag.set(tag, (keys = new Set()));
      keys.add(key);
    }
  }

  const store: ResponseStore = {
    forRequest(session) {
      const tag = session ? sessionTag(session) : null;
      const startGeneration = tag ? (generations.get(tag) ?? 0) : 0;
      let redisGeneration: string | null = null;
      return {
        async get(key) {
          const hit = local.get(key);
          if (hit) {
            metrics?.cacheRequests.inc({ result: 'hit', tier: 'local' });
            return hit.result;
          }
          if (!redis) {
            metrics?.cacheRequests.inc({ result: 'miss', tier: 'local' });
            return null;
          }
          try {
            const results = await redis
              .multi()
              .get(PREFIX + key)
              .pttl(PREFIX + key)
              .get(`${PREFIX}gen:${tag ?? 'public'}`)
              .exec();
            const json = results?.[0]?.[1] as string | null;
            const ttl = results?.[1]?.[1] as number;
            redisGeneration = (results?.[2]?.[1] as string | null) ?? '0';
            if (typeof json === 'string' && typeof ttl === 'number' && ttl > 0) {
              metrics?.cacheRequests.inc({ result: 'hit', tier: 'redis' });
              const stored = JSON.parse(json) as { result: ExecutionResult; tags: string[] };
              keep(key, { result: stored.result, tags: stored.tags, bytes: json.length }, ttl);
              return stored.result;
            }
          } catch (e) {
            logger.warn({ err: e }, 'response cache: redis read failed');
          }
          metrics?.cacheRequests.inc({ result: 'miss', tier: 'redis' });
          return null;
        },

        async set(key, result, entities, ttl) {
          // a write to this session since the request began: the answer may predate it
          if (tag && (generations.get(tag) ?? 0) !== startGeneration) return;
          const tags = [...new Set([...[...entities].map(tagOf), ...(tag ? [tag] : [])])];
          const json = JSON.stringify({ result, tags });
          keep(key, { result, tags, bytes: json.length }, ttl);
          if (!redis || redisGeneration === null) return;
          try {
            await redis.eval(SET_IF_CURRENT, 2, PREFIX + key, `${PREFIX}gen:${tag ?? 'public'}`, json, Math.ceil(ttl), redisGeneration, ...tags.map((t) => `${PREFIX}tag:${t}`));
          } catch (e) {
            logger.warn({ err: e }, 'response cache: redis write failed');
          }
        },

        invalidate: (entities) => store.invalidate([...entities]),
      };
    },

    async invalidate(entities) {
      const tags = [...new Set(entities.map(tagOf))];
      if (tags.length === 0) return;
      dropLocal(tags);
      if (!redis) return;
      try {
        const pipeline = redis.pipeline();
        for (const tag of tags) pipeline.smembers(`${PREFIX}tag:${tag}`);
        const members = ((await pipeline.exec()) ?? []).flatMap(([, keys]) => (keys as string[]) ?? []);
        const write = redis.multi();
        if (members.length) write.del(...members);
        for (const tag of tags) {
          write.del(`${PREFIX}tag:${tag}`);
          if (tag.startsWith('Session:')) write.incr(`${PREFIX}gen:${tag}`).pexpire(`${PREFIX}gen:${tag}`, 3_600_000);
        }
        write.publish(CHANNEL, JSON.stringify({ from: origin, tags }));
        await write.exec();
      } catch (e) {
        logger.warn({ err: e, tags }, 'response cache: redis invalidation failed');
      }
    },

    invalidateLocal(tags) {
      dropLocal(tags);
    },

    onInvalidate(listener) {
      listeners.push(listener);
    },

    async close() {
      await subscribed;
      await Promise.all([redis?.quit().catch(() => redis.disconnect()), subscriber?.quit().catch(() => subscriber.disconnect())]);
    },
  };
  return store;
}
