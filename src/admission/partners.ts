import { createHash, randomBytes } from 'node:crypto';
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { apiKeys, partnerGrants, partners, users, type PartnerRow } from '../db/schema.js';
import { checkScopes, type Scope } from './scopes.js';

const KEY_PREFIX = 'fgk_';

/** Keys are stored only as this digest: a leaked table does not leak keys. */
export const hashKey = (key: string) => createHash('sha256').update(key).digest('hex');

function newKey(): string {
  return `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export class PartnerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PartnerError';
  }
}

export async function partnerNamed(db: Db, name: string): Promise<PartnerRow> {
  const [row] = await db.select().from(partners).where(eq(partners.name, name));
  if (!row) throw new PartnerError(`no partner named ${JSON.stringify(name)}`);
  return row;
}

async function issueKey(db: Db, partnerId: number): Promise<string> {
  const key = newKey();
  await db.insert(apiKeys).values({ partnerId, keyHash: hashKey(key), prefix: key.slice(0, KEY_PREFIX.length + 6) });
  return key;
}

/** Creates a partner with its first API key; the key is returned once and never stored. */
export async function createPartner(db: Db, name: string, scopes: string[] = ['instruments:read']): Promise<{ partner: PartnerRow; key: string }> {
  if (!/^[a-z0-9][a-z0-9_.-]{0,62}$/i.test(name)) throw new PartnerError('a partner name is 1 to 63 letters, digits, ".", "_" or "-"');
  const checked = checkScopes(scopes);
  return db.transaction(async (tx) => {
    const [partner] = await tx.insert(partners).values({ name, scopes: checked }).onConflictDoNothing().returning();
    if (!partner) throw new PartnerError(`a partner named ${JSON.stringify(name)} exists already: rotate its key instead`);
    return { partner, key: await issueKey(tx as unknown as Db, partner.id) };
  });
}

export interface KeyListing {
  partner: string;
  scopes: string[];
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

export async function listKeys(db: Db): Promise<KeyListing[]> {
  const found = await db
    .select({ partner: partners.name, scopes: partners.scopes, prefix: apiKeys.prefix, createdAt: apiKeys.createdAt, revokedAt: apiKeys.revokedAt })
    .from(apiKeys)
    .innerJoin(partners, eq(partners.id, apiKeys.partnerId))
    .orderBy(partners.name, apiKeys.createdAt);
  return found;
}

/** A new key for the partner; with `revokeOthers`, its earlier keys stop working. */
export async function rotateKey(db: Db, name: string, revokeOthers = false): Promise<string> {
  const partner = await partnerNamed(db, name);
  return db.transaction(async (tx) => {
    if (revokeOthers)
      await tx
        .update(apiKeys)
        .set({ revokedAt: sql`now()` })
        .where(and(eq(apiKeys.partnerId, partner.id), isNull(apiKeys.revokedAt)));
    return issueKey(tx as unknown as Db, partner.id);
  });
}

/** Revokes one key (by its listed prefix) or all of a partner's keys; returns how many. */
export async function revokeKeys(db: Db, name: string, prefix?: string): Promise<number> {
  const partner = await partnerNamed(db, name);
  const revoked = await db
    .update(apiKeys)
    .set({ revokedAt: sql`now()` })
    .where(and(eq(apiKeys.partnerId, partner.id), isNull(apiKeys.revokedAt), prefix ? eq(apiKeys.prefix, prefix) : undefined))
    .returning({ id: apiKeys.id });
  return revoked.length;
}

export async function userWithEmail(db: Db, email: string): Promise<{ id: number; email: string }> {
  const [user] = await db.select({ id: users.id, email: users.email }).from(users).where(eq(users.email, email.trim().toLowerCase()));
  if (!user) throw new PartnerError(`no user with the email ${email}`);
  return user;
}

/**
 * A user lets a partner act for them (within the partner's scopes, through delegated tokens). Granting
 * while a grant lives changes nothing; returns the live grant's id.
 */
export async function grantPartner(db: Db, name: string, email: string): Promise<{ grantId: number; created: boolean }> {
  const partner = await partnerNamed(db, name);
  const user = await userWithEmail(db, email);
  const [created] = await db.insert(partnerGrants).values({ partnerId: partner.id, userId: user.id }).onConflictDoNothing().returning({ id: partnerGrants.id });
  if (created) return { grantId: created.id, created: true };
  const live = await liveGrantOf(db, partner.id, user.id);
  if (!live) throw new PartnerError('the grant was revoked while it was being made: grant again');
  return { grantId: live.id, created: false };
}

/** Withdraws the user's consent: every delegated token minted on the grant stops (within PARTNER_CACHE_TTL_MS). */
export async function revokeGrant(db: Db, name: string, email: string): Promise<number> {
  const partner = await partnerNamed(db, name);
  const user = await userWithEmail(db, email);
  const revoked = await db
    .update(partnerGrants)
    .set({ revokedAt: sql`now()` })
    .where(and(eq(partnerGrants.partnerId, partner.id), eq(partnerGrants.userId, user.id), isNull(partnerGrants.revokedAt)))
    .returning({ id: partnerGrants.id });
  return revoked.length;
}

export interface GrantListing {
  id: number;
  partner: string;
  email: string;
  createdAt: Date;
  revokedAt: Date | null;
}

/** Every grant, live or revoked (the record of consent), of one partner or of all. */
export async function listGrants(db: Db, name?: string): Promise<GrantListing[]> {
  const partner = name === undefined ? undefined : await partnerNamed(db, name);
  return db
    .select({ id: partnerGrants.id, partner: partners.name, email: users.email, createdAt: partnerGrants.createdAt, revokedAt: partnerGrants.revokedAt })
    .from(partnerGrants)
    .innerJoin(partners, eq(partners.id, partnerGrants.partnerId))
    .innerJoin(users, eq(users.id, partnerGrants.userId))
    .where(partner ? eq(partnerGrants.partnerId, partner.id) : undefined)
    .orderBy(partners.name, users.email, partnerGrants.id);
}

/** The live grant of a user to a partner, if any. */
export async function liveGrantOf(db: Db, partnerId: number, userId: number): Promise<{ id: number } | null> {
  const [row] = await db
    .select({ id: partnerGrants.id })
    .from(partnerGrants)
    .where(and(eq(partnerGrants.partnerId, partnerId), eq(partnerGrants.userId, userId), isNull(partnerGrants.revokedAt)));
  return row ?? null;
}

/** Whom a grant joins, while it is live; null once revoked (or if it never was). */
export async function liveGrant(db: Db, grantId: number): Promise<{ partnerId: number; userId: number } | null> {
  const [row] = await db
    .select({ partnerId: partnerGrants.partnerId, userId: partnerGrants.userId })
    .from(partnerGrants)
    .where(and(eq(partnerGrants.id, grantId), isNull(partnerGrants.revokedAt)));
  return row ?? null;
}

export interface AuthenticatedPartner {
  id: number;
  name: string;
  scopes: Scope[];
}

/** The partner behind a live key, or null for an unknown or revoked one. */
export async function partnerForKey(db: Db, key: string): Promise<AuthenticatedPartner | null> {
  const [row] = await db
    .select({ id: partners.id, name: partners.name, scopes: partners.scopes })
    .from(apiKeys)
    .innerJoin(partners, eq(partners.id, apiKeys.partnerId))
    .where(and(eq(apiKeys.keyHash, hashKey(key)), isNull(apiKeys.revokedAt)));
  return row ? { ...row, scopes: row.scopes as Scope[] } : null;
}
