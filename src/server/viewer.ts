import { ANONYMOUS, InvalidTokenError, verifyUserToken, type Viewer } from '../auth/tokens.js';
import { UnauthenticatedError } from '../errors.js';

/**
 * The viewer of a request from its Authorization header. No header is an anonymous viewer; a header
 * that is present but wrong (not Bearer, bad signature, expired) fails the whole request with 401,
 * so a client with a broken token never silently gets anonymous answers.
 */
export async function viewerFromHeaders(authorization: string | undefined, secret: string): Promise<Viewer> {
  if (authorization === undefined || authorization.trim() === '') return ANONYMOUS;
  const match = /^Bearer\s+(\S{1,4096})\s*$/i.exec(authorization);
  if (!match) throw new UnauthenticatedError('Authorization must be "Bearer <token>"', 401);
  try {
    return await verifyUserToken(secret, match[1]);
  } catch (e) {
    if (e instanceof InvalidTokenError) throw new UnauthenticatedError(e.reason, 401);
    throw e;
  }
}
