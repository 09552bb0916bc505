import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prices } from '../src/db/schema.js';
import { scopeDb } from '../src/db/client.js';
import { formatDecimal } from '../src/domain/decimal.js';
import { priceHistoriesByInstrument } from '../src/loaders/prices-history.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// Portfolio.forecast through the real server: the hand-computed example of portfolio-risk.test.ts on
// the database, its SQL (growing with the query's depth, never with the number of portfolios), its
// cached answers dropped by a trade, and its privacy.
const a = Math.LN2;
const Z = 1.959963984540054;
const lognormal = (m: number, s: number) => ({ expectedReturn: Math.exp(m + (s * s) / 2) - 1, lower: Math.exp(m - Z * s) - 1, upper: Math.exp(m + Z * s) - 1 });

const FIELDS = `expectedReturn lower upper volatility asOf horizonDays coverage
  model { name version active }
  window { frequency from to returns }
  weights { weight volatility riskContribution instrument { symbol } }
  excluded { symbol }`;
const ONE = `query One($id: ID!, $h: Int) { portfolio(id: $id) { id forecast(horizonDays: $h) { ${FIELDS} } } }`;
const MINE = `query Mine($n: Int!, $h: Int) { viewer { portfolios(first: $n) { nodes { id forecast(horizonDays: $h) { ${FIELDS} } } } } }`;
const TWO = `query Two($x: ID!, $y: ID!) { x: portfolio(id: $x) { forecast { expectedReturn } } y: portfolio(id: $y) { forecast { expectedReturn } } }`;

/** Closes on the 1st of the 13 months 2023-01 to 2024-01 (a monthly series, as the demo's stocks). */
const monthly = (instrumentId: number, closes: number[]) =>
  closes.map((close, i) => ({ instrumentId, date: `${2023 + Math.floor(i / 12)}-${String((i % 12) + 1).padStart(2, '0')}-01`, close: String(close) }));

