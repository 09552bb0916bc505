import type { ServerResponse } from 'node:http';
import { ErrorCode } from '../errors.js';
import { sendError } from './respond.js';

/**
 * 503 OVERLOADED with Retry-After, at once: while start-up work runs (`starting`), or when the server
 * says why it sheds (a long line for database connections: more requests would only wait longer).
 */
export function sendShed(res: ServerResponse, reason: string): void {
  res.setHeader('retry-after', '1');
  const message = reason === 'starting' ? 'the server is starting: retry in a moment' : 'the server is overloaded: retry in a moment';
  sendError(res, 503, message, ErrorCode.OVERLOADED, { reason });
}
