import type { ServerResponse } from 'node:http';
import type { Deadline } from '../db/deadline.js';
import { ErrorCode } from '../errors.js';
import { sendError } from './respond.js';

export type Expiry = 'expired' | 'outcome unknown';

/**
 * The execution's response, or an expiry once the deadline passes: at once for a query (reading can
 * stop anywhere), but for a write that has begun only if it has not answered `graceMs` later (its
 * transaction rolls back at the deadline and says so itself; past the grace nobody knows its outcome).
 */
export async function answerBy<T>(execution: Promise<T>, deadline: Deadline, graceMs: number): Promise<T | Expiry> {
  const expired = new Promise<'expired'>((resolve) => deadline.signal.addEventListener('abort', () => resolve('expired'), { once: true }));
  const first = await Promise.race([execution, expired]);
  // A query that ends past its deadline ran longer than it may, even where the timer could not fire
  // in time (a run of microtasks, as on the embedded database, starves the timer phase).
  if (first !== 'expired' && !deadline.writing && deadline.remainingMs() <= 0) return 'expired';
  if (first !== 'expired' || !deadline.writing) return first;
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<'outcome unknown'>((resolve) => (timer = setTimeout(() => resolve('outcome unknown'), graceMs)));
  return Promise.race([execution, grace]).finally(() => clearTimeout(timer));
}

/** 504 DEADLINE_EXCEEDED: the operation was cancelled, or (a write past its grace) its outcome is unknown. */
export function sendExpiry(res: ServerResponse, expiry: Expiry, timeoutMs: number): void {
  const unknown = expiry === 'outcome unknown' ? { outcome: 'unknown' } : {};
  const message = unknown.outcome
    ? `the write did not finish within its deadline of ${timeoutMs} ms: its outcome is unknown (retrying with the same idempotencyKey tells)`
    : `the operation ran longer than its deadline of ${timeoutMs} ms and was cancelled`;
  sendError(res, 504, message, ErrorCode.DEADLINE_EXCEEDED, { limit: timeoutMs, ...unknown });
}
