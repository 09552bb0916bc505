import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPartner, grantPartner } from '../src/admission/partners.js';
import { publishOperations } from '../src/admission/trusted-documents.js';
import { mintDelegatedToken } from '../src/admission/delegation.js';
import { answerType } from '../src/cache/hits.js';
import { metricSum } from '../src/observability/prom-text.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, TEST_SECRET, type TestServer } from './helpers/server.js';

// Response-cache hits answered before anything is parsed (src/cache/hits.ts): the stored bytes written
// by the HTTP layer, with authentication, the caller's budget, the privacy rule of the document, the
// operation metric and log line, and the extensions a hit through the executor gets.

const DASHBOARD = `query Dashboard($n: Int!) { viewer { id portfolios(first: $n) { nodes { name positions { nodes { quantity instrument { symbol latestPrice { close } } } } } } } }`;
const QUOTE = `query Quote($s: String!) { instrument(symbol: $s) { symbol latestPrice { date close } } }`;
const TRADE = `mutation T($input: RecordTradeInput!) { recordTrade(input: $input) { position { quantity } } }`;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('response-cache hits before parsing', () => {
  let database: TestDatabase;
  let server: TestServer;
  let symbol: string;
  let alice: { id: number; portfolio: number };
  let bob: { id: number; portfolio: number };

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    symbol = (await s.instrument(['10', '12'])).symbol;
    const people = [];
    for (const quantity of ['3', '5']) {
      const user = await s.user();
      const portfolio = await s.portfolio(user);
      await s.trade(user.viewer, { portfolioId: portfolio.id, symbol, side: 'BUY', quantity, price: '10' });
      people.push({ id: user.id, portfolio: portfolio.id });
    }
    [alice, bob] = people;
    server = await startTestServer(database, { RATE_LIMIT_COST_PER_MINUTE: '100000' });
  });
  afterAll(async () => {
    await server.stop();
    await database.destroy();
  });

  const early = async () => metricSum(await (await fetch(server.url.replace('/graphql', '/metrics'))).text(), 'foliograph_response_cache_early_hits_total');
  const as = async (userId: number) => ({ authorization: `Bearer ${await server.token(userId)}` });

  it('answers a repeated query from the stored bytes, with no SQL, the hit extensions and the budget charged', async () => {
    const headers = await as(alice.id);
    const first = await server.countSql(() => server.post({ query: DASHBOARD, variables: { n: 5 } }, headers));
    expect(first.result.body.extensions.responseCache).toMatchObject({ hit: false, didCache: true });
    const before = await early();
    const second = await server.countSql(() => server.post({ query: DASHBOARD, variables: { n: 5 } }, headers));
    expect(second.statements).toBe(0);
    expect(await early()).toBe(before + 1);
    expect(second.result.status).toBe(200);
    expect(second.result.headers.get('content-type')).toBe('application/graphql-response+json; charset=utf-8');
    expect(second.result.headers.get('server-timing')).toMatch(/^app;dur=\d/);
    expect(second.result.body.data).toEqual(first.result.body.data);
    const cost = first.result.body.extensions.cost;
    expect(second.result.body.extensions).toEqual({
      responseCache: { hit: true },
      cost: {
        estimated: cost.estimated,
        limit: cost.limit,
        actual: { sqlStatements: 0, loaderBatches: 0, loaderKeys: 0, rows: 0 },
        budget: { limit: 100000, remaining: cost.budget.remaining - cost.estimated },
      },
    });
    // variables in another order, and an undeclared one, name the same answer
    const third = await server.post({ query: DASHBOARD, variables: { nonce: 'x', n: 5 } }, headers);
    expect(await early()).toBe(before + 2);
    expect(third.body.data).toEqual(first.result.body.data);
  });

  it("keeps private answers per caller: bob never gets alice's, anonymous gets no one's", async () => {
    await server.post({ query: DASHBOARD, variables: { n: 7 } }, await as(alice.id));
    const before = await early();
    const bobHeaders = await as(bob.id);
    const bobs = await server.countSql(() => server.post({ query: DASHBOARD, variables: { n: 7 } }, bobHeaders));
    expect(bobs.statements).toBeGreaterThan(0);
    expect(await early()).toBe(before);
    expect(bobs.result.body.data.viewer.id).toBe(String(bob.id));
    expect(bobs.result.body.data.viewer.portfolios.nodes[0].positions.nodes[0].quantity).toBe('5');
    const anonymous = await server.post({ query: DASHBOARD, variables: { n: 7 } });
    expect(anonymous.body.data.viewer).toBeNull();
    expect(await early()).toBe(before);
  });

  it('shares public answers between callers', async () => {
    await server.post({ query: QUOTE, variables: { s: symbol } });
    const before = await early();
    const headers = await as(bob.id);
    const signedIn = await server.countSql(() => server.post({ query: QUOTE, variables: { s: symbol } }, headers));
    expect(signedIn.statements).toBe(0);
    expect(await early()).toBe(before + 1);
    expect(signedIn.result.body.data.instrument.latestPrice.close).toBe('12');
  });

  it('still authenticates: a bad token is 401, never a cached answer', async () => {
    await server.post({ query: QUOTE, variables: { s: symbol } });
    const res = await server.post({ query: QUOTE, variables: { s: symbol } }, { authorization: 'Bearer not-a-token' });
    expect(res.status).toBe(401);
    expect(res.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect(res.body.data).toBeUndefined();
  });

  it("serves nothing stale after the caller's write, and a mutation is never answered early", async () => {
    const headers = await as(alice.id);
    await server.post({ query: DASHBOARD, variables: { n: 9 } }, headers);
    const trade = await server.post(
      { query: TRADE, variables: { input: { portfolioId: String(alice.portfolio), symbol, side: 'BUY', quantity: '1', price: '10' } } },
      headers,
    );
    expect(trade.body.data.recordTrade.position.quantity).toBe('4');
    const before = await early();
    const after = await server.post({ query: DASHBOARD, variables: { n: 9 } }, headers);
    expect(await early()).toBe(before);
    expect(after.body.data.viewer.portfolios.nodes[0].positions.nodes[0].quantity).toBe('4');
    expect(after.body.extensions.responseCache).toMatchObject({ hit: false });
  });

  describe('the same bytes again, remembered (no parsing, no token lookup)', () => {
    it('still charges the budget on every hit and keeps each caller to their own answer', async () => {
      const body = { query: DASHBOARD, variables: { n: 7 } };
      const [a, b] = [await as(alice.id), await as(bob.id)];
      await server.post(body, a);
      const hits = [];
      for (let i = 0; i < 3; i++) hits.push(await server.post(body, a));
      const remaining = hits.map((h) => h.body.extensions.cost.budget.remaining as number);
      expect(hits.every((h) => h.body.extensions.responseCache.hit === true)).toBe(true);
      expect(remaining[1]).toBeLessThan(remaining[0]);
      expect(remaining[2]).toBeLessThan(remaining[1]);
      // bob sends alice's bytes but his own token: his answer, never hers
      for (let i = 0; i < 2; i++) {
        const mine = await server.post(body, b);
        expect(mine.body.data.viewer.id).toBe(String(bob.id));
        expect(mine.body.data.viewer.portfolios.nodes[0].positions.nodes[0].quantity).toBe('5');
      }
    });

    it('serves nothing stale after a write: the remembered request goes the whole way again', async () => {
      const headers = await as(bob.id);
      const body = { query: DASHBOARD, variables: { n: 8 } };
      for (let i = 0; i < 3; i++) await server.post(body, headers);
      const trade = await server.post(
        { query: TRADE, variables: { input: { portfolioId: String(bob.portfolio), symbol, side: 'BUY', quantity: '2', price: '10' } } },
        headers,
      );
      expect(trade.body.errors).toBeUndefined();
      const after = await server.post(body, headers);
      expect(after.body.extensions.responseCache).toMatchObject({ hit: false });
      expect(after.body.data.viewer.portfolios.nodes[0].positions.nodes[0].quantity).toBe(trade.body.data.recordTrade.position.quantity);
    });

    it('forgets a request once its token has expired: 401, not the remembered answer', async () => {
      const headers = { authorization: `Bearer ${await server.token(alice.id, '2s')}` };
      const body = { query: DASHBOARD, variables: { n: 6 } };
      await server.post(body, headers);
      expect((await server.post(body, headers)).body.extensions.responseCache.hit).toBe(true);
      expect((await server.post(body, headers)).body.extensions.responseCache.hit).toBe(true);
      await new Promise((r) => setTimeout(r, 2100));
      const expired = await server.post(body, headers);
      expect(expired.status).toBe(401);
      expect(expired.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
      expect(expired.body.data).toBeUndefined();
    });
  });

  it("refuses a hit over the caller's budget as the executor would: 429 RATE_LIMITED with Retry-After", async () => {
    const tight = await startTestServer(database, { RATE_LIMIT_COST_PER_MINUTE: '7' });
    try {
      // each quote costs its estimate; the first fills the cache, the next ones spend the rest
      const answers = [];
      for (let i = 0; i < 12; i++) answers.push(await tight.post({ query: QUOTE, variables: { s: symbol } }));
      const refused = answers.filter((a) => a.status === 429);
      expect(refused.length).toBeGreaterThan(0);
      expect(refused[0].body.errors[0].extensions.code).toBe('RATE_LIMITED');
      expect(refused[0].headers.get('retry-after')).toMatch(/^\d+$/);
      expect(answers.filter((a) => a.status === 200).length).toBeGreaterThan(1);
    } finally {
      await tight.stop();
    }
  });

  it("answers a partner's trusted document early too, for the user it acts for", async () => {
    const { partner, key } = await createPartner(database.db, `hits-${Date.now()}`, ['instruments:read', 'portfolios:read']);
    const users = await database.db.query.users.findFirst({ where: (u, { eq }) => eq(u.id, alice.id) });
    await grantPartner(database.db, partner.name, users!.email);
    const body = `query PartnerDashboard { viewer { portfolios(first: 3) { nodes { name } } } }`;
    await publishOperations(database.db, [{ id: sha256(body), name: 'PartnerDashboard', type: 'query', body, cost: 10 }], partner.id);
    const { token } = await mintDelegatedToken(database.db, TEST_SECRET, { partner: partner.name, email: users!.email });
    const headers = { 'x-api-key': key, authorization: `Bearer ${token}` };
    const request = { extensions: { persistedQuery: { version: 1, sha256Hash: sha256(body) } } };
    const first = await server.post(request, headers);
    expect(first.body.errors).toBeUndefined();
    const before = await early();
    const second = await server.countSql(() => server.post(request, headers));
    expect(await early()).toBe(before + 1);
    expect(second.result.body.data).toEqual(first.body.data);
    // the key and the document's lookups are cached; the answer needs no SQL at all
    expect(second.statements).toBe(0);
  });
});

describe('the content type of an early answer', () => {
  it('is the one Apollo would choose, or none when the client takes neither', () => {
    const type = (accept?: string) => answerType(accept === undefined ? {} : { accept });
    expect(type()).toBe('application/json; charset=utf-8');
    expect(type('application/json')).toBe('application/json; charset=utf-8');
    expect(type('*/*')).toBe('application/json; charset=utf-8');
    expect(type('application/graphql-response+json, application/json')).toBe('application/graphql-response+json; charset=utf-8');
    expect(type('application/json;q=0.5, application/graphql-response+json')).toBe('application/graphql-response+json; charset=utf-8');
    expect(type('application/graphql-response+json;q=0.5, application/json')).toBe('application/json; charset=utf-8');
    expect(type('application/json, application/graphql-response+json')).toBe('application/json; charset=utf-8');
    expect(type('application/*')).toBe('application/json; charset=utf-8');
    expect(type('text/html')).toBeNull();
    // Apollo's callback flavour of JSON is Apollo's to write
    expect(type('application/json; callbackSpec=1.0')).toBeNull();
  });
});
