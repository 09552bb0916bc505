import type { ServerResponse } from 'node:http';
import type { Priority } from '../db/sql-stats.js';
import { OverloadedError, type ShedReason } from '../errors.js';
import { sendCodedError } from './respond.js';

/**
 * 503 OVERLOADED with Retry-After, at once: while start-up work runs (`starting`), or when admission
 * (src/admission/load.ts) says the request must not start now, and why.
 */
export function sendShed(res: ServerResponse, reason: ShedReason, priority?: Priority): void {
  sendCodedError(res, new OverloadedError(reason, priority));
}
