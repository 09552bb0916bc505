import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq, sql } from 'drizzle-orm';
import { getOperationAST, parse } from 'graphql';
import { pino } from 'pino';
import { DELEGATED_TOKEN_MAX_SECONDS, signDelegatedToken, signUserToken } from '../src/admission/tokens.js';
import { loadConfig, type Config } from '../src/config.js';
import { createDatabase, rows, type Db } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { apiKeys, partnerGrants, partners, portfolios } from '../src/db/schema.js';
import { buildSchema } from '../src/graphql/schema.js';
import { checkManifest, publishOperations, sha256, type DocumentChecks } from '../src/admission/trusted-documents.js';
import { mintDelegatedToken } from '../src/admission/delegation.js';
import {
  createPartner,
  grantPartner,
  hashKey,
  listGrants,
  listKeys,
  partnerForKey,
  PartnerError,
  revokeGrant,
  revokeKeys,
  rotateKey,
} from '../src/admission/partners.js';
import { createApp, type App } from '../src/app.js';
import { CostEstimator } from '../src/limits/cost-estimate.js';
import { limitRules } from '../src/limits/rules.js';
import { createTestDatabase, onPostgres, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, TEST_SECRET, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

// Partners: API keys (shown once, stored hashed, rotated and revoked), scopes, users' grants (given
// and withdrawn) and the delegated tokens minted on them, a cost budget per partner, and an operation
// log that names the partner but never a credential. Partners run trusted documents only, so every
// partner call here goes by a published document's hash.

const QUOTE = `query Quote($symbol: String!) {
  instrument(symbol: $symbol) { symbol name latestPrice { date close } }
}`;
const MY_PORTFOLIOS = `query MyPortfolios {
  viewer { email }
  portfolios(first: 50) { totalCount nodes { id name } }
}`;
const PORTFOLIO_BY_ID = `query PortfolioById($id: ID!) {
  portfolio(id: $id) { id name }
}`;
const CREATE_PORTFOLIO = `mutation CreatePortfolio($input: CreatePortfolioInput!) {
  createPortfolio(input: $input) { portfolio { id name } }
}`;

const unique = () => Math.random().toString(36).slice(2, 10);

function checksFor(config: Config): DocumentChecks {
  const schema = buildSchema();
  return { schema, estimator: new CostEstimator(schema), rules: limitRules(config), maxCost: config.limits.maxCost };
}

/** An Apollo persisted query manifest of these bodies, ids and types taken from the text. */
function manifestOf(bodies: string[]) {
  return {
    format: 'apollo-persisted-query-manifest',
    version: 1,
    operations: bodies.map((body) => {
      const op = getOperationAST(parse(body))!;
      return { id: sha256(body), name: op.name!.value, type: op.operation, body };
    }),
  };
}

/** Publishes as `npm run pq:publish` does: a manifest with any problem publishes nothing. */
async function publish(db: Db, config: Config, bodies: string[], partnerId: number | null) {
  const { operations, problems } = checkManifest(manifestOf(bodies), checksFor(config));
  expect(problems).toEqual([]);
  return publishOperations(db, operations, partnerId);
}

/** A partner's request: the hash of a trusted document (and nothing else unless told). */
function persisted(query: string, variables: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return { variables, extensions: { persistedQuery: { version: 1, sha256Hash: sha256(query) } }, ...extra };
}

const codeOf = (body: any) => body?.errors?.[0]?.extensions?.code;

/** A request refused for its credentials as a whole: 401 UNAUTHENTICATED saying why, and no data. */
function expectUnauthenticated(res: { status: number; body: any }, message: RegExp) {
  expect(res.status).toBe(401);
  expect(codeOf(res.body)).toBe('UNAUTHENTICATED');
  expect(res.body.errors[0].message).toMatch(message);
  expect(res.body.data).toBeUndefined();
}

describe('partner keys', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.destroy();
  });

  it('creates a partner with a key that is returned once and stored only as its SHA-256', async () => {
    const name = `acme-${unique()}`;
    const { partner, key } = await createPartner(database.db, name);
    expect(partner).toMatchObject({ name, scopes: ['instruments:read'] });
    expect(key).toMatch(/^fgk_[A-Za-z0-9_-]{43}$/);

    const [stored] = await database.db.select().from(apiKeys).where(eq(apiKeys.partnerId, partner.id));
    expect(stored.keyHash).toBe(createHash('sha256').update(key).digest('hex'));
    expect(stored.keyHash).toBe(hashKey(key));
    expect(stored.prefix).toBe(key.slice(0, 10));
    expect(stored.revokedAt).toBeNull();

    // no row of any table holds the key (only its digest and a short prefix)
    const tables = await rows<{ name: string }>(
      database.db,
      sql`select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`,
    );
    expect(tables.map((t) => t.name)).toContain('api_keys');
    for (const { name: table } of tables) {
      const found = await rows<{ n: number }>(
        database.db,
        sql`select count(*)::int as n from ${sql.identifier(table)} t where row_to_json(t)::text like ${`%${key.slice(4)}%`}`,
      );
      expect(found[0].n, `a row of ${table} holds the key`).toBe(0);
    }
    expect(await partnerForKey(database.db, key)).toEqual({ id: partner.id, name, scopes: ['instruments:read'] });
  });

  it('refuses a second partner of the same name and keeps the first as it was', async () => {
    const name = `dup-${unique()}`;
    const first = await createPartner(database.db, name);
    await expect(createPartner(database.db, name, ['portfolios:read'])).rejects.toThrow(PartnerError);
    await expect(createPartner(database.db, name)).rejects.toThrow(/exists already/);
    const found = await database.db.select().from(partners).where(eq(partners.name, name));
    expect(found).toHaveLength(1);
    expect(found[0].scopes).toEqual(['instruments:read']);
    const keys = await database.db.select().from(apiKeys).where(eq(apiKeys.partnerId, first.partner.id));
    expect(keys).toHaveLength(1);
  });

  it('refuses unknown scopes and bad names, storing nothing', async () => {
    const name = `scoped-${unique()}`;
    await expect(createPartner(database.db, name, ['portfolios:read', 'admin:everything'])).rejects.toThrow(/unknown scope\(s\) admin:everything/);
    await expect(createPartner(database.db, 'has space')).rejects.toThrow(PartnerError);
    await expect(createPartner(database.db, '')).rejects.toThrow(PartnerError);
    expect(await database.db.select().from(partners).where(eq(partners.name, name))).toHaveLength(0);

    const { partner } = await createPartner(database.db, name, ['trades:write', 'portfolios:read', 'trades:write']);
    expect([...partner.scopes].sort()).toEqual(['instruments:read', 'portfolios:read', 'trades:write']);
  });

  it('lists keys by prefix, live or revoked, never the key itself', async () => {
    const name = `listed-${unique()}`;
    const { key } = await createPartner(database.db, name, ['portfolios:read']);
    const second = await rotateKey(database.db, name);
    await revokeKeys(database.db, name, key.slice(0, 10));
    const mine = (await listKeys(database.db)).filter((k) => k.partner === name);
    expect(mine).toHaveLength(2);
    expect(mine.map((k) => k.prefix).sort()).toEqual([key.slice(0, 10), second.slice(0, 10)].sort());
    for (const k of mine) expect(k.scopes).toEqual(['instruments:read', 'portfolios:read']);
    expect(mine.find((k) => k.prefix === key.slice(0, 10))!.revokedAt).toBeInstanceOf(Date);
    expect(mine.find((k) => k.prefix === second.slice(0, 10))!.revokedAt).toBeNull();
    const text = JSON.stringify(await listKeys(database.db));
    expect(text).not.toContain(key);
    expect(text).not.toContain(second);
  });

  it('refuses rotating, revoking or granting for a partner that does not exist', async () => {
    await expect(rotateKey(database.db, `ghost-${unique()}`)).rejects.toThrow(PartnerError);
    await expect(revokeKeys(database.db, `ghost-${unique()}`)).rejects.toThrow(PartnerError);
    const { partner } = await createPartner(database.db, `granting-${unique()}`);
    await expect(grantPartner(database.db, partner.name, 'nobody@example.invalid')).rejects.toThrow(/no user/);
    await expect(revokeGrant(database.db, `ghost-${unique()}`, 'nobody@example.invalid')).rejects.toThrow(PartnerError);
    await expect(revokeGrant(database.db, partner.name, 'nobody@example.invalid')).rejects.toThrow(/no user/);
  });

  it('keeps the record of consent: a revoked grant keeps its row, granting again makes a new one', async () => {
    const user = await seed(database.db).user();
    const { partner } = await createPartner(database.db, `consent-${unique()}`, ['portfolios:read']);
    const first = await grantPartner(database.db, partner.name, user.email);
    expect(first.created).toBe(true);
    expect(await grantPartner(database.db, partner.name, user.email.toUpperCase())).toEqual({ grantId: first.grantId, created: false });
    expect(await revokeGrant(database.db, partner.name, user.email)).toBe(1);
    expect(await revokeGrant(database.db, partner.name, user.email)).toBe(0); // withdrawing twice changes nothing
    const second = await grantPartner(database.db, partner.name, user.email);
    expect(second.created).toBe(true);
    expect(second.grantId).not.toBe(first.grantId);

    const listed = await listGrants(database.db, partner.name);
    expect(listed.map((g) => [g.id, g.email, g.revokedAt === null])).toEqual([
      [first.grantId, user.email, false],
      [second.grantId, user.email, true],
    ]);
    expect((await listGrants(database.db)).filter((g) => g.partner === partner.name)).toHaveLength(2);
    // the database itself holds at most one live grant per partner and user
    await expect(database.db.insert(partnerGrants).values({ partnerId: partner.id, userId: user.id })).rejects.toThrow();
  });
});

