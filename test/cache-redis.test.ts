import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { until } from './helpers/until.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// The response cache's shared tier: two servers on one database and one Redis. An answer one caches
// is the other's hit; a write through one drops the other's copies (its process memory and Redis);
// a private answer stays its caller's on every instance.

const REDIS_URL = process.env.REDIS_URL;

// Redis outlives a test run and user ids restart at 1 in every new test database: each run's
// documents carry a run id, so no run can ever see answers another run left in Redis.
const run = randomBytes(6).toString('hex');
const doc = (text: string) => `# cache-redis run ${run}\n${text}`;

const DASHBOARD = doc(`query Dashboard($n: Int!) {
  viewer { id email portfolios(first: $n) { totalCount nodes { id name positions(first: 50) { nodes { quantity instrument { symbol latestPrice { close } } } } } } }
}`);
const QUOTE = doc(`query Quote($s: String!) { instrument(symbol: $s) { symbol name latestPrice { date close } } }`);
const RECORD_TRADE = doc(`mutation Trade($input: RecordTradeInput!) { recordTrade(input: $input) { position { quantity } } }`);

interface Answer {
  body: any;
  statements: number;
}

async function ask(server: TestServer, query: string, variables: Record<string, unknown> = {}, userId?: number): Promise<Answer> {
  const headers: Record<string, string> = userId ? { authorization: `Bearer ${await server.token(userId)}` } : {};
  const { result, statements } = await server.countSql(() => server.post({ query, variables }, headers));
  expect(result.status, JSON.stringify(result.body)).toBe(200);
  return { body: result.body, statements };
}

async function metric(server: TestServer, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(server.url.replace(/\/graphql$/, '/metrics'))).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

const hit = (a: Answer) => a.body.extensions?.responseCache?.hit;
const quantityOf = (a: Answer, symbol: string) =>
  a.body.data.viewer.portfolios.nodes[0].positions.nodes.find((p: any) => p.instrument.symbol === symbol)?.quantity;
const ids = (a: Answer) => a.body.data.viewer.portfolios.nodes.map((p: { id: string }) => p.id).sort();

