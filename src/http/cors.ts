import type { IncomingMessage, ServerResponse } from 'node:http';

const ALLOWED_HEADERS = [
  'content-type',
  'authorization',
  'x-api-key',
  'x-request-id',
  'x-consistent-after',
  'apollo-require-preflight',
  'apollographql-client-name',
  'apollographql-client-version',
].join(', ');

/**
 * CORS for browser origins the server allows: the allow headers on every answer to them, and the
 * preflight answered here (true when it was: nothing else to do for the request).
 */
export function applyCors(req: IncomingMessage, res: ServerResponse, allowOrigin: (origin: string) => boolean): boolean {
  const origin = req.headers.origin;
  if (!origin || !allowOrigin(origin)) return false;
  res.setHeader('access-control-allow-origin', origin);
  res.setHeader('vary', 'Origin');
  // what a browser's script may read of the answer: its id, and a mutation's commit position
  res.setHeader('access-control-expose-headers', 'x-request-id, x-commit-lsn');
  if (req.method !== 'OPTIONS') return false;
  res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
  res.setHeader('access-control-allow-headers', ALLOWED_HEADERS);
  res.setHeader('access-control-max-age', '600');
  res.statusCode = 204;
  res.end();
  return true;
}