describe('minting delegated tokens', () => {
  let database: TestDatabase;
  let user: { id: number; email: string };

  beforeAll(async () => {
    database = await createTestDatabase();
    user = await seed(database.db).user();
  });
  afterAll(async () => {
    await database?.destroy();
  });

  const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());

  it("binds the token to the partner, the user and the grant, with the partner's delegated scopes and an hour to live", async () => {
    const { partner } = await createPartner(database.db, `minter-${unique()}`, ['portfolios:read', 'trades:write']);
    const { grantId } = await grantPartner(database.db, partner.name, user.email);
    const minted = await mintDelegatedToken(database.db, TEST_SECRET, { partner: partner.name, email: user.email });
    const claims = claimsOf(minted.token);
    expect(claims).toMatchObject({ iss: 'foliograph', sub: String(user.id), aud: `partner:${partner.id}`, grant: grantId });
    expect(claims.scope.split(' ').sort()).toEqual(['portfolios:read', 'trades:write']);
    expect(claims.exp - claims.iat).toBe(3600);
    expect(minted).toMatchObject({ grantId, expiresAt: new Date(claims.exp * 1000) });

    const narrow = await mintDelegatedToken(database.db, TEST_SECRET, {
      partner: partner.name,
      email: user.email,
      scopes: ['portfolios:read'],
      expires: '15m',
    });
    expect(claimsOf(narrow.token)).toMatchObject({ scope: 'portfolios:read' });
    expect(claimsOf(narrow.token).exp - claimsOf(narrow.token).iat).toBe(900);
    const day = await mintDelegatedToken(database.db, TEST_SECRET, { partner: partner.name, email: user.email, expires: '1d' });
    expect(claimsOf(day.token).exp - claimsOf(day.token).iat).toBe(DELEGATED_TOKEN_MAX_SECONDS);
  });

  it('refuses to mint without a live grant, beyond the partner’s scopes, for public scopes, or for longer than a day', async () => {
    const { partner } = await createPartner(database.db, `strict-${unique()}`, ['portfolios:read']);
    const mint = (options: { scopes?: string[]; expires?: string; email?: string; partner?: string } = {}) =>
      mintDelegatedToken(database.db, TEST_SECRET, { partner: partner.name, email: user.email, ...options });
    await expect(mint()).rejects.toThrow(/has not granted/);
    await grantPartner(database.db, partner.name, user.email);
    await expect(mint({ scopes: ['trades:write'] })).rejects.toThrow(/has no trades:write scope/);
    await expect(mint({ scopes: ['instruments:read'] })).rejects.toThrow(/public/);
    await expect(mint({ scopes: ['admin', 'toString'] })).rejects.toThrow(/unknown scope/);
    await expect(mint({ scopes: [] })).rejects.toThrow(/no scope that acts for a user/);
    for (const expires of ['25h', '2d', '0h', '-1h', '1 hour', 'forever', '1.5h']) await expect(mint({ expires }), expires).rejects.toThrow(PartnerError);
    await expect(mint({ partner: `ghost-${unique()}` })).rejects.toThrow(/no partner/);
    await expect(mint({ email: 'nobody@example.invalid' })).rejects.toThrow(/no user/);
    expect(claimsOf((await mint()).token).scope).toBe('portfolios:read');

    await revokeGrant(database.db, partner.name, user.email);
    await expect(mint()).rejects.toThrow(/has not granted/);

    const { partner: publicOnly } = await createPartner(database.db, `public-${unique()}`);
    await grantPartner(database.db, publicOnly.name, user.email);
    await expect(mint({ partner: publicOnly.name })).rejects.toThrow(/no scope that acts for a user/);
  });
});