describe.skipIf(!REDIS_URL)('response cache across instances (Redis)', () => {
  let database: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  let s: ReturnType<typeof seed>;
  let symbols: string[];

  /** A new user (nothing of theirs cached anywhere) with `count` portfolios holding 3 of each instrument. */
  async function trader(count = 1) {
    const user = await s.user();
    const portfolios: string[] = [];
    for (let i = 0; i < count; i++) {
      const p = await s.portfolio(user);
      for (const symbol of symbols) await s.trade(user.viewer, { portfolioId: p.id, symbol, side: 'BUY', quantity: '3', price: '10' });
      portfolios.push(String(p.id));
    }
    return { id: user.id, email: user.email, portfolios: portfolios.sort() };
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    s = seed(database.db);
    symbols = [];
    for (let i = 0; i < 2; i++) symbols.push((await s.instrument(['20', '21'])).symbol);
    // two instances of the API on the same database and the same Redis
    const env = { REDIS_URL: REDIS_URL!, HOT_CACHE_TTL_MS: '0' };
    a = await startTestServer(database, env);
    b = await startTestServer(database, env);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await database?.destroy();
  });

  it('answers on B, without SQL, what A has cached', async () => {
    const alice = await trader(2);
    const first = await ask(a, DASHBOARD, { n: 10 }, alice.id);
    expect(first.body.extensions.responseCache).toMatchObject({ hit: false, didCache: true });
    expect(first.statements).toBeGreaterThan(0);

    const redisHits = await metric(b, 'foliograph_response_cache_requests_total', { result: 'hit', tier: 'redis' });
    const onB = await ask(b, DASHBOARD, { n: 10 }, alice.id);
    expect(hit(onB)).toBe(true);
    expect(onB.statements).toBe(0);
    expect(onB.body.extensions.cost.actual.sqlStatements).toBe(0);
    expect(onB.body.data).toEqual(first.body.data);
    expect(await metric(b, 'foliograph_response_cache_requests_total', { result: 'hit', tier: 'redis' })).toBe(redisHits + 1);

    // B now keeps its own copy
    const localHits = await metric(b, 'foliograph_response_cache_requests_total', { result: 'hit', tier: 'local' });
    expect(hit(await ask(b, DASHBOARD, { n: 10 }, alice.id))).toBe(true);
    expect(await metric(b, 'foliograph_response_cache_requests_total', { result: 'hit', tier: 'local' })).toBe(localHits + 1);

    // public answers are shared across instances and callers
    const bob = await trader(1);
    const quote = await ask(a, QUOTE, { s: symbols[0] });
    expect(quote.body.data.instrument.latestPrice.close).toBe('21');
    const quoteOnB = await ask(b, QUOTE, { s: symbols[0] }, bob.id);
    expect(hit(quoteOnB)).toBe(true);
    expect(quoteOnB.statements).toBe(0);
    expect(quoteOnB.body.data).toEqual(quote.body.data);
  });

  it("drops B's cached dashboard when alice trades through A", async () => {
    const alice = await trader(1);
    const vars = { n: 5 };
    await ask(a, DASHBOARD, vars, alice.id);
    // B has it in its own memory now, and Redis has it too
    expect(hit(await ask(b, DASHBOARD, vars, alice.id))).toBe(true);
    expect(hit(await ask(b, DASHBOARD, vars, alice.id))).toBe(true);
    const sessionsOnB = await metric(b, 'foliograph_response_cache_invalidations_total', { type: 'Session' });

    const trade = await ask(
      a,
      RECORD_TRADE,
      { input: { portfolioId: alice.portfolios[0], symbol: symbols[0], side: 'BUY', quantity: '4', price: '20' } },
      alice.id,
    );
    expect(trade.body.data.recordTrade.position.quantity).toBe('7');

    const fresh = await until(
      () => ask(b, DASHBOARD, vars, alice.id),
      (x) => quantityOf(x, symbols[0]) !== '3',
    );
    expect(quantityOf(fresh, symbols[0])).toBe('7');
    // neither B's memory nor Redis answered it
    expect(hit(fresh)).toBe(false);
    expect(fresh.statements).toBeGreaterThan(0);
    expect(await metric(b, 'foliograph_response_cache_invalidations_total', { type: 'Session' })).toBeGreaterThan(sessionsOnB);
    // and A answers the new quantity too
    expect(quantityOf(await ask(a, DASHBOARD, vars, alice.id), symbols[0])).toBe('7');
  });

  it("leaves bob's cached answers on B alone when alice trades through A", async () => {
    const alice = await trader(1);
    const bob = await trader(1);
    const vars = { n: 6 };
    await ask(b, DASHBOARD, vars, alice.id);
    const bobFirst = await ask(b, DASHBOARD, vars, bob.id);
    expect(hit(await ask(b, DASHBOARD, vars, bob.id))).toBe(true);

    await ask(a, RECORD_TRADE, { input: { portfolioId: alice.portfolios[0], symbol: symbols[1], side: 'SELL', quantity: '1', price: '21' } }, alice.id);
    // once B has seen alice's invalidation ...
    const aliceFresh = await until(
      () => ask(b, DASHBOARD, vars, alice.id),
      (x) => quantityOf(x, symbols[1]) === '2',
    );
    expect(quantityOf(aliceFresh, symbols[1])).toBe('2');
    // ... bob's answer is still there
    const bobAgain = await ask(b, DASHBOARD, vars, bob.id);
    expect(hit(bobAgain)).toBe(true);
    expect(bobAgain.statements).toBe(0);
    expect(bobAgain.body.data).toEqual(bobFirst.body.data);
  });

  it('never serves alice’s private answer from Redis to bob or to an anonymous caller on B', async () => {
    const alice = await trader(2);
    const bob = await trader(3);
    const vars = { n: 7 };
    const mine = await ask(a, DASHBOARD, vars, alice.id);
    expect(mine.body.extensions.responseCache.didCache).toBe(true);
    expect(ids(mine)).toEqual(alice.portfolios);

    const bobs = await ask(b, DASHBOARD, vars, bob.id);
    expect(hit(bobs)).toBe(false);
    expect(bobs.body.data.viewer.email).toBe(bob.email);
    expect(ids(bobs)).toEqual(bob.portfolios);

    const anonymous = await ask(b, DASHBOARD, vars);
    expect(anonymous.body.data).toEqual({ viewer: null });
    expect(hit(anonymous)).toBe(false);

    // each cached answer, read on the other instance, is still its own caller's
    const bobOnA = await ask(a, DASHBOARD, vars, bob.id);
    expect(hit(bobOnA)).toBe(true);
    expect(ids(bobOnA)).toEqual(bob.portfolios);
    const aliceOnB = await ask(b, DASHBOARD, vars, alice.id);
    expect(hit(aliceOnB)).toBe(true);
    expect(ids(aliceOnB)).toEqual(alice.portfolios);
  });
});

