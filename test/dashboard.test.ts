import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql } from 'graphql-request';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { DEFAULT_MODEL, seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// The dashboard walks viewer → portfolios → positions → instrument → latest price and forecast, with
// valuations. Batching must make its SQL grow with the query's depth, never with its breadth.
const DASHBOARD = gql`
  query Dashboard($n: Int!, $h: Int!) {
    viewer {
      email
      portfolios(first: $n) {
        totalCount
        nodes {
          id
          name
          valuation {
            marketValue
            costBasis
            unrealizedPnl
            asOf
          }
          positions(first: 50) {
            totalCount
            nodes {
              quantity
              averageCost
              marketValue
              unrealizedPnl
              instrument {
                symbol
                name
                latestPrice {
                  date
                  close
                }
                latestForecast(horizonDays: $h) {
                  expectedReturn
                  lower
                  upper
                  model {
                    name
                    version
                  }
                }
              }
            }
          }
        }
      }
    }
  }
`;

describe('dashboard batching', () => {
  let database: TestDatabase;
  let server: TestServer;
  let ownerId: number;

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    const owner = await s.user();
    ownerId = owner.id;
    const model = await s.model(DEFAULT_MODEL);
    const symbols = [];
    for (let i = 0; i < 8; i++) {
      const inst = await s.instrument(['10', '11', '12.5']);
      for (const h of [21, 63]) await s.forecast(model.id, inst.id, h, '2024-01-31');
      symbols.push(inst.symbol);
    }
    for (let p = 0; p < 40; p++) {
      const portfolio = await s.portfolio(owner);
      for (const symbol of symbols.slice(0, 3 + (p % 5))) {
        await s.trade(owner.viewer, { portfolioId: portfolio.id, symbol, side: 'BUY', quantity: String(p + 1), price: '10.25' });
      }
    }
    // the shared hot-entity cache off: this measures the loaders' batching alone
    server = await startTestServer(database, { HOT_CACHE_TTL_MS: '0' });
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  it('runs the same, small number of statements for 10 and for 40 portfolios', async () => {
    const client = await server.client(ownerId);
    const small = await server.countSql(() => client.request<any>(DASHBOARD, { n: 10, h: 21 }));
    const large = await server.countSql(() => client.request<any>(DASHBOARD, { n: 40, h: 63 }));
    expect(small.result.viewer.portfolios.nodes).toHaveLength(10);
    expect(large.result.viewer.portfolios.nodes).toHaveLength(40);
    expect(large.result.viewer.portfolios.nodes.every((p: any) => p.positions.nodes.every((x: any) => x.instrument.latestForecast))).toBe(true);
    // the user with its portfolio page and count (one statement), and the open positions with their
    // instruments, latest prices and latest forecasts at the horizon the page asks for (one statement)
    expect(small.statements).toBe(2);
    expect(large.statements).toBe(small.statements);
  });

  it('with LOADER_BATCHING=off (the naive design bench -- incident measures) answers the same, one statement per portfolio', async () => {
    const naive = await startTestServer(database, { HOT_CACHE_TTL_MS: '0', RESPONSE_CACHE: 'off', LOADER_BATCHING: 'off' });
    try {
      const batched = await server.countSql(async () => (await server.client(ownerId)).request<any>(DASHBOARD, { n: 10, h: 21 }));
      const client = await naive.client(ownerId);
      const small = await naive.countSql(() => client.request<any>(DASHBOARD, { n: 10, h: 21 }));
      const large = await naive.countSql(() => client.request<any>(DASHBOARD, { n: 40, h: 21 }));
      expect(small.result).toEqual(batched.result);
      // the user, then each portfolio's open positions alone: SQL grows with the breadth
      expect(small.statements).toBe(1 + 10);
      expect(large.statements).toBe(1 + 40);
    } finally {
      await naive.stop();
    }
  });

  it('loads several horizons with the positions in the same statement, each the same as the instrument asked alone', async () => {
    const client = await server.client(ownerId);
    const query = `query H { viewer { portfolios(first: 3) { nodes { positions(first: 50) { nodes { instrument { symbol
      f21: latestForecast(horizonDays: 21) { horizonDays asOf expectedReturn lower upper model { name version } }
      f63: latestForecast(horizonDays: 63) { horizonDays asOf expectedReturn lower upper model { name version } }
      f5: latestForecast(horizonDays: 5) { horizonDays } } } } } } } }`;
    const { result, statements } = await server.countSql(() => client.request<any>(query));
    expect(statements).toBe(2);
    const instruments = result.viewer.portfolios.nodes.flatMap((p: any) => p.positions.nodes.map((x: any) => x.instrument));
    expect(instruments.length).toBeGreaterThan(0);
    for (const i of instruments) {
      expect(i.f21.horizonDays).toBe(21);
      expect(i.f63.horizonDays).toBe(63);
      expect(i.f5).toBeNull();
      const alone = await client.request<any>(
        `query A($s: String!) { instrument(symbol: $s) { a: latestForecast(horizonDays: 21) { horizonDays asOf expectedReturn lower upper model { name version } }
          b: latestForecast(horizonDays: 63) { horizonDays asOf expectedReturn lower upper model { name version } } } }`,
        { s: i.symbol },
      );
      expect([i.f21, i.f63]).toEqual([alone.instrument.a, alone.instrument.b]);
    }
  });

  it('loads the positions with everything it shows of them, with the hot-entity cache on too', async () => {
    const hot = await startTestServer(database);
    try {
      const client = await hot.client(ownerId);
      const first = await hot.countSql(() => client.request<any>(DASHBOARD, { n: 10, h: 21 }));
      // other variables: a response-cache miss; instruments and prices come with the positions anyway
      const second = await hot.countSql(() => client.request<any>(DASHBOARD, { n: 40, h: 63 }));
      expect(first.statements).toBe(2);
      expect(second.statements).toBe(2);
      expect(second.result.viewer.portfolios.nodes[0].positions.nodes[0].instrument.latestPrice).toEqual({ date: '2024-01-31', close: '12.5' });
    } finally {
      await hot.stop();
    }
  });

  it('loads the viewer with its one page of portfolios in one statement, and differently paged lists apart, with the same answers', async () => {
    const client = await server.client(ownerId);
    const one = await server.countSql(() => client.request<any>('{ viewer { name portfolios(first: 2) { totalCount nodes { id name } } } }'));
    const two = await server.countSql(() =>
      client.request<any>('{ viewer { name a: portfolios(first: 2) { totalCount nodes { id name } } b: portfolios(first: 3) { nodes { id } } } }'),
    );
    expect(one.statements).toBe(1);
    // the user, both pages (one batch) and the count
    expect(two.statements).toBe(3);
    expect(two.result.viewer.a).toEqual(one.result.viewer.portfolios);
    expect(one.result.viewer.portfolios.totalCount).toBe(40);
    expect(two.result.viewer.b.nodes.map((p: any) => p.id).slice(0, 2)).toEqual(one.result.viewer.portfolios.nodes.map((p: any) => p.id));
    expect(two.result.viewer.name).toBe(one.result.viewer.name);
    // a bad page size is still refused by the field itself
    await expect(client.request('{ viewer { portfolios(first: -1) { nodes { id } } } }')).rejects.toThrow(/first/);
  });

  it('values each portfolio from the positions and prices it already loaded', async () => {
    const client = await server.client(ownerId);
    const { result } = await server.countSql(() => client.request<any>(DASHBOARD, { n: 1, h: 21 }));
    const [first] = result.viewer.portfolios.nodes;
    // three positions of 1 unit bought at 10.25, each now at 12.5
    expect(first.valuation).toEqual({ marketValue: '37.5', costBasis: '30.75', unrealizedPnl: '6.75', asOf: '2024-01-31' });
  });
});
