import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createDatabase } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { metricSum } from '../src/observability/prom-text.js';
import { onPostgres, type TestDatabase } from './helpers/db.js';
import { privatePostgresBin, startPrivatePostgres, type PrivatePostgres } from './helpers/private-pg.js';
import { hasRedisServer, startPrivateRedis, type PrivateRedis } from './helpers/redis.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// READ_REPLICA_URLS on a real streaming replica: a primary cluster of the test's own and a hot standby
// made from it with `pg_basebackup -R`, started on another port, and two instances sharing a Redis.
// Reads go to the standby once it has replayed what they must see (a writer's last commit, a position
// sent back with X-Consistent-After), to the primary until then, and to the primary when the standby
// lags past READ_REPLICA_MAX_LAG_MS or dies. The response cache is off: none of this depends on it.

describe.runIf(onPostgres && privatePostgresBin && hasRedisServer)('reads from a streaming replica', () => {
  let primary: PrivatePostgres;
  let standby: PrivatePostgres;
  let redis: PrivateRedis;
  let database: TestDatabase;
  /** Two instances sharing the primary, the standby and Redis. */
  let a: TestServer;
  let b: TestServer;
  /** One more, alone, that lets a replica lag at most a second. */
  let strict: TestServer;
  let symbol: string;
  let instrumentId: number;
  let alice: { id: number };
  let portfolioId: number;

  beforeAll(async () => {
    primary = await startPrivatePostgres();
    const opened = await createDatabase({ databaseUrl: primary.url, pgliteDataDir: 'memory://', dbPoolMax: 4 });
    database = { ...opened, url: primary.url, destroy: () => opened.close() };
    await migrate(database);
    const s = seed(database.db);
    const instrument = await s.instrument(['10', '11'], { last: '2024-01-31' });
    symbol = instrument.symbol;
    instrumentId = instrument.id;
    alice = await s.user();
    portfolioId = (await s.portfolio(alice)).id;
    standby = await startPrivatePostgres({ standbyOf: primary });
    redis = await startPrivateRedis(6394);
    const env = { READ_REPLICA_URLS: standby.url, REDIS_URL: redis.url, RESPONSE_CACHE: 'off', HOT_CACHE_TTL_MS: '0', READ_REPLICA_CHECK_MS: '100' };
    a = await startTestServer(database, env);
    b = await startTestServer(database, env);
    const { REDIS_URL: _shared, ...alone } = env;
    strict = await startTestServer(database, { ...alone, READ_REPLICA_MAX_LAG_MS: '1000' });
  }, 180_000);
  afterAll(async () => {
    for (const server of [a, b, strict]) await server?.stop();
    await database?.destroy();
    await redis?.stop();
    standby?.destroy();
    primary?.destroy();
  });

  const latest = async (server: TestServer) => {
    const res = await server.post({ query: 'query($s: String!) { instrument(symbol: $s) { latestPrice { date close } } }', variables: { s: symbol } });
    expect(res.body.errors).toBeUndefined();
    return res.body.data.instrument.latestPrice as { date: string; close: string };
  };
  const quantity = async (server: TestServer, headers: Record<string, string> = {}) => {
    const res = await server.post(
      { query: 'query($id: ID!) { portfolio(id: $id) { positions(first: 5) { nodes { quantity } } } }', variables: { id: String(portfolioId) } },
      { authorization: `Bearer ${await server.token(alice.id)}`, ...headers },
    );
    expect(res.body.errors).toBeUndefined();
    return res.body.data.portfolio.positions.nodes[0]?.quantity as string | undefined;
  };
  const buy = async (server: TestServer, qty: string) => {
    const res = await server.post(
      {
        query: 'mutation($input: RecordTradeInput!) { recordTrade(input: $input) { position { quantity } } }',
        variables: { input: { portfolioId: String(portfolioId), symbol, side: 'BUY', quantity: qty, price: '10' } },
      },
      { authorization: `Bearer ${await server.token(alice.id)}` },
    );
    expect(res.body.errors).toBeUndefined();
    return res;
  };
  /** Polls until `done` holds, at most 20 s. */
  const eventually = async <T>(probe: () => Promise<T>, done: (v: T) => boolean): Promise<T> => {
    let value = await probe();
    for (let i = 0; i < 100 && !done(value); i++) {
      await new Promise((r) => setTimeout(r, 200));
      value = await probe();
    }
    return value;
  };
  const metrics = async (server: TestServer) => (await fetch(server.url.replace('/graphql', '/metrics'))).text();
  const routed = async (server: TestServer, reason: string) => metricSum(await metrics(server), 'foliograph_db_read_routes_total', { reason });
  /** foliograph_db_replica_up of the standby, as `server` reports it ('1', '0'), once it is `want`. */
  const replicaUp = (server: TestServer, want: '0' | '1') =>
    eventually(
      async () => /^foliograph_db_replica_up\{replica="0"\} (\S+)$/m.exec(await metrics(server))?.[1],
      (up) => up === want,
    );
  const lag = async (server: TestServer) => Number(/^foliograph_db_replica_lag_seconds\{replica="0"\} (\S+)$/m.exec(await metrics(server))?.[1] ?? NaN);
  const addClose = (date: string, close: string) =>
    database.db.execute(sql`insert into prices (instrument_id, date, close) values (${instrumentId}, ${date}, ${close})`);

  it('reads from the standby while it keeps up, and an idle primary is no lag', async () => {
    expect(standby.psql('select pg_is_in_recovery()')).toBe('t');
    await eventually(
      () => lag(a),
      (l) => l === 0,
    );
    const before = await routed(a, 'replica');
    expect(await latest(a)).toEqual({ date: '2024-01-31', close: '11' });
    expect(await routed(a, 'replica')).toBe(before + 1);
    expect(await metrics(a)).toMatch(/^foliograph_db_replica_up\{replica="0"\} 1$/m);
    expect(await metrics(a)).toMatch(/^foliograph_db_replica_lag_bytes\{replica="0"\} \d+$/m);
  });

  it(
    "sends a writer's reads on every instance to the primary until the standby has replayed their commit, and everyone else's to the standby",
    { timeout: 60_000 },
    async () => {
      const before = await quantity(b);
      expect(before).toBeUndefined();
      await standby.replayPaused(async () => {
        const trade = await buy(a, '3');
        const lsn = trade.body.extensions?.consistency?.lsn as string;
        expect(lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
        expect(trade.headers.get('x-commit-lsn')).toBe(lsn);
        // the other instance learns alice's position through Redis: her read there sees her trade
        const causal = await routed(b, 'read_your_writes');
        expect(await quantity(b)).toBe('3');
        expect(await routed(b, 'read_your_writes')).toBe(causal + 1);
        // the standby, a little behind, still serves everyone who has not written
        const offloaded = await routed(b, 'replica');
        expect(await latest(b)).toEqual({ date: '2024-01-31', close: '11' });
        expect(await routed(b, 'replica')).toBe(offloaded + 1);
        // a client that sends the position back reads past it, whoever it is
        const sent = await routed(b, 'consistent_after');
        const anonymous = await b.post(
          { query: 'query($s: String!) { instrument(symbol: $s) { symbol } }', variables: { s: symbol } },
          { 'x-consistent-after': lsn },
        );
        expect(anonymous.body.data.instrument.symbol).toBe(symbol);
        expect(await routed(b, 'consistent_after')).toBe(sent + 1);
      });
      // once the standby has replayed the trade, alice's reads go back to it, on both instances (each
      // as soon as its own checks have seen the replay), and every answer on the way holds the trade
      for (const server of [a, b]) {
        const served = await routed(server, 'replica');
        const back = await eventually(
          async () => {
            expect(await quantity(server)).toBe('3');
            return routed(server, 'replica');
          },
          (n) => n > served,
        );
        expect(back).toBeGreaterThan(served);
      }
    },
  );

  it('refuses a malformed X-Consistent-After and runs nothing', async () => {
    const res = await a.post({ query: '{ __typename }' }, { 'x-consistent-after': '0/1; drop' });
    expect(res.status).toBe(400);
    expect(res.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
  });

  it('stops reading from it while its replay is paused past READ_REPLICA_MAX_LAG_MS, and goes back once it has caught up', { timeout: 60_000 }, async () => {
    await standby.replayPaused(async () => {
      await addClose('2024-02-01', '12');
      await eventually(
        () => lag(strict),
        (l) => l > 1,
      );
      const before = await routed(strict, 'no_healthy_replica');
      // the primary answers: the new close is there
      expect(await latest(strict)).toEqual({ date: '2024-02-01', close: '12' });
      expect(await routed(strict, 'no_healthy_replica')).toBe(before + 1);
    });
    await eventually(
      () => lag(strict),
      (l) => l === 0,
    );
    const before = await routed(strict, 'replica');
    expect(await latest(strict)).toEqual({ date: '2024-02-01', close: '12' });
    expect(await routed(strict, 'replica')).toBe(before + 1);
  });

  it('stops reading from a standby that stops answering (a partition) once its check fails, and goes back once it answers', { timeout: 60_000 }, async () => {
    standby.hang();
    try {
      // the checks' connection is open but silent: a check gives up after 3 s and counts it down
      await replicaUp(a, '0');
      const before = await routed(a, 'no_healthy_replica');
      expect(await latest(a)).toEqual({ date: '2024-02-01', close: '12' });
      expect(await routed(a, 'no_healthy_replica')).toBe(before + 1);
    } finally {
      standby.wake();
    }
    await replicaUp(a, '1');
    const served = await routed(a, 'replica');
    expect(await latest(a)).toEqual({ date: '2024-02-01', close: '12' });
    expect(await routed(a, 'replica')).toBe(served + 1);
  });

  it('answers from the primary without an error when the standby dies', async () => {
    const routedAway = async () =>
      (await routed(a, 'no_healthy_replica')) + metricSum(await metrics(a), 'foliograph_db_replica_failovers_total', { replica: '0' });
    const before = await routedAway();
    standby.kill();
    // the read either fails over (its replica fails it, the primary answers) or, when a check saw the
    // standby gone first, is routed to the primary: no error either way
    const during = await latest(a);
    expect(during).toEqual({ date: '2024-02-01', close: '12' });
    expect(await quantity(b)).toBe('3');
    expect(await routedAway()).toBeGreaterThan(before);
    expect(await metrics(a)).toMatch(/^foliograph_db_replica_up\{replica="0"\} 0$/m);
  });
});
