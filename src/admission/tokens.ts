import { SignJWT, jwtVerify, errors } from 'jose';

const ISSUER = 'foliograph';
const ALGORITHM = 'HS256';

/** Who is calling: resolved once per request from its credentials, passed to every data access. */
export type Viewer = { kind: 'anonymous' } | { kind: 'user'; userId: number };

export const ANONYMOUS: Viewer = { kind: 'anonymous' };

/**
 * What a bearer token says: a user's own token (`Viewer`), or a token delegated to one partner to act
 * for one user. A delegated token is worth nothing alone: it counts only beside that partner's API
 * key, within its scopes, while the grant it names lives (src/admission/delegation.ts).
 */
export type Credential = Viewer | DelegatedCredential;

export interface DelegatedCredential {
  kind: 'delegated';
  userId: number;
  /** The partner it was minted for (its `aud`, `partner:<id>`). */
  partnerId: number;
  /** What it lets the partner do for the user (its `scope`, space-separated as in RFC 8693). */
  scopes: string[];
  /** The grant row it rests on (its `grant`): revoking that grant ends every token minted on it. */
  grantId: number;
}

/** How long a delegated token lives unless told: short, because it is a bearer credential outside our hands. */
export const DELEGATED_TOKEN_DEFAULT_SECONDS = 3600;
/** The longest a delegated token may live: a day. Longer access means minting again, which checks the grant. */
export const DELEGATED_TOKEN_MAX_SECONDS = 86_400;

const AUDIENCE = /^partner:([1-9][0-9]{0,9})$/;
const partnerAudience = (partnerId: number) => `partner:${partnerId}`;

const key = (secret: string) => new TextEncoder().encode(secret);

const isId = (n: number) => Number.isSafeInteger(n) && n > 0 && n <= 2 ** 31 - 1;

/** Signs a bearer token for a user (`sub` = the user's id). */
export async function signUserToken(secret: string, userId: number, expiresIn = '30d'): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: ALGORITHM })
    .setSubject(String(userId))
    .setIssuer(ISSUER)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(key(secret));
}

/**
 * Signs a token that lets one partner act for one user (`sub` = the user, `aud` = `partner:<id>`),
 * within `scopes`, for `expiresInSeconds` (at most DELEGATED_TOKEN_MAX_SECONDS), on the grant `grantId`.
 * Minting checks the grant and the scopes first (src/admission/delegation.ts); this only signs.
 */
export async function signDelegatedToken(
  secret: string,
  claims: { userId: number; partnerId: number; scopes: string[]; grantId: number },
  expiresInSeconds = DELEGATED_TOKEN_DEFAULT_SECONDS,
): Promise<string> {
  if (!Number.isInteger(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > DELEGATED_TOKEN_MAX_SECONDS) {
    throw new RangeError(`a delegated token lives 1 to ${DELEGATED_TOKEN_MAX_SECONDS} seconds`);
  }
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ scope: claims.scopes.join(' '), grant: claims.grantId })
    .setProtectedHeader({ alg: ALGORITHM })
    .setSubject(String(claims.userId))
    .setAudience(partnerAudience(claims.partnerId))
    .setIssuer(ISSUER)
    .setIssuedAt(now)
    .setExpirationTime(now + expiresInSeconds)
    .sign(key(secret));
}

export class InvalidTokenError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'InvalidTokenError';
  }
}

/** Verifies a bearer token and returns what it says; any defect is an InvalidTokenError. */
export async function verifyToken(secret: string, token: string): Promise<Credential> {
  try {
    const { payload } = await jwtVerify(token, key(secret), { algorithms: [ALGORITHM], issuer: ISSUER });
    const userId = Number(payload.sub);
    if (!isId(userId)) throw new InvalidTokenError('the token names no user');
    // jose checks `aud` only when asked to, so its absence is what makes a user's own token
    if (payload.aud === undefined) return { kind: 'user', userId };
    const audience = Array.isArray(payload.aud) && payload.aud.length === 1 ? payload.aud[0] : payload.aud;
    const partner = typeof audience === 'string' ? AUDIENCE.exec(audience) : null;
    const grantId = Number(payload.grant);
    const { scope, iat, exp } = payload;
    if (!partner || !isId(Number(partner[1])) || typeof scope !== 'string' || !isId(grantId)) throw new InvalidTokenError('the token is not valid');
    if (typeof iat !== 'number' || typeof exp !== 'number' || exp - iat > DELEGATED_TOKEN_MAX_SECONDS) {
      throw new InvalidTokenError(`a delegated token must expire within ${DELEGATED_TOKEN_MAX_SECONDS} seconds of being issued`);
    }
    return { kind: 'delegated', userId, partnerId: Number(partner[1]), scopes: scope.split(' ').filter(Boolean), grantId };
  } catch (e) {
    if (e instanceof InvalidTokenError) throw e;
    if (e instanceof errors.JWTExpired) throw new InvalidTokenError('the token has expired');
    throw new InvalidTokenError('the token is not valid');
  }
}
