import { decodeJwt } from 'jose';
import { LRUCache } from 'lru-cache';
import { ANONYMOUS, DELEGATED_TOKEN_DEFAULT_SECONDS, DELEGATED_TOKEN_MAX_SECONDS, signDelegatedToken, type Credential, type Viewer } from './tokens.js';
import type { Db } from '../db/client.js';
import { CodedError, ErrorCode } from '../errors.js';
import { liveGrant, liveGrantOf, partnerNamed, PartnerError, userWithEmail, type AuthenticatedPartner } from './partners.js';
import { DELEGATED_SCOPES, isScope, scopeFor, type Scope } from './scopes.js';

// Delegation: a partner acts for a user only with a token minted for that partner and that user, on
// the user's live grant, beside the partner's own API key. The token alone is not the user (without
// the key it is refused), the key alone is no user, and the user's own token is never the partner's.

const UNITS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** `90s`, `15m`, `1h`, `1d` in seconds; anything else is a PartnerError. */
export function parseLifetime(text: string): number {
  const match = /^([1-9][0-9]{0,6})([smhd])$/.exec(text.trim());
  if (!match) throw new PartnerError(`--expires takes a lifetime such as 15m, 1h or 1d, not ${JSON.stringify(text)}`);
  return Number(match[1]) * UNITS[match[2] as keyof typeof UNITS];
}

export interface MintOptions {
  /** The partner's name. */
  partner: string;
  /** The user's email. */
  email: string;
  /** What the token lets the partner do; by default every scope of the partner that acts for a user. */
  scopes?: string[];
  /** Its lifetime (`15m`, `1h`, `1d`): an hour by default, a day at most. */
  expires?: string;
}

export interface MintedToken {
  token: string;
  scopes: Scope[];
  expiresAt: Date;
  grantId: number;
}

/**
 * A token that lets the partner act for the user: only on the user's live grant, only within the
 * partner's scopes, and only for a short while. Refused (PartnerError) otherwise, signing nothing.
 */
export async function mintDelegatedToken(db: Db, secret: string, options: MintOptions): Promise<MintedToken> {
  const seconds = parseLifetime(options.expires ?? `${DELEGATED_TOKEN_DEFAULT_SECONDS}s`);
  if (seconds > DELEGATED_TOKEN_MAX_SECONDS)
    throw new PartnerError(`a delegated token lives at most ${DELEGATED_TOKEN_MAX_SECONDS / 3600} h: mint a new one when it expires`);
  const partner = await partnerNamed(db, options.partner);
  const user = await userWithEmail(db, options.email);
  const held = DELEGATED_SCOPES.filter((s) => partner.scopes.includes(s));
  const scopes = options.scopes ? [...new Set(options.scopes)] : held;
  for (const scope of scopes) {
    if (!isScope(scope)) throw new PartnerError(`unknown scope ${JSON.stringify(scope)}; a delegated token carries ${DELEGATED_SCOPES.join(' or ')}`);
    if (!DELEGATED_SCOPES.includes(scope)) throw new PartnerError(`${scope} is public: every partner has it with its key alone, no token needed`);
    if (!held.includes(scope)) throw new PartnerError(`partner ${partner.name} has no ${scope} scope`);
  }
  if (scopes.length === 0) throw new PartnerError(`partner ${partner.name} has no scope that acts for a user (${DELEGATED_SCOPES.join(', ')})`);
  const grant = await liveGrantOf(db, partner.id, user.id);
  if (!grant) throw new PartnerError(`${user.email} has not granted ${partner.name} access: npm run partner:grant -- ${partner.name} ${user.email}`);
  const token = await signDelegatedToken(secret, { userId: user.id, partnerId: partner.id, scopes, grantId: grant.id }, seconds);
  return { token, scopes: scopes as Scope[], expiresAt: new Date(decodeJwt(token).exp! * 1000), grantId: grant.id };
}

export interface DelegationOptions {
  db: Db;
  /** How long a grant's lookup is reused: a revoked grant stops its tokens within this (0: looked up every time). */
  cacheTtlMs?: number;
}

const unauthenticated = (message: string) => new CodedError(ErrorCode.UNAUTHENTICATED, message, {}, 401);
const forbidden = (message: string) => new CodedError(ErrorCode.FORBIDDEN, message, {}, 403);

/**
 * Who a request acts as, from its bearer credential and the partner of its API key (already
 * authenticated), before anything runs. Every refusal here costs at most the grant's lookup.
 */
export function createDelegation({ db, cacheTtlMs = 10_000 }: DelegationOptions) {
  const grants = new LRUCache<number, { grant: { partnerId: number; userId: number } | null }>({ max: 10_000, ttl: Math.max(1, cacheTtlMs) });

  async function grantOf(grantId: number) {
    let hit = cacheTtlMs > 0 ? grants.get(grantId) : undefined;
    if (!hit) {
      hit = { grant: await liveGrant(db, grantId) };
      if (cacheTtlMs > 0) grants.set(grantId, hit);
    }
    return hit.grant;
  }

  return {
    /**
     * A partner's operation acts for the user of its delegated token, within the token's scopes and
     * the partner's (`trades:write` for a mutation, `portfolios:read` otherwise), while the grant lives.
     */
    async viewerFor(credential: Credential, partner: AuthenticatedPartner | null, operationType?: string): Promise<Viewer> {
      if (!partner) {
        if (credential.kind === 'delegated') throw unauthenticated("this token was delegated to a partner: it works only beside that partner's X-Api-Key");
        return credential;
      }
      if (credential.kind === 'anonymous') return ANONYMOUS;
      if (credential.kind === 'user') {
        throw unauthenticated(
          `a partner cannot use a user's own token: act for a user with a token delegated to ${partner.name} (npm run token -- EMAIL --partner ${partner.name})`,
        );
      }
      if (credential.partnerId !== partner.id) throw unauthenticated(`this token was delegated to another partner, not to ${partner.name}`);
      const scope = scopeFor(operationType);
      if (!credential.scopes.includes(scope)) throw forbidden(`this delegated token does not carry the ${scope} scope`);
      if (!partner.scopes.includes(scope)) throw forbidden(`this partner has no ${scope} scope`);
      const grant = await grantOf(credential.grantId);
      if (!grant || grant.partnerId !== partner.id || grant.userId !== credential.userId) {
        throw unauthenticated(`the user's grant this token rests on was revoked: the user must grant ${partner.name} again and a new token be minted`);
      }
      return { kind: 'user', userId: credential.userId };
    },
  };
}
