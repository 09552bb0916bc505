import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// Money answers fail loudly: a latest price that could not be loaded must not value a portfolio as if
// the instrument had no price (a clean, cacheable 0), and an answer with an error is never cached.

const VALUATION = `query V($id: ID!) { portfolio(id: $id) { valuation { marketValue costBasis unrealizedPnl asOf unpricedPositions } } }`;

describe('a valuation whose prices cannot be loaded', () => {
  let database: TestDatabase;
  let server: TestServer;
  beforeAll(async () => {
    database = await createTestDatabase();
    // hot entities off, so that every latest price comes from the table
    server = await startTestServer(database, { HOT_CACHE_TTL_MS: '0', NODE_ENV: 'production' });
  });
  afterAll(async () => {
    await server.stop();
    await database.destroy();
  });

  it('is a field error, not a valuation of 0, and the error answer is not served from the cache afterwards', async () => {
    const s = seed(database.db);
    const owner = await s.user();
    const portfolio = await s.portfolio(owner);
    const instrument = await s.instrument(['20', '25']);
    await s.trade(owner.viewer, { portfolioId: portfolio.id, symbol: instrument.symbol, side: 'BUY', quantity: '4', price: '20' });
    const headers = { authorization: `Bearer ${await server.token(owner.id)}` };
    const ask = () => server.post({ query: VALUATION, variables: { id: String(portfolio.id) } }, headers);

    await database.db.execute(sql`alter table prices rename to prices_away`);
    let broken;
    try {
      broken = await ask();
    } finally {
      await database.db.execute(sql`alter table prices_away rename to prices`);
    }
    expect(broken.body.data?.portfolio ?? null).toBeNull();
    expect(broken.body.errors.map((e: { extensions: { code: string } }) => e.extensions.code)).toEqual(['INTERNAL_SERVER_ERROR']);
    expect(JSON.stringify(broken.body)).not.toMatch(/prices_away|relation/);

    const healed = await ask();
    expect(healed.body.errors).toBeUndefined();
    expect(healed.body.data.portfolio.valuation).toEqual({
      marketValue: '100',
      costBasis: '80',
      unrealizedPnl: '20',
      asOf: '2024-01-31',
      unpricedPositions: 0,
    });
    expect(healed.body.extensions.responseCache).toMatchObject({ hit: false });
  });
});
