import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notifyInvalidation } from '../src/cache/invalidation.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { DEFAULT_MODEL, seed } from './helpers/seed.js';
import { until } from './helpers/until.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// Writers outside the server (forecasts:generate, seeds) announce stale instruments with NOTIFY;
// every server on the database drops its cached answers and hot entities for them.
const QUOTE = 'query($s: String!) { instrument(symbol: $s) { symbol latestPrice { close } latestForecast(horizonDays: 5) { expectedReturn } } }';

describe('invalidation by NOTIFY', () => {
  let database: TestDatabase;
  let server: TestServer;
  let instrument: { id: number; symbol: string };
  let modelId: number;

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    instrument = await s.instrument(['10', '11']);
    modelId = (await s.model(DEFAULT_MODEL)).id;
    await s.forecast(modelId, instrument.id, 5, '2024-01-30', 0.01);
    server = await startTestServer(database);
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  it('drops cached public answers and hot entities of the instruments a writer names', async () => {
    const ask = () => server.post({ query: QUOTE, variables: { s: instrument.symbol } });
    const first = await ask();
    expect(first.body.data.instrument.latestForecast.expectedReturn).toBe(0.01);
    const cached = await server.countSql(ask);
    expect(cached.statements).toBe(0);
    expect(cached.result.body.extensions.responseCache.hit).toBe(true);

    // a new forecast, written outside the API, then announced
    await seed(database.db).forecast(modelId, instrument.id, 5, '2024-01-31', 0.02);
    await notifyInvalidation(database.db, [`Instrument:${instrument.id}`]);
    const fresh = await until(ask, (r) => r.body.data.instrument.latestForecast.expectedReturn === 0.02);
    expect(fresh.body.data.instrument.latestForecast.expectedReturn).toBe(0.02);
    expect(fresh.body.extensions.responseCache.hit).toBe(false);
  });
});