describe('partners over HTTP', () => {
  let database: TestDatabase;
  let server: TestServer;
  let symbol: string;
  let alice: { id: number; email: string };
  let bob: { id: number; email: string };
  let alicePortfolios: number[];
  let bobPortfolio: number;

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    symbol = (await s.instrument(['100', '101.5'])).symbol;
    alice = await s.user();
    bob = await s.user();
    alicePortfolios = [(await s.portfolio(alice, 'Alice one')).id, (await s.portfolio(alice, 'Alice two')).id];
    bobPortfolio = (await s.portfolio(bob, 'Bob only')).id;
    // revocations and retirements act at once
    server = await startTestServer(database, { PARTNER_CACHE_TTL_MS: '0' });
    await publish(database.db, server.config, [QUOTE, MY_PORTFOLIOS, PORTFOLIO_BY_ID, CREATE_PORTFOLIO], null);
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  const withKey = (key: string, headers: Record<string, string> = {}) => ({ 'x-api-key': key, ...headers });
  const bearer = async (userId: number) => ({ authorization: `Bearer ${await server.token(userId)}` });
  const quote = (key: string, headers: Record<string, string> = {}) => server.post(persisted(QUOTE, { symbol }), withKey(key, headers));

  describe('keys', () => {
    it("runs a trusted document with a new partner's key", async () => {
      const { key } = await createPartner(database.db, `quoter-${unique()}`);
      const res = await quote(key);
      expect(res.status).toBe(200);
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.instrument).toMatchObject({ symbol, latestPrice: { close: '101.5' } });
    });

    it('gives a rotated partner a second working key; with revokeOthers the earlier ones stop with 401', async () => {
      const name = `rotating-${unique()}`;
      const { key: first } = await createPartner(database.db, name);
      const second = await rotateKey(database.db, name);
      expect(second).not.toBe(first);
      expect((await quote(first)).status).toBe(200);
      expect((await quote(second)).status).toBe(200);

      const third = await rotateKey(database.db, name, true);
      for (const old of [first, second]) {
        const res = await quote(old);
        expect(res.status).toBe(401);
        expect(codeOf(res.body)).toBe('UNAUTHENTICATED');
        expect(res.body.data).toBeUndefined();
      }
      const res = await quote(third);
      expect(res.status).toBe(200);
      expect(res.body.data.instrument.symbol).toBe(symbol);
      expect((await listKeys(database.db)).filter((k) => k.partner === name).map((k) => k.revokedAt === null)).toEqual([false, false, true]);
    });

    it('answers 401 UNAUTHENTICATED to a revoked key, one key by prefix or all of them', async () => {
      const name = `revoked-${unique()}`;
      const { key: first } = await createPartner(database.db, name);
      const second = await rotateKey(database.db, name);

      expect(await revokeKeys(database.db, name, first.slice(0, 10))).toBe(1);
      const refused = await quote(first);
      expect(refused.status).toBe(401);
      expect(codeOf(refused.body)).toBe('UNAUTHENTICATED');
      expect((await quote(second)).status).toBe(200);

      expect(await revokeKeys(database.db, name)).toBe(1);
      expect(await revokeKeys(database.db, name)).toBe(0);
      const all = await quote(second);
      expect(all.status).toBe(401);
      expect(codeOf(all.body)).toBe('UNAUTHENTICATED');
    });

    it('answers an unknown key 401 before anything else, with only the credential looked up', async () => {
      const unknown = `fgk_${'x'.repeat(43)}`;
      const cases: { body: unknown; headers?: Record<string, string> }[] = [
        { body: persisted(QUOTE, { symbol }) }, // a valid hash of a published document
        { body: persisted(QUOTE, { symbol }, { query: QUOTE }) }, // with its text
        { body: { query: '{ instruments { nodes { symbol } } }' } }, // free-form
        { body: persisted(CREATE_PORTFOLIO, { input: { name: 'x' } }) }, // a mutation
        { body: persisted(QUOTE, { symbol }), headers: await bearer(alice.id) }, // with a user's token
        { body: persisted(MY_PORTFOLIOS), headers: { authorization: 'Bearer not-a-jwt' } }, // with a broken token
        { body: { extensions: { persistedQuery: { version: 1, sha256Hash: 'f'.repeat(64) } } } }, // an unknown hash
      ];
      for (const { body, headers } of cases) {
        const { result: res, statements } = await server.countSql(() => server.post(body, withKey(unknown, headers)));
        expect(res.status, JSON.stringify(body)).toBe(401);
        expect(codeOf(res.body)).toBe('UNAUTHENTICATED');
        expect(res.body.data).toBeUndefined();
        expect(statements).toBe(1); // the key's lookup; nothing else
      }
      // an empty key is a key too: not a way to be treated as an ordinary client
      const empty = await server.post(persisted(QUOTE, { symbol }), { 'x-api-key': '' });
      expect(empty.status).toBe(401);
      expect(codeOf(empty.body)).toBe('UNAUTHENTICATED');
    });

    // the contract: "Credentials are checked first: an unknown or revoked key is UNAUTHENTICATED"
    it('answers an unknown key 401 even when its hash does not match its query', async () => {
      const res = await server.post(
        { query: QUOTE, variables: { symbol }, extensions: { persistedQuery: { version: 1, sha256Hash: sha256('something else') } } },
        withKey(`fgk_${'y'.repeat(43)}`),
      );
      expect(res.status).toBe(401);
      expect(codeOf(res.body)).toBe('UNAUTHENTICATED');
    });
  });

  describe('delegation', () => {
    const countAlice = async () => (await database.db.select().from(portfolios).where(eq(portfolios.ownerId, alice.id))).length;
    /** A partner with these scopes, granted by alice, and a token minted for it to act for her. */
    async function delegatedPartner(scopes: string[], tokenScopes?: string[]) {
      const made = await createPartner(database.db, `delegate-${unique()}`, scopes);
      const { grantId } = await grantPartner(database.db, made.partner.name, alice.email);
      const { token } = await mintDelegatedToken(database.db, TEST_SECRET, { partner: made.partner.name, email: alice.email, scopes: tokenScopes });
      return { ...made, grantId, token, auth: { authorization: `Bearer ${token}` } };
    }
    /** A refusal before anything ran: the code and status, no data, and only these lookups sent. */
    async function expectRefused(
      body: unknown,
      headers: Record<string, string>,
      expected: { status: number; code: string; message: RegExp; statements: number },
    ) {
      const before = await countAlice();
      const { result: res, statements } = await server.countSql(() => server.post(body, headers));
      expect(res.status, JSON.stringify(res.body)).toBe(expected.status);
      expect(codeOf(res.body)).toBe(expected.code);
      expect(res.body.errors[0].message).toMatch(expected.message);
      expect(res.body.data).toBeUndefined();
      // the key's and the document's lookups (and the grant's), never a statement on product data
      expect(statements).toBe(expected.statements);
      expect(await countAlice()).toBe(before);
      return res;
    }

    it('acts for a granting user with a token delegated to the partner, beside its key, and only for that user', async () => {
      const { key, auth } = await delegatedPartner(['portfolios:read']);
      const mine = await server.post(persisted(MY_PORTFOLIOS), withKey(key, auth));
      expect(mine.status).toBe(200);
      expect(mine.body.errors).toBeUndefined();
      expect(mine.body.data.viewer).toEqual({ email: alice.email });
      expect(mine.body.data.portfolios.nodes.map((n: any) => Number(n.id)).sort()).toEqual([...alicePortfolios].sort());

      // bob's portfolio through alice's token: exactly like one that does not exist
      const theirs = await server.post(persisted(PORTFOLIO_BY_ID, { id: String(bobPortfolio) }), withKey(key, auth));
      expect(theirs.status).toBe(200);
      expect(theirs.body.data).toEqual({ portfolio: null });
      const own = await server.post(persisted(PORTFOLIO_BY_ID, { id: String(alicePortfolios[0]) }), withKey(key, auth));
      expect(own.body.data).toEqual({ portfolio: { id: String(alicePortfolios[0]), name: 'Alice one' } });

      // a partner cannot run the user's query text as free-form, token or not
      const freeForm = await server.post({ query: MY_PORTFOLIOS }, withKey(key, auth));
      expect(freeForm.status).toBe(403);
      expect(codeOf(freeForm.body)).toBe('PERSISTED_QUERY_REQUIRED');
    });

    it('runs a mutation for the user with trades:write, and writes only as that user', async () => {
      const { key, auth } = await delegatedPartner(['portfolios:read', 'trades:write']);
      const before = await countAlice();
      const input = { input: { name: `Partner-made ${unique()}` } };
      // a mutation goes by POST only, even for a partner allowed to write
      const url = new URL(server.url);
      url.searchParams.set('variables', JSON.stringify(input));
      url.searchParams.set('extensions', JSON.stringify(persisted(CREATE_PORTFOLIO).extensions));
      const get = await fetch(url, { headers: { 'x-api-key': key, 'apollo-require-preflight': 'true', ...auth } });
      expect(get.status).toBe(405);
      expect(await countAlice()).toBe(before);

      const res = await server.post(persisted(CREATE_PORTFOLIO, input), withKey(key, auth));
      expect(res.status).toBe(200);
      expect(res.body.errors).toBeUndefined();
      const [created] = await database.db
        .select()
        .from(portfolios)
        .where(eq(portfolios.id, Number(res.body.data.createPortfolio.portfolio.id)));
      expect(created).toMatchObject({ ownerId: alice.id, name: input.input.name });
      expect(await countAlice()).toBe(before + 1);

      // with the key but no token, there is nobody to write for
      const anonymous = await server.post(persisted(CREATE_PORTFOLIO, input), withKey(key));
      expect(codeOf(anonymous.body)).toBe('UNAUTHENTICATED');
      expect(await countAlice()).toBe(before + 1);
    });

    it('refuses a delegated token without its partner’s key: 401, no SQL at all, the user is not the caller', async () => {
      const { auth } = await delegatedPartner(['portfolios:read', 'trades:write']);
      const message = /delegated to a partner.*X-Api-Key/;
      // free-form, with every document and mutation an ordinary user may run: none of it
      await expectRefused({ query: MY_PORTFOLIOS }, auth, { status: 401, code: 'UNAUTHENTICATED', message, statements: 0 });
      await expectRefused({ query: CREATE_PORTFOLIO, variables: { input: { name: 'no key' } } }, auth, {
        status: 401,
        code: 'UNAUTHENTICATED',
        message,
        statements: 0,
      });
      await expectRefused(persisted(MY_PORTFOLIOS), auth, { status: 401, code: 'UNAUTHENTICATED', message, statements: 0 });
    });

    it("refuses a token delegated to another partner beside this partner's key: 401", async () => {
      const theirs = await delegatedPartner(['portfolios:read', 'trades:write']);
      const mine = await delegatedPartner(['portfolios:read', 'trades:write']);
      const message = new RegExp(`delegated to another partner, not to ${mine.partner.name}`);
      await expectRefused(persisted(MY_PORTFOLIOS), withKey(mine.key, theirs.auth), { status: 401, code: 'UNAUTHENTICATED', message, statements: 2 });
      await expectRefused(persisted(CREATE_PORTFOLIO, { input: { name: 'wrong partner' } }), withKey(mine.key, theirs.auth), {
        status: 401,
        code: 'UNAUTHENTICATED',
        message,
        statements: 2,
      });
      // the same token beside its own partner's key works
      expect((await server.post(persisted(MY_PORTFOLIOS), withKey(theirs.key, theirs.auth))).body.data.viewer).toEqual({ email: alice.email });
    });

    it("refuses a user's own token beside a partner's key, even one with the scopes and the user's grant", async () => {
      const { key, partner } = await delegatedPartner(['portfolios:read', 'trades:write']);
      const own = await bearer(alice.id);
      const message = new RegExp(`cannot use a user's own token.*npm run token -- EMAIL --partner ${partner.name}`);
      await expectRefused(persisted(MY_PORTFOLIOS), withKey(key, own), { status: 401, code: 'UNAUTHENTICATED', message, statements: 2 });
      await expectRefused(persisted(CREATE_PORTFOLIO, { input: { name: 'own token' } }), withKey(key, own), {
        status: 401,
        code: 'UNAUTHENTICATED',
        message,
        statements: 2,
      });
      // a partner with public scopes only is refused the same way, and reads public data without the token
      const { key: publicKey } = await createPartner(database.db, `public-only-${unique()}`);
      await expectRefused(persisted(QUOTE, { symbol }), withKey(publicKey, own), { status: 401, code: 'UNAUTHENTICATED', message: /own token/, statements: 2 });
      expect((await quote(publicKey)).body.data.instrument.symbol).toBe(symbol);
      const anonymous = await server.post(persisted(MY_PORTFOLIOS), withKey(publicKey));
      expect(anonymous.status).toBe(200);
      expect(anonymous.body.data).toEqual({ viewer: null, portfolios: { totalCount: 0, nodes: [] } });
    });

    it("acts within the token's scopes and the partner's: portfolios:read to read, trades:write to write (403 otherwise)", async () => {
      const write = { input: { name: `Scoped ${unique()}` } };
      const readOnly = await delegatedPartner(['portfolios:read', 'trades:write'], ['portfolios:read']);
      await expectRefused(persisted(CREATE_PORTFOLIO, write), withKey(readOnly.key, readOnly.auth), {
        status: 403,
        code: 'FORBIDDEN',
        message: /token does not carry the trades:write scope/,
        statements: 2,
      });
      expect((await server.post(persisted(MY_PORTFOLIOS), withKey(readOnly.key, readOnly.auth))).body.data.viewer).toEqual({ email: alice.email });

      const writeOnly = await delegatedPartner(['portfolios:read', 'trades:write'], ['trades:write']);
      await expectRefused(persisted(MY_PORTFOLIOS), withKey(writeOnly.key, writeOnly.auth), {
        status: 403,
        code: 'FORBIDDEN',
        message: /token does not carry the portfolios:read scope/,
        statements: 2,
      });
      const written = await server.post(persisted(CREATE_PORTFOLIO, write), withKey(writeOnly.key, writeOnly.auth));
      expect(written.body.data.createPortfolio.portfolio.name).toBe(write.input.name);

      // a token that claims more than its partner holds (signed by hand: minting refuses it) gets no more
      const reader = await delegatedPartner(['portfolios:read']);
      const overreach = await signDelegatedToken(TEST_SECRET, {
        userId: alice.id,
        partnerId: reader.partner.id,
        scopes: ['portfolios:read', 'trades:write'],
        grantId: reader.grantId,
      });
      await expectRefused(persisted(CREATE_PORTFOLIO, write), withKey(reader.key, { authorization: `Bearer ${overreach}` }), {
        status: 403,
        code: 'FORBIDDEN',
        message: /partner has no trades:write scope/,
        statements: 2,
      });
    });

    it('stops every token of a revoked grant at once (PARTNER_CACHE_TTL_MS=0), cached answers too; a renewed grant revives none', async () => {
      const { key, partner, auth } = await delegatedPartner(['portfolios:read', 'trades:write']);
      for (let i = 0; i < 2; i++) expect((await server.post(persisted(MY_PORTFOLIOS), withKey(key, auth))).body.data.viewer).toEqual({ email: alice.email });

      expect(await revokeGrant(database.db, partner.name, alice.email)).toBe(1);
      const message = /grant this token rests on was revoked/;
      await expectRefused(persisted(MY_PORTFOLIOS), withKey(key, auth), { status: 401, code: 'UNAUTHENTICATED', message, statements: 3 });
      await expectRefused(persisted(CREATE_PORTFOLIO, { input: { name: 'revoked' } }), withKey(key, auth), {
        status: 401,
        code: 'UNAUTHENTICATED',
        message,
        statements: 3,
      });
      await expect(mintDelegatedToken(database.db, TEST_SECRET, { partner: partner.name, email: alice.email })).rejects.toThrow(/has not granted/);

      // consent given again is a new grant: the old token stays dead, a token minted now works
      await grantPartner(database.db, partner.name, alice.email);
      await expectRefused(persisted(MY_PORTFOLIOS), withKey(key, auth), { status: 401, code: 'UNAUTHENTICATED', message, statements: 3 });
      const { token } = await mintDelegatedToken(database.db, TEST_SECRET, { partner: partner.name, email: alice.email });
      const renewed = await server.post(persisted(MY_PORTFOLIOS), withKey(key, { authorization: `Bearer ${token}` }));
      expect(renewed.status).toBe(200);
      expect(renewed.body.data.viewer).toEqual({ email: alice.email });
    });

    it('refuses a delegated token once it has expired', async () => {
      const { key, partner, grantId } = await delegatedPartner(['portfolios:read']);
      const token = await signDelegatedToken(TEST_SECRET, { userId: alice.id, partnerId: partner.id, scopes: ['portfolios:read'], grantId }, 1);
      const call = () => server.post(persisted(MY_PORTFOLIOS), withKey(key, { authorization: `Bearer ${token}` }));
      expect((await call()).body.data.viewer).toEqual({ email: alice.email });
      expectUnauthenticated(await until(call, (res) => res.status !== 200), /expired/);
    });
  });
});

