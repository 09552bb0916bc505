import { sql } from 'drizzle-orm';
import { CodedError, DatabaseUnavailableError, DeadlineExceededError, outcomeUnknown } from '../errors.js';
import { isConnectionError, isStatementCancelled } from './availability.js';
import type { Db } from './client.js';
import type { Deadline } from './deadline.js';

/**
 * Runs a write in one transaction whose answer is the truth about whether it was applied:
 *
 * - once it begins, the HTTP layer waits for its outcome instead of answering at the deadline;
 * - its statements get no more than the time the deadline leaves (statement_timeout, local to the
 *   transaction), and a statement cancelled for it rolls the whole write back: DEADLINE_EXCEEDED,
 *   not applied;
 * - if the deadline passed while it ran, it rolls back instead of committing (the client would
 *   otherwise hear "failed" about a write that is there);
 * - if the connection is lost after COMMIT was sent, nobody can know whether it was applied: the
 *   error says `outcome: "unknown"` and names the idempotency key that a retry learns it with.
 *
 * Anything that fails before COMMIT leaves nothing behind, whatever the error.
 */
export async function writeTransaction<T>(
  db: Db,
  deadline: Deadline | undefined,
  body: (tx: Db) => Promise<T>,
  idempotencyKey: string | null = null,
): Promise<T> {
  deadline?.holdForWrite();
  let committing = false;
  try {
    return await db.transaction(async (tx) => {
      const t = tx as unknown as Db;
      if (deadline) {
        const left = Math.floor(deadline.remainingMs());
        if (left <= 0) throw new DeadlineExceededError(deadline.ms);
        await t.execute(sql`select set_config('statement_timeout', ${String(left)}, true)`);
      }
      const result = await body(t);
      if (deadline?.signal.aborted) throw new DeadlineExceededError(deadline.ms);
      committing = true;
      return result;
    });
  } catch (e) {
    if (committing && (e instanceof DatabaseUnavailableError || isConnectionError(e) || isStatementCancelled(e))) {
      throw outcomeUnknown(e instanceof CodedError ? e : new DatabaseUnavailableError(), idempotencyKey);
    }
    if (!committing && deadline && isStatementCancelled(e)) throw new DeadlineExceededError(deadline.ms);
    throw e;
  }
}