describe('Portfolio.forecast', () => {
  let database: TestDatabase;
  let server: TestServer;
  let alice: Awaited<ReturnType<ReturnType<typeof seed>['user']>>;
  let bob: Awaited<ReturnType<ReturnType<typeof seed>['user']>>;
  let symbols: { A: string; B: string; Young: string };
  let ids: { A: number; B: number };
  let mixed: number; // A and B, weighted 0.75 / 0.25
  let single: number; // A only
  let bobs: number;

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    [alice, bob] = [await s.user(), await s.user()];
    const [A, B, Young] = [await s.instrument([]), await s.instrument([]), await s.instrument([])];
    symbols = { A: A.symbol, B: B.symbol, Young: Young.symbol };
    ids = { A: A.id, B: B.id };
    // log returns in units of a = ln 2 — A: ±1 alternately; B: 2 0 2 0 2 0 2 2 0 0 2 0 (see portfolio-risk.test.ts)
    await database.db.insert(prices).values([
      ...monthly(A.id, [100, 200, 100, 200, 100, 200, 100, 200, 100, 200, 100, 200, 100]),
      ...monthly(B.id, [1, 4, 4, 16, 16, 64, 64, 256, 1024, 1024, 1024, 4096, 4096]),
      ...monthly(Young.id, [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]).slice(-3), // three closes: too little history
    ]);
    const buy = (viewer: typeof alice.viewer, portfolioId: number, symbol: string, quantity: string) =>
      s.trade(viewer, { portfolioId, symbol, side: 'BUY', quantity, price: '100' });
    mixed = (await s.portfolio(alice)).id;
    await buy(alice.viewer, mixed, A.symbol, '122.88'); // 12288
    await buy(alice.viewer, mixed, B.symbol, '1'); // 4096
    single = (await s.portfolio(alice)).id;
    await buy(alice.viewer, single, A.symbol, '3');
    await s.portfolio(alice); // an empty one
    // more of alice's portfolios, in varied shapes, so that 2 and 8 of them can be compared
    for (let i = 0; i < 5; i++) {
      const id = (await s.portfolio(alice)).id;
      await buy(alice.viewer, id, A.symbol, String(i + 1));
      if (i % 2) await buy(alice.viewer, id, B.symbol, '0.5');
      if (i % 3 === 0) await buy(alice.viewer, id, Young.symbol, '2');
    }
    bobs = (await s.portfolio(bob)).id;
    await buy(bob.viewer, bobs, B.symbol, '2');
    // the shared hot-entity cache off: statement counts measure the loaders' batching alone
    server = await startTestServer(database, { HOT_CACHE_TTL_MS: '0' });
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  const ask = async (userId: number | null, query: string, variables: Record<string, unknown>) => {
    const headers: Record<string, string> = userId ? { authorization: `Bearer ${await server.token(userId)}` } : {};
    return server.post({ query, variables }, headers);
  };

  it('answers the hand-computed two-asset example, documented method and window included', async () => {
    const { body } = await ask(alice.id, ONE, { id: String(mixed), h: 21 });
    expect(body.errors).toBeUndefined();
    const f = body.data.portfolio.forecast;
    // per month: w·μ = 0.25 a, wᵀΣw = 21/22 a² (correlation 2/3); 21 trading days = one month
    const expected = lognormal(0.25 * a, a * Math.sqrt(21 / 22));
    expect(f.expectedReturn).toBeCloseTo(expected.expectedReturn, 12);
    expect(f.lower).toBeCloseTo(expected.lower, 12);
    expect(f.upper).toBeCloseTo(expected.upper, 12);
    expect(f.volatility).toBeCloseTo(a * Math.sqrt(21 / 22), 12);
    expect(f).toMatchObject({
      asOf: '2024-01-01',
      horizonDays: 21,
      coverage: 1,
      model: { name: 'portfolio-covariance', version: '1', active: true },
      window: { frequency: 'MONTHLY', from: '2023-01-01', to: '2024-01-01', returns: 12 },
      excluded: [],
    });
    expect(f.weights.map((w: any) => [w.instrument.symbol, w.weight])).toEqual([
      [symbols.A, 0.75],
      [symbols.B, 0.25],
    ]);
    expect(f.weights[0].riskContribution).toBeCloseTo(11 / 14, 12);
  });

  it('gives a one-instrument portfolio that instrument’s own interval, and an empty one null', async () => {
    const { body } = await ask(alice.id, ONE, { id: String(single), h: 63 });
    // A alone over three months: m = 0, s² = 3 · 12/11 a²
    const expected = lognormal(0, a * Math.sqrt(36 / 11));
    expect(body.data.portfolio.forecast.expectedReturn).toBeCloseTo(expected.expectedReturn, 12);
    expect(body.data.portfolio.forecast.lower).toBeCloseTo(expected.lower, 12);
    expect(body.data.portfolio.forecast.upper).toBeCloseTo(expected.upper, 12);
    const all = await ask(alice.id, MINE, { n: 3, h: 5 });
    expect(all.body.data.viewer.portfolios.nodes[2].forecast).toBeNull();
  });

  it('lists holdings with too little history as excluded', async () => {
    const { body } = await ask(alice.id, MINE, { n: 8, h: 21 });
    const withYoung = body.data.viewer.portfolios.nodes[3].forecast;
    expect(withYoung.excluded).toEqual([{ symbol: symbols.Young }]);
    // 1 × A at 100 included; 2 × Young at 17 left out
    expect(withYoung.coverage).toBeCloseTo(100 / 134, 12);
    expect(withYoung.weights.map((w: any) => w.instrument.symbol)).toEqual([symbols.A]);
  });

  it('runs the same statements for 2 portfolios as for 8, and for one portfolio as for two', async () => {
    const small = await server.countSql(() => ask(alice.id, MINE, { n: 2, h: 10 }));
    const large = await server.countSql(() => ask(alice.id, MINE, { n: 8, h: 11 }));
    expect(small.result.body.data.viewer.portfolios.nodes.filter((p: any) => p.forecast)).toHaveLength(2);
    expect(large.result.body.data.viewer.portfolios.nodes.filter((p: any) => p.forecast)).toHaveLength(7);
    // the user with its portfolio page, open positions (with their instruments' latest prices), price histories, instruments
    expect(small.statements).toBe(4);
    expect(large.statements).toBe(small.statements);

    const one = await server.countSql(() => ask(alice.id, `query($x: ID!) { x: portfolio(id: $x) { forecast { expectedReturn } } }`, { x: String(single) }));
    const two = await server.countSql(() => ask(alice.id, TWO, { x: String(mixed), y: String(single) }));
    expect(two.result.body.data.x.forecast.expectedReturn).toBeGreaterThan(two.result.body.data.y.forecast.expectedReturn);
    expect(one.result.body.data.x.forecast.expectedReturn).toBe(two.result.body.data.y.forecast.expectedReturn);
    // portfolios, open positions (with latest prices), price histories
    expect(one.statements).toBe(3);
    expect(two.statements).toBe(one.statements);
  });

  it('is timed as an on-request model run in the model-duration histogram', async () => {
    const runs = async () =>
      (await server.app.metrics.modelDuration.get()).values.find(
        (v) => v.metricName === 'foliograph_forecast_model_duration_seconds_count' && v.labels.model === 'portfolio-covariance' && v.labels.stage === 'request',
      )?.value ?? 0;
    const before = await runs();
    await ask(alice.id, MINE, { n: 3, h: 13 });
    // two priced portfolios computed; the empty one has nothing to compute
    expect((await runs()) - before).toBe(2);
  });

  it('is cached with the portfolio’s private answers and recomputed after a trade changes its weights', async () => {
    const variables = { id: String(mixed), h: 21 };
    const first = await ask(alice.id, ONE, variables);
    const cached = await server.countSql(() => ask(alice.id, ONE, variables));
    expect(cached.statements).toBe(0);
    expect(cached.result.body.extensions.responseCache.hit).toBe(true);
    expect(cached.result.body.data).toEqual(first.body.data);

    const trade = await ask(alice.id, 'mutation($i: RecordTradeInput!) { recordTrade(input: $i) { position { quantity } } }', {
      i: { portfolioId: String(mixed), symbol: symbols.B, side: 'BUY', quantity: '1', price: '4096' },
    });
    expect(trade.body.data.recordTrade.position.quantity).toBe('2');

    const after = await ask(alice.id, ONE, variables);
    expect(after.body.extensions.responseCache.hit).toBe(false);
    const f = after.body.data.portfolio.forecast;
    // weights now 12288 and 8192 of 20480 = (0.6, 0.4): w·μ = 0.4 a,
    // wᵀΣw = (a²/11)·(0.36·12 + 0.16·12 + 2·0.24·8) = 10.08/11 a²
    const expected = lognormal(0.4 * a, a * Math.sqrt(10.08 / 11));
    expect(f.weights.map((w: any) => w.weight)).toEqual([0.6, 0.4]);
    expect(f.expectedReturn).toBeCloseTo(expected.expectedReturn, 12);
    expect(f.lower).toBeCloseTo(expected.lower, 12);
    expect(f.upper).toBeCloseTo(expected.upper, 12);
    expect(f.expectedReturn).not.toBeCloseTo(first.body.data.portfolio.forecast.expectedReturn, 6);
  });

  it('shows no one else’s portfolio forecast: bob and anonymous callers get null', async () => {
    const asBob = await ask(bob.id, ONE, { id: String(mixed), h: 21 });
    expect(asBob.body.errors).toBeUndefined();
    expect(asBob.body.data.portfolio).toBeNull();
    const asNobody = await ask(null, ONE, { id: String(mixed), h: 21 });
    expect(asNobody.body.data.portfolio).toBeNull();
    const both = await ask(bob.id, TWO, { x: String(mixed), y: String(bobs) });
    expect(both.body.data.x).toBeNull();
    expect(both.body.data.y.forecast.expectedReturn).toBeCloseTo(lognormal(a, a * Math.sqrt(12 / 11)).expectedReturn, 12);
  });

  it('loads every key’s window of closes in one statement, oldest first, in key order', async () => {
    const stats = { statements: 0 };
    const keys = [
      { instrumentId: ids.B, from: '2023-11-15', to: '2024-12-31' },
      { instrumentId: 2_000_000_000, from: '2000-01-01', to: '2030-01-01' }, // no such instrument
      { instrumentId: ids.A, from: '2023-02-01', to: '2023-04-01' },
      { instrumentId: ids.B, from: '2023-01-01', to: '2023-02-28' }, // the same instrument, another window
    ];
    const found = await priceHistoriesByInstrument(scopeDb(database.db, stats))(keys);
    expect(stats.statements).toBe(1);
    expect(found.map((closes) => closes.map((c) => [c.instrumentId, c.date, formatDecimal(c.close)]))).toEqual([
      [
        [ids.B, '2023-12-01', '4096'],
        [ids.B, '2024-01-01', '4096'],
      ],
      [],
      [
        [ids.A, '2023-02-01', '200'],
        [ids.A, '2023-03-01', '100'],
        [ids.A, '2023-04-01', '200'],
      ],
      [
        [ids.B, '2023-01-01', '1'],
        [ids.B, '2023-02-01', '4'],
      ],
    ]);
  });

  it('refuses horizons outside 1 to 252 trading days with BAD_USER_INPUT', async () => {
    for (const h of [0, 253]) {
      const { body } = await ask(alice.id, ONE, { id: String(mixed), h });
      expect(body.data.portfolio.forecast).toBeNull();
      expect(body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
      expect(body.errors[0].path).toEqual(['portfolio', 'forecast']);
      expect(body.errors[0].message).toMatch(/horizonDays/);
    }
  });
});

const REDIS_URL = process.env.REDIS_URL;

// With Redis, one instance's trade must reach the forecast another instance has cached. Redis outlives
// a run and user ids restart in every test database, so the document carries this run's id.
describe.skipIf(!REDIS_URL)('Portfolio.forecast cached across instances (Redis)', () => {
  const FORECAST = `# portfolio-forecast run ${randomBytes(6).toString('hex')}\n${ONE}`;
  let database: TestDatabase;
  let servers: TestServer[];
  let owner: Awaited<ReturnType<ReturnType<typeof seed>['user']>>;
  let portfolioId: string;
  let symbol: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    owner = await s.user();
    const [A, B] = [await s.instrument([]), await s.instrument([])];
    symbol = B.symbol;
    await database.db
      .insert(prices)
      .values([
        ...monthly(A.id, [100, 200, 100, 200, 100, 200, 100, 200, 100, 200, 100, 200, 100]),
        ...monthly(B.id, [1, 4, 4, 16, 16, 64, 64, 256, 1024, 1024, 1024, 4096, 4096]),
      ]);
    portfolioId = String((await s.portfolio(owner)).id);
    await s.trade(owner.viewer, { portfolioId, symbol: A.symbol, side: 'BUY', quantity: '122.88', price: '100' });
    await s.trade(owner.viewer, { portfolioId, symbol: B.symbol, side: 'BUY', quantity: '1', price: '100' });
    const env = { REDIS_URL: REDIS_URL!, HOT_CACHE_TTL_MS: '0' };
    servers = [await startTestServer(database, env), await startTestServer(database, env)];
  });
  afterAll(async () => {
    for (const server of servers ?? []) await server.stop();
    await database?.destroy();
  });

  it('serves B from what A cached, and recomputes on B after a trade through A', async () => {
    const [a, b] = servers;
    const ask = async (server: TestServer, query: string, variables: Record<string, unknown>) =>
      server.countSql(async () => (await server.post({ query, variables }, { authorization: `Bearer ${await server.token(owner.id)}` })).body);
    const variables = { id: portfolioId, h: 21 };
    const first = await ask(a, FORECAST, variables);
    expect(first.result.data.portfolio.forecast.weights.map((w: any) => w.weight)).toEqual([0.75, 0.25]);
    const onB = await ask(b, FORECAST, variables);
    expect(onB.result.extensions.responseCache.hit).toBe(true);
    expect(onB.statements).toBe(0);

    const trade = await ask(a, 'mutation($i: RecordTradeInput!) { recordTrade(input: $i) { position { quantity } } }', {
      i: { portfolioId, symbol, side: 'BUY', quantity: '1', price: '4096' },
    });
    expect(trade.result.data.recordTrade.position.quantity).toBe('2');
    // the invalidation travels over Redis: a bounded wait for it, not a timing assertion
    let after = await ask(b, FORECAST, variables);
    for (let i = 0; i < 40 && after.result.extensions.responseCache.hit; i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = await ask(b, FORECAST, variables);
    }
    expect(after.result.extensions.responseCache.hit).toBe(false);
    expect(after.result.data.portfolio.forecast.weights.map((w: any) => w.weight)).toEqual([0.6, 0.4]);
  });
});