describe('grants cached for PARTNER_CACHE_TTL_MS', () => {
  let database: TestDatabase;
  let server: TestServer;
  let alice: { id: number; email: string };

  beforeAll(async () => {
    database = await createTestDatabase();
    alice = await seed(database.db).user();
    await seed(database.db).portfolio(alice, 'Cached');
    // answers are not cached here, so every request runs its own product statements and only the
    // credential lookups can differ between two of them
    server = await startTestServer(database, { PARTNER_CACHE_TTL_MS: '1000', RESPONSE_CACHE: 'off' });
    await publish(database.db, server.config, [MY_PORTFOLIOS], null);
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  it('costs a busy partner no credential statement per request, and stops a revoked grant within the TTL', async () => {
    const { partner, key } = await createPartner(database.db, `busy-${unique()}`, ['portfolios:read']);
    await grantPartner(database.db, partner.name, alice.email);
    const { token } = await mintDelegatedToken(database.db, TEST_SECRET, { partner: partner.name, email: alice.email });
    const call = () => server.post(persisted(MY_PORTFOLIOS), { 'x-api-key': key, authorization: `Bearer ${token}` });

    const cold = await server.countSql(call);
    const warm = await server.countSql(call);
    for (const { result } of [cold, warm]) expect(result.body.data.viewer).toEqual({ email: alice.email });
    // the key's, the document's and the grant's lookups ran once, for the first request only
    expect(warm.statements).toBe(cold.statements - 3);

    expect(await revokeGrant(database.db, partner.name, alice.email)).toBe(1);
    expectUnauthenticated(await until(call, (res) => res.status !== 200), /revoked/);
  });
});

describe('delegation through the commands', () => {
  // The commands as an operator runs them, in their own processes (npm run --silent, so stdout is the
  // command's alone). On PGlite a command cannot open the directory while this process holds it, so
  // the database here is opened only between commands; on PostgreSQL it stays open throughout.
  const dir = mkdtempSync(join(tmpdir(), 'foliograph-delegation-'));
  let postgresDb: TestDatabase | undefined;

  async function open(): Promise<TestDatabase> {
    if (onPostgres) return (postgresDb ??= await createTestDatabase());
    const database = await createDatabase({ pgliteDataDir: join(dir, 'pglite'), dbPoolMax: 1 });
    await migrate(database);
    return { ...database, destroy: () => database.close() };
  }
  const release = async (database: TestDatabase) => {
    if (!onPostgres) await database.destroy();
  };
  const npmRun = (script: string, ...args: string[]) =>
    spawnSync('npm', ['run', '--silent', script, '--', ...args], {
      env: { ...process.env, DATABASE_URL: postgresDb?.url ?? '', PGLITE_DATA_DIR: join(dir, 'pglite'), JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'silent' },
      encoding: 'utf8',
      timeout: 60_000,
    });
  /** Calls a server over the database with the partner's key and this token, then lets the database go. */
  async function callWith(headers: Record<string, string>) {
    const database = await open();
    const server = await startTestServer(database, { PARTNER_CACHE_TTL_MS: '0' });
    try {
      await publish(database.db, server.config, [MY_PORTFOLIOS], null);
      return await server.post(persisted(MY_PORTFOLIOS), headers);
    } finally {
      await server.stop();
      await release(database);
    }
  }

  afterAll(async () => {
    await postgresDb?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('`npm run token -- EMAIL --partner NAME` prints only a working delegated token; `partner:revoke-grant` ends it', async () => {
    const database = await open();
    const alice = await seed(database.db).user();
    const name = `cli-${unique()}`;
    const { key } = await createPartner(database.db, name, ['portfolios:read', 'trades:write']);
    await release(database);

    const ungranted = npmRun('token', alice.email, '--partner', name);
    expect(ungranted.status).toBe(1);
    expect(ungranted.stdout).toBe('');
    expect(ungranted.stderr).toMatch(/has not granted .* npm run partner:grant/);

    const granted = npmRun('partner:grant', name, alice.email);
    expect(granted.status, granted.stderr).toBe(0);
    expect(granted.stdout).toBe('');
    const minted = npmRun('token', alice.email, '--partner', name, '--scopes', 'portfolios:read', '--expires', '30m');
    expect(minted.status, minted.stderr).toBe(0);
    expect(minted.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const token = minted.stdout.trim();
    expect(minted.stderr).not.toContain(token);
    // a user's own token, as ever: the token and nothing else
    const own = npmRun('token', alice.email);
    expect(own.status, own.stderr).toBe(0);
    expect(own.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);

    const works = await callWith({ 'x-api-key': key, authorization: `Bearer ${token}` });
    expect(works.status).toBe(200);
    expect(works.body.data.viewer).toEqual({ email: alice.email });
    expectUnauthenticated(await callWith({ 'x-api-key': key, authorization: `Bearer ${own.stdout.trim()}` }), /own token/);
    expectUnauthenticated(await callWith({ authorization: `Bearer ${token}` }), /X-Api-Key/);

    const revoked = npmRun('partner:revoke-grant', name, alice.email);
    expect(revoked.status, revoked.stderr).toBe(0);
    expect(revoked.stdout).toBe('');
    const listed = npmRun('partner:grants', name);
    expect(listed.status, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`^${name}\\t${alice.email}\\tgranted \\S+\\trevoked \\S+\\n$`));

    expectUnauthenticated(await callWith({ 'x-api-key': key, authorization: `Bearer ${token}` }), /revoked/);
  }, 180_000);
});

describe('partner budgets', () => {
  let database: TestDatabase;
  let server: TestServer;
  let symbol: string;
  let quoteCost: number;
  let alice: { id: number; email: string };

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    symbol = (await s.instrument(['10'])).symbol;
    alice = await s.user();
    const schema = buildSchema();
    const document = parse(QUOTE);
    quoteCost = new CostEstimator(schema).estimate(document, getOperationAST(document)!, { symbol }).cost;
    expect(quoteCost).toBeGreaterThan(0);
    // room for two quotes a minute, not three; lookups kept for the whole test (no SQL once warm)
    server = await startTestServer(database, { RATE_LIMIT_COST_PER_MINUTE: String(Math.floor(quoteCost * 2.5)), PARTNER_CACHE_TTL_MS: '3600000' });
    await publish(database.db, server.config, [QUOTE], null);
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  it('rate limits each partner on its own budget, whoever it acts for', async () => {
    const a = await createPartner(database.db, `budget-a-${unique()}`, ['portfolios:read']);
    const b = await createPartner(database.db, `budget-b-${unique()}`);
    await grantPartner(database.db, a.partner.name, alice.email);
    const run = (key: string, headers: Record<string, string> = {}) => server.post(persisted(QUOTE, { symbol }), { 'x-api-key': key, ...headers });

    for (let i = 0; i < 2; i++) {
      const ok = await run(a.key);
      expect(ok.status).toBe(200);
      expect(ok.body.data.instrument.symbol).toBe(symbol);
    }
    const { result: limited, statements } = await server.countSql(() => run(a.key));
    expect(limited.status).toBe(429);
    expect(codeOf(limited.body)).toBe('RATE_LIMITED');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(limited.body.data).toBeUndefined();
    expect(statements).toBe(0); // refused before any SQL (the key and document lookups are cached)

    // acting for a user does not give partner A the user's budget
    const { token } = await mintDelegatedToken(database.db, TEST_SECRET, { partner: a.partner.name, email: alice.email });
    const forAlice = await run(a.key, { authorization: `Bearer ${token}` });
    expect(forAlice.status).toBe(429);
    expect(codeOf(forAlice.body)).toBe('RATE_LIMITED');

    // partner B, and alice herself, still have their own budgets
    const other = await run(b.key);
    expect(other.status).toBe(200);
    expect(other.body.data.instrument.symbol).toBe(symbol);
    const direct = await server.post({ query: QUOTE, variables: { symbol } }, { authorization: `Bearer ${await server.token(alice.id)}` });
    expect(direct.status).toBe(200);
    expect(direct.body.data.instrument.symbol).toBe(symbol);
  });
});

describe('operation log', () => {
  let database: TestDatabase;
  let app: App;
  let url: string;
  let lines: string[];
  let symbol: string;
  let alice: { id: number; email: string };

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    symbol = (await s.instrument(['42'])).symbol;
    alice = await s.user();
    lines = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(...String(chunk).split('\n').filter(Boolean));
        done();
      },
    });
    const config = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'debug', PARTNER_CACHE_TTL_MS: '0' });
    app = createApp({ config, database, logger: pino({ level: 'debug' }, sink) });
    url = await app.listen(0, '127.0.0.1');
    await publish(database.db, config, [QUOTE, CREATE_PORTFOLIO], null);
  });
  afterAll(async () => {
    await app?.stop();
    await database?.destroy();
  });

  it('names the partner and the operation, and never the key, the token or a mutation’s variables', async () => {
    const name = `logged-${unique()}`;
    const { key } = await createPartner(database.db, name, ['portfolios:read', 'trades:write']);
    await grantPartner(database.db, name, alice.email);
    const token = await signUserToken(TEST_SECRET, alice.id);
    const { token: delegated } = await mintDelegatedToken(database.db, TEST_SECRET, { partner: name, email: alice.email });
    const secretName = `Secret portfolio ${unique()}`;
    const post = (body: unknown, headers: Record<string, string>) =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as any,
      }));

    const quoted = await post(persisted(QUOTE, { symbol }), { 'x-api-key': key, 'apollographql-client-name': 'partner-app' });
    expect(quoted.status).toBe(200);
    const created = await post(persisted(CREATE_PORTFOLIO, { input: { name: secretName } }), { 'x-api-key': key, authorization: `Bearer ${delegated}` });
    expect(created.status).toBe(200);
    expect(created.body.data.createPortfolio.portfolio.name).toBe(secretName);
    // an ordinary user's mutation, too: its variables stay out of the log
    const direct = await post({ query: CREATE_PORTFOLIO, variables: { input: { name: `${secretName} direct` } } }, { authorization: `Bearer ${token}` });
    expect(direct.status).toBe(200);

    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const operations = entries.filter((e) => e.msg === 'operation');
    expect(operations.find((e) => e.operation === 'Quote')).toMatchObject({
      partner: name,
      caller: 'partner',
      type: 'query',
      client: 'partner-app',
      outcome: 'ok',
    });
    expect(operations.filter((e) => e.operation === 'CreatePortfolio')).toEqual([
      expect.objectContaining({ partner: name, caller: 'partner', type: 'mutation', outcome: 'ok' }),
      expect.objectContaining({ partner: null, caller: 'user', type: 'mutation', outcome: 'ok' }),
    ]);

    const everything = lines.join('\n');
    expect(everything).not.toContain(key);
    expect(everything).not.toContain(key.slice(10));
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(token.split('.')[2]);
    expect(everything).not.toContain(delegated.split('.')[2]);
    expect(everything).not.toContain(secretName);
    expect(everything).not.toContain('"variables"');
  });
});
