import { cacheNamespace } from '../../cache/namespace.js';
import { createRedisLink } from '../../cache/redis-link.js';
import { createResponseStore } from '../../cache/store/tiers.js';
import { instrumentTag } from '../../cache/tags.js';
import type { Config } from '../../config.js';
import type { Database } from '../../db/client.js';
import { createLogger } from '../../observability/logger.js';

/**
 * Servers drop their own cached answers on NOTIFY, and bump the instruments' generations in the Redis
 * tier they share; this does the same from the command that made them stale, so the shared tier is
 * right even when no server is running.
 */
export async function clearSharedInstrumentAnswers(config: Config, database: Database, instrumentIds: number[]): Promise<void> {
  if (!config.redis.url || instrumentIds.length === 0) return;
  const logger = createLogger('warn');
  const redis = createRedisLink({ url: config.redis.url, commandTimeoutMs: Math.max(config.redis.commandTimeoutMs, 1000), logger });
  try {
    if (!(await redis.whenUp(5000))) {
      logger.warn('redis does not answer: the shared cache tier is cleared by the servers that hear the NOTIFY');
      return;
    }
    const store = createResponseStore({ maxEntries: 1, maxBytes: 1, redis, namespace: cacheNamespace(database), logger });
    await store.invalidate(instrumentIds.map(instrumentTag));
  } finally {
    await redis.close();
  }
}
