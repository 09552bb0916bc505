import { createHash } from 'node:crypto';
import type { Database } from '../db/client.js';

/**
 * The Redis namespace of one database's cached answers. Sessions are named by user id (`user:7`),
 * and user 7 of one database is not user 7 of another: two deployments that share a Redis (staging
 * and production, say) must never read each other's private answers. So every Redis key and channel
 * of the response cache carries a short hash of the database's identity (host, port and name of the
 * PostgreSQL database, never its credentials; or the embedded database's directory).
 */
export function cacheNamespace(database: Pick<Database, 'identity'>): string {
  return createHash('sha256').update(database.identity).digest('hex').slice(0, 12);
}
