import { sql } from 'drizzle-orm';
import type { Viewer } from '../admission/tokens.js';
import type { Db } from '../db/client.js';
import { users, type UserRow } from '../db/schema.js';
import { array, byKey } from './batch.js';

/** Users by id, authorized: a user can read only themselves; every other id is null without SQL. */
export function usersById(db: Db, viewer: Viewer) {
  return async (ids: readonly number[]): Promise<(UserRow | null)[]> => {
    const allowed = ids.filter((id) => viewer.kind === 'user' && id === viewer.userId);
    if (allowed.length === 0) return ids.map(() => null);
    const rows = await db.select().from(users).where(sql`${users.id} = any(${array(allowed, 'int')})`);
    return byKey(ids, rows, (r) => r.id, (r) => r, () => null);
  };
}
