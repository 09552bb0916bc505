import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { users } from '../db/schema.js';
import { mintDelegatedToken, parseLifetime } from './delegation.js';
import { PartnerError } from './partners.js';
import { signUserToken } from './tokens.js';

/** What `npm run token` asks for: a user's own token, or one delegated to a partner. */
export interface TokenRequest {
  email: string;
  /** A partner's name: the token lets that partner act for the user (beside its API key). */
  partner?: string;
  /** The delegated token's scopes (a partner's token only). */
  scopes?: string[];
  /** Its lifetime: `30d` by default for a user's token, `1h` for a delegated one. */
  expires?: string;
}

export interface IssuedToken {
  token: string;
  /** One line for the person who asked (what the token is for and until when), never the token. */
  note: string;
}

/** A request that names no user, a partner the user has not granted, a bad lifetime: said in one line. */
export class TokenRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenRequestError';
  }
}

/**
 * Mints the token a request asks for, from the database's users, partners and grants: the one path
 * behind both the CLI and the development server's `/dev/token`. Refusals sign nothing.
 */
export async function issueToken(db: Db, secret: string, request: TokenRequest): Promise<IssuedToken> {
  const email = request.email.trim().toLowerCase();
  if (!email) throw new TokenRequestError('an email is required');
  if (request.partner !== undefined) {
    try {
      const minted = await mintDelegatedToken(db, secret, { partner: request.partner, email, scopes: request.scopes, expires: request.expires });
      const note = `a token for ${request.partner} to act for ${email} with ${minted.scopes.join(', ')} until ${minted.expiresAt.toISOString()}; send it beside ${request.partner}'s X-Api-Key`;
      return { token: minted.token, note };
    } catch (e) {
      throw e instanceof PartnerError ? new TokenRequestError(e.message) : e;
    }
  }
  if (request.scopes !== undefined) throw new TokenRequestError('--scopes is for a token delegated to a partner: add --partner NAME');
  const expires = request.expires ?? '30d';
  let seconds: number;
  try {
    seconds = parseLifetime(expires);
  } catch (e) {
    throw e instanceof PartnerError ? new TokenRequestError(e.message) : e;
  }
  const [user] = await db.select({ id: users.id }).from(users).where(eq(users.email, email));
  if (!user) throw new TokenRequestError(`no user with the email ${email}`);
  return { token: await signUserToken(secret, user.id, `${seconds}s`), note: `a token for ${email}, valid for ${expires}` };
}
