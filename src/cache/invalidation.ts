import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';

/** The PostgreSQL channel on which writers announce what changed to every server on the database. */
export const INVALIDATION_CHANNEL = 'foliograph_invalidate';

/**
 * Tells every server on this database (and the commands' own process) that answers naming these
 * entities are stale: NOTIFY reaches them whatever their Redis set-up, as soon as the writer's
 * transaction commits. Payloads stay far below NOTIFY's 8,000-byte limit.
 */
export async function notifyInvalidation(db: Db, tags: string[]): Promise<void> {
  for (let i = 0; i < tags.length; i += 200) {
    await db.execute(sql`select pg_notify(${INVALIDATION_CHANNEL}, ${JSON.stringify(tags.slice(i, i + 200))})`);
  }
}

export function parseInvalidation(payload: string): string[] {
  try {
    const tags = JSON.parse(payload);
    return Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string') : [];
  } catch {
    return [];
  }
}
