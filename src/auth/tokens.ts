import { SignJWT, jwtVerify, errors } from 'jose';

const ISSUER = 'foliograph';
const ALGORITHM = 'HS256';

/** Who is calling: resolved once per request from its credentials, passed to every data access. */
export type Viewer = { kind: 'anonymous' } | { kind: 'user'; userId: number };

export const ANONYMOUS: Viewer = { kind: 'anonymous' };

const key = (secret: string) => new TextEncoder().encode(secret);

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

export class InvalidTokenError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'InvalidTokenError';
  }
}

/** Verifies a bearer token and returns its viewer; any defect is an InvalidTokenError. */
export async function verifyUserToken(secret: string, token: string): Promise<Viewer> {
  try {
    const { payload } = await jwtVerify(token, key(secret), { algorithms: [ALGORITHM], issuer: ISSUER });
    const userId = Number(payload.sub);
    if (!Number.isSafeInteger(userId) || userId <= 0 || userId > 2 ** 31 - 1) throw new InvalidTokenError('the token names no user');
    return { kind: 'user', userId };
  } catch (e) {
    if (e instanceof InvalidTokenError) throw e;
    if (e instanceof errors.JWTExpired) throw new InvalidTokenError('the token has expired');
    throw new InvalidTokenError('the token is not valid');
  }
}
