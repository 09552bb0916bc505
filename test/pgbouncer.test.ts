import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { notifyInvalidation } from '../src/cache/invalidation.js';
import { createDatabase } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { createTestDatabase, onPostgres, type TestDatabase } from './helpers/db.js';
import { pgbouncerBin, startPgBouncer, type PgBouncer } from './helpers/pgbouncer.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

// foliograph behind Debian's PgBouncer in transaction pooling mode (DATABASE_URL the pooler,
// DATABASE_DIRECT_URL the server): two server connections shared by every client, so consecutive
// statements of one client land on different backends. Nothing is prepared by name (a statement
// prepared on one backend is missing on the next), no setting is sent at start-up (PgBouncer refuses
// what it does not track), and LISTEN and the migration lock, which need a session, bypass the pooler.

describe.runIf(onPostgres && pgbouncerBin)('behind PgBouncer in transaction mode', () => {
  let direct: TestDatabase;
  let pooler: PgBouncer;
  let database: TestDatabase;
  let server: TestServer;
  let symbol: string;
  let instrumentId: number;
  let users: { id: number }[];
  let portfolios: number[];

  beforeAll(async () => {
    direct = await createTestDatabase();
    pooler = await startPgBouncer(direct.url!, { poolSize: 2 });
    const opened = await createDatabase({ databaseUrl: pooler.url, directUrl: direct.url, pgliteDataDir: 'memory://', dbPoolMax: 8 });
    database = { ...opened, url: pooler.url, destroy: () => opened.close() };
    const s = seed(direct.db);
    const instrument = await s.instrument(['10', '11'], { last: '2024-01-31' });
    symbol = instrument.symbol;
    instrumentId = instrument.id;
    users = [await s.user(), await s.user()];
    portfolios = [(await s.portfolio(users[0]!)).id, (await s.portfolio(users[1]!)).id];
    server = await startTestServer(database, { RATE_LIMIT_COST_PER_MINUTE: '100000000' });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
    await pooler?.destroy();
    await direct?.destroy();
  });

  const as = async (i: number) => ({ authorization: `Bearer ${await server.token(users[i]!.id)}` });

  it('migrates from two instances at once: the lock and its release reach the same backend', async () => {
    await Promise.all([migrate(database), migrate(database)]);
    // no migration lock is left held on any backend
    const held = await direct.db.execute(sql`select count(*)::int as n from pg_locks where locktype = 'advisory'`);
    expect((held as unknown as { n: number }[])[0]!.n).toBe(0);
  });

  it('records concurrent trades exactly, each in its own transaction on whichever backend is free', async () => {
    const trade = async (i: number) => {
      const res = await server.post(
        {
          query: 'mutation($input: RecordTradeInput!) { recordTrade(input: $input) { position { quantity } } }',
          variables: { input: { portfolioId: String(portfolios[i % 2]), symbol, side: 'BUY', quantity: '1', price: '10' } },
        },
        await as(i % 2),
      );
      return res.body;
    };
    const answers = await Promise.all(Array.from({ length: 24 }, (_, i) => trade(i)));
    expect(answers.filter((a) => a.errors)).toEqual([]);
    for (const i of [0, 1]) {
      const res = await server.post(
        { query: 'query($id: ID!) { portfolio(id: $id) { positions(first: 5) { nodes { quantity } } } }', variables: { id: String(portfolios[i]) } },
        await as(i),
      );
      expect(res.body.data.portfolio.positions.nodes).toEqual([{ quantity: '12' }]);
    }
  });

  it('runs the same reads many times over, concurrently, with nothing prepared by name', async () => {
    // the direct pool would prepare these from their third run; through the pooler, none is
    const runs = await Promise.all(
      Array.from({ length: 30 }, async (_, i) =>
        server.post(
          { query: 'query($s: String!, $n: Int!) { instrument(symbol: $s) { symbol prices(first: $n) { close } } }', variables: { s: symbol, n: i + 1 } },
          await as(i % 2),
        ),
      ),
    );
    expect(runs.filter((r) => r.body.errors)).toEqual([]);
    const prepared = await database.db.execute(sql`select count(*)::int as n from pg_prepared_statements`);
    expect((prepared as unknown as { n: number }[])[0]!.n).toBe(0);
  });

  it('hears invalidations (LISTEN bypasses the pooler): a new close is answered at once', async () => {
    const quote = async () =>
      (await server.post({ query: 'query($s: String!) { instrument(symbol: $s) { latestPrice { date close } } }', variables: { s: symbol } })).body.data
        .instrument.latestPrice;
    expect(await quote()).toEqual({ date: '2024-01-31', close: '11' });
    await database.db.execute(sql`insert into prices (instrument_id, date, close) values (${instrumentId}, '2024-02-01', '12')`);
    // announced through the pooler, as writers do (NOTIFY needs no session)
    await notifyInvalidation(database.db, [`Instrument:${instrumentId}`]);
    expect(await until(quote, (p) => p.close === '12')).toEqual({ date: '2024-02-01', close: '12' });
  });

  it("reports the pool's idle connections without asking pg_stat_activity (its names are the pooler's)", async () => {
    const text = await (await fetch(server.url.replace('/graphql', '/metrics'))).text();
    const idle = Number(/^foliograph_db_pool_connections\{state="idle"\} (\S+)$/m.exec(text)?.[1]);
    expect(idle).toBeGreaterThanOrEqual(0);
    expect(idle).toBeLessThanOrEqual(8);
  });
});
