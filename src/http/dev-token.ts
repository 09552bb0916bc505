import type { IncomingMessage, ServerResponse } from 'node:http';
import { issueToken, TokenRequestError, type TokenRequest } from '../admission/mint.js';
import type { Db } from '../db/client.js';
import { BodyTooLarge, readBody } from './body.js';

/** The development server's token route: `npm run token` asks it while the server holds PGlite's directory. */
export const DEV_TOKEN_PATH = '/dev/token';

const MAX_BODY_BYTES = 4096;
const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

const reply = (res: ServerResponse, status: number, body: object) => {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.end(JSON.stringify(body));
};

function tokenRequestOf(text: string): TokenRequest | string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'the body is not JSON';
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'the body is a JSON object: {"email": …}';
  const { email, partner, scopes, expires } = body as Record<string, unknown>;
  if (typeof email !== 'string' || email.length > 320) return 'email is a string';
  if (partner !== undefined && (typeof partner !== 'string' || partner.length > 100)) return 'partner is a string';
  if (expires !== undefined && (typeof expires !== 'string' || expires.length > 20)) return 'expires is a string such as 1h or 30d';
  if (scopes !== undefined && (!Array.isArray(scopes) || scopes.length > 10 || scopes.some((s) => typeof s !== 'string' || s.length > 50)))
    return 'scopes is a short list of strings';
  return { email, partner, scopes: scopes as string[] | undefined, expires };
}

/**
 * `POST /dev/token {"email": …, "partner"?, "scopes"?, "expires"?}` → `{token, note}`: the same tokens
 * `npm run token` mints, for a newcomer whose embedded server holds the data directory. Mounted only
 * in development on the embedded database (see app.ts), where the signing key is the development one
 * and the data is the demo's; even then it answers only callers on this machine (loopback).
 */
export function createDevTokenRoute(db: Db, secret: string) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!LOOPBACK.has(req.socket.remoteAddress ?? '')) return reply(res, 403, { error: 'the development token route answers this machine only' });
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return reply(res, 405, { error: 'POST {"email": "…"}' });
    }
    let text: string;
    try {
      text = await readBody(req, MAX_BODY_BYTES);
    } catch (e) {
      if (e instanceof BodyTooLarge) return reply(res, 413, { error: `the body is larger than ${MAX_BODY_BYTES} bytes` });
      throw e;
    }
    const request = tokenRequestOf(text);
    if (typeof request === 'string') return reply(res, 400, { error: request });
    try {
      return reply(res, 200, await issueToken(db, secret, request));
    } catch (e) {
      if (e instanceof TokenRequestError) return reply(res, 400, { error: e.message });
      throw e;
    }
  };
}
