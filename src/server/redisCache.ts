import type { KeyValueCache, KeyValueCacheSetOptions } from '@apollo/utils.keyvaluecache';
import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';

/**
 * Apollo's KeyValueCache over Redis (for the APQ store shared by instances). Every entry expires;
 * a Redis that does not answer is a cache miss, never a failed request.
 */
export function createRedisKeyValueCache(url: string, prefix: string, logger: Logger): KeyValueCache<string> & { close(): Promise<void> } {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2000 });
  redis.on('error', (e) => logger.warn({ err: e }, 'redis cache error'));
  return {
    async get(key) {
      try {
        return (await redis.get(prefix + key)) ?? undefined;
      } catch {
        return undefined;
      }
    },
    async set(key: string, value: string, options?: KeyValueCacheSetOptions) {
      const ttl = options?.ttl ?? 24 * 60 * 60;
      await redis.set(prefix + key, value, 'EX', Math.max(1, Math.ceil(ttl))).catch(() => undefined);
    },
    async delete(key) {
      return (await redis.del(prefix + key).catch(() => 0)) > 0;
    },
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