// A reader racing a writer across instances: readers keep both instances' memory and Redis busy
// storing the trader's dashboard while trades go through A. Once a trade is answered, neither
// instance may answer a dashboard without it: not B (whose copies and Redis's must be gone), and not
// A (which must not copy an old Redis entry back into memory while its invalidation is on its way).
describe.skipIf(!REDIS_URL)('a reader racing a writer on two instances (Redis)', () => {
  let database: TestDatabase;
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    database = await createTestDatabase();
    // The readers spend far more than a caller's default budget. The guarantee holds while the writer
    // reaches Redis (the outage tests cover the rest): a slow shared Redis must not pass for a failed one.
    const env = { REDIS_URL: REDIS_URL!, HOT_CACHE_TTL_MS: '0', RATE_LIMIT_COST_PER_MINUTE: '1000000000', REDIS_COMMAND_TIMEOUT_MS: '2000' };
    a = await startTestServer(database, env);
    b = await startTestServer(database, env);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await database?.destroy();
  });

  it('never answers a pre-write dashboard after the write was answered, over 40 rounds', async () => {
    const s = seed(database.db);
    const { symbol } = await s.instrument(['20']);
    const user = await s.user();
    const portfolio = await s.portfolio(user);
    await s.trade(user.viewer, { portfolioId: portfolio.id, symbol, side: 'BUY', quantity: '1', price: '10' });
    const headers = { authorization: `Bearer ${await a.token(user.id)}` };
    const dashboard = async (server: TestServer) => {
      const res = await server.post({ query: DASHBOARD, variables: { n: 3 } }, headers);
      expect(res.status).toBe(200);
      return Number(res.body.data.viewer.portfolios.nodes[0].positions.nodes[0].quantity);
    };
    let acknowledged = 1;
    let racing = true;
    const stale: string[] = [];
    // background readers on both instances: each answer must show at least what was acknowledged before it was asked
    const reader = async (server: TestServer, name: string) => {
      while (racing) {
        const floor = acknowledged;
        const seen = await dashboard(server);
        if (seen < floor) stale.push(`${name} saw ${seen} after ${floor} was acknowledged`);
      }
    };
    const readers = [reader(a, 'A'), reader(a, 'A'), reader(b, 'B'), reader(b, 'B')];
    try {
      for (let round = 0; round < 40; round++) {
        const trade = await a.post(
          { query: RECORD_TRADE, variables: { input: { portfolioId: String(portfolio.id), symbol, side: 'BUY', quantity: '1', price: '20' } } },
          headers,
        );
        expect(trade.body.data.recordTrade.position.quantity).toBe(String(acknowledged + 1));
        acknowledged++;
        const [onA, onB] = await Promise.all([dashboard(a), dashboard(b)]);
        if (onA !== acknowledged) stale.push(`A answered ${onA} right after trade ${acknowledged}`);
        if (onB !== acknowledged) stale.push(`B answered ${onB} right after trade ${acknowledged}`);
      }
    } finally {
      racing = false;
      await Promise.all(readers);
    }
    expect(stale).toEqual([]);
    // and what both end with is the last trade
    expect([await dashboard(a), await dashboard(b)]).toEqual([41, 41]);
  });
});

// Two deployments sharing one Redis (staging and production, say): user 1 of one database is not
// user 1 of the other, so their cached answers live in namespaces of their own.
describe.skipIf(!REDIS_URL)('response cache of two databases sharing one Redis', () => {
  let first: TestDatabase;
  let second: TestDatabase;
  let one: TestServer;
  let two: TestServer;
  const SAME_DOCUMENT = doc(`query Me { viewer { id email } }`);

  beforeAll(async () => {
    first = await createTestDatabase();
    second = await createTestDatabase();
    await seed(first.db).user({ email: `first-${run}@example.com` });
    await seed(second.db).user({ email: `second-${run}@example.com` });
    one = await startTestServer(first, { REDIS_URL: REDIS_URL! });
    two = await startTestServer(second, { REDIS_URL: REDIS_URL! });
  });
  afterAll(async () => {
    await one?.stop();
    await two?.stop();
    await first?.destroy();
    await second?.destroy();
  });

  it("never answers one database's user with the other's cached answer for the same user id", async () => {
    const mine = await ask(one, SAME_DOCUMENT, {}, 1);
    expect(mine.body.data.viewer.email).toBe(`first-${run}@example.com`);
    expect(hit(await ask(one, SAME_DOCUMENT, {}, 1))).toBe(true);
    const theirs = await ask(two, SAME_DOCUMENT, {}, 1);
    expect(theirs.body.data.viewer.email).toBe(`second-${run}@example.com`);
    expect(hit(theirs)).toBe(false);
  });
});
