import { LRUCache } from 'lru-cache';
import { decodeJwt } from 'jose';
import { ANONYMOUS, InvalidTokenError, verifyToken, type Credential } from './tokens.js';
import { UnauthenticatedError } from '../errors.js';

/**
 * The credential of a request from its Authorization header. No header is an anonymous viewer; a
 * header that is present but wrong (not Bearer, bad signature, expired) fails the whole request with
 * 401, so a client with a broken token never silently gets anonymous answers. Whether a delegated
 * token counts is for src/admission/delegation.ts to say, on every request.
 */
// A verified signature stays valid until the token expires, so a client's repeated token is verified
// once: the signature check is the largest cost of a cached answer otherwise. (A delegated token's
// grant is checked on each request all the same, so revoking it needs no list here.)
// (one cache per secret: a token verified under one secret says nothing under another)
const verifiedBySecret = new Map<string, LRUCache<string, { credential: Credential; expiresAt: number }>>();

/** A request's credential, and when its token expires (ms; null without a token, or a token without `exp`). */
export interface VerifiedCredential {
  credential: Credential;
  expiresAt: number | null;
}

export async function credentialFromHeaders(authorization: string | undefined, secret: string): Promise<VerifiedCredential> {
  if (authorization === undefined || authorization.trim() === '') return { credential: ANONYMOUS, expiresAt: null };
  const match = /^Bearer\s+(\S{1,4096})\s*$/i.exec(authorization);
  if (!match) throw new UnauthenticatedError('Authorization must be "Bearer <token>"', 401);
  let verified = verifiedBySecret.get(secret);
  if (!verified) verifiedBySecret.set(secret, (verified = new LRUCache({ max: 10_000 })));
  const key = match[1];
  const known = verified.get(key);
  if (known && known.expiresAt > Date.now()) return known;
  try {
    const credential = await verifyToken(secret, match[1]);
    const exp = decodeJwt(match[1]).exp;
    const expiresAt = typeof exp === 'number' ? exp * 1000 : null;
    if (expiresAt !== null) verified.set(key, { credential, expiresAt });
    return { credential, expiresAt };
  } catch (e) {
    if (e instanceof InvalidTokenError) throw new UnauthenticatedError(e.reason, 401);
    throw e;
  }
}
