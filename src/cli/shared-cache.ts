import { cacheNamespace } from '../cache/namespace.js';
import { createResponseStore } from '../cache/store.js';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { createLogger } from '../logger.js';

/**
 * Servers drop their own cached answers on NOTIFY; the Redis tier that they share is cleared here,
 * by the command that made them stale.
 */
export async function clearSharedInstrumentAnswers(config: Config, database: Database, instrumentIds: number[]): Promise<void> {
  if (!config.redisUrl || instrumentIds.length === 0) return;
  const store = createResponseStore({ maxEntries: 1, maxBytes: 1, redisUrl: config.redisUrl, namespace: cacheNamespace(database), logger: createLogger('warn') });
  await store.invalidate(instrumentIds.map((id) => ({ typename: 'Instrument', id })));
  await store.close();
}
