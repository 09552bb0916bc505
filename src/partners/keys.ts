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

async function partnerNamed(db: Db, name: string): Promise<PartnerRow> {
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
    if (revokeOthers) await tx.update(apiKeys).set({ revokedAt: sql`now()` }).where(and(eq(apiKeys.partnerId, partner.id), isNull(apiKeys.revokedAt)));
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

/** A user lets a partner act for them (within the partner's scopes). */
export async function grantPartner(db: Db, name: string, email: string): Promise<void> {
  const partner = await partnerNamed(db, name);
  const [user] = await db.select({ id: users.id }).from(users).where(eq(users.email, email.trim().toLowerCase()));
  if (!user) throw new PartnerError(`no user with the email ${email}`);
  await db.insert(partnerGrants).values({ partnerId: partner.id, userId: user.id }).onConflictDoNothing();
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

export async function hasGrant(db: Db, partnerId: number, userId: number): Promise<boolean> {
  const [row] = await db
    .select({ userId: partnerGrants.userId })
    .from(partnerGrants)
    .where(and(eq(partnerGrants.partnerId, partnerId), eq(partnerGrants.userId, userId)));
  return Boolean(row);
}
