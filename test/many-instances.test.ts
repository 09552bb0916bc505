import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { metricSum } from '../src/observability/prom-text.js';
import { onPostgres, type TestDatabase } from './helpers/db.js';
import { privatePostgresBin, startPrivatePostgres, type PrivatePostgres } from './helpers/private-pg.js';
import { hasRedisServer, startPrivateRedis, type PrivateRedis } from './helpers/redis.js';
import { seed } from './helpers/seed.js';
import { until } from './helpers/until.js';
import { startTestServer, TEST_SECRET, type TestServer } from './helpers/server.js';
import { formatReport, runLoad } from '../src/tools/load/run.js';
import { SCENARIOS } from '../src/tools/load/scenarios.js';
import { discoverTargets } from '../src/tools/load/targets.js';

// Three instances on one primary, one streaming standby and one Redis, each with its response cache
// and hot cache on, as they run in production: a caller's budget is one budget whichever instance
// they call, a write on one reaches the caches of all, and no instance shows a user an answer from
// before that user's write, from its caches or from a standby that has not replayed it.

describe.runIf(onPostgres && privatePostgresBin && hasRedisServer)('three instances on one primary, one standby and one Redis', () => {
  let primary: PrivatePostgres;
  let standby: PrivatePostgres;
  let redis: PrivateRedis;
  let database: TestDatabase;
  let servers: TestServer[];
  let symbol: string;
  let alice: { id: number };
  let bob: { id: number };
  let carol: { id: number };
  let portfolioId: number;
  let bobPortfolioId: number;

  beforeAll(async () => {
    primary = await startPrivatePostgres();
    const opened = await createDatabase({ databaseUrl: primary.url, pgliteDataDir: 'memory://', dbPoolMax: 4 });
    database = { ...opened, url: primary.url, destroy: () => opened.close() };
    await migrate(database);
    const s = seed(database.db);
    symbol = (await s.instrument(['10', '11'], { last: '2024-01-31' })).symbol;
    [alice, bob, carol] = [await s.user(), await s.user(), await s.user()];
    portfolioId = (await s.portfolio(alice)).id;
    bobPortfolioId = (await s.portfolio(bob)).id;
    standby = await startPrivatePostgres({ standbyOf: primary });
    redis = await startPrivateRedis(6395);
    const env = { READ_REPLICA_URLS: standby.url, REDIS_URL: redis.url, READ_REPLICA_CHECK_MS: '100', RATE_LIMIT_COST_PER_MINUTE: '100000000' };
    servers = [];
    for (let i = 0; i < 3; i++) servers.push(await startTestServer(database, env));
  }, 180_000);
  afterAll(async () => {
    for (const server of servers ?? []) await server.stop();
    await database?.destroy();
    await redis?.stop();
    standby?.destroy();
    primary?.destroy();
  });

  const as = async (server: TestServer, user: { id: number }) => ({ authorization: `Bearer ${await server.token(user.id)}` });
  const POSITIONS = 'query($id: ID!) { portfolio(id: $id) { positions(first: 5) { nodes { quantity } } } }';
  const quantity = async (server: TestServer, user = alice, id = portfolioId) => {
    const res = await server.post({ query: POSITIONS, variables: { id: String(id) } }, await as(server, user));
    expect(res.body.errors).toBeUndefined();
    return (res.body.data.portfolio.positions.nodes[0]?.quantity as string | undefined) ?? '0';
  };
  const buy = async (server: TestServer, qty: string, user = alice, id = portfolioId) => {
    const res = await server.post(
      {
        query: 'mutation($input: RecordTradeInput!) { recordTrade(input: $input) { position { quantity } } }',
        variables: { input: { portfolioId: String(id), symbol, side: 'BUY', quantity: qty, price: '10' } },
      },
      await as(server, user),
    );
    expect(res.body.errors).toBeUndefined();
    return res.body.data.recordTrade.position.quantity as string;
  };
  const metrics = async (server: TestServer) => (await fetch(server.url.replace('/graphql', '/metrics'))).text();

  it('charges one budget per caller, whichever instance they call', async () => {
    const remaining: number[] = [];
    for (const [i, server] of servers.entries()) {
      // the same cost each time, a different symbol: no answer comes from a cache
      const res = await server.post(
        { query: 'query($s: String!) { instrument(symbol: $s) { symbol } }', variables: { s: `NONE${i}` } },
        await as(server, carol),
      );
      expect(res.body.errors).toBeUndefined();
      remaining.push(res.body.extensions.cost.budget.remaining as number);
    }
    // one budget: each instance sees what the others spent (budgets of their own would each say the same)
    expect(remaining[1]).toBeLessThan(remaining[0]!);
    expect(remaining[2]).toBeLessThan(remaining[1]!);
  });

  it(
    'shows a user their write on every instance at once, from caches filled before it, while the standby has not replayed it',
    { timeout: 60_000 },
    async () => {
      // every instance caches alice's positions (and bob's), read from the standby
      for (const server of servers) expect(await quantity(server)).toBe('0');
      for (const server of servers) expect(await quantity(server, bob, bobPortfolioId)).toBe('0');
      await standby.replayPaused(async () => {
        expect(await buy(servers[0]!, '2')).toBe('2');
        for (const server of servers) expect(await quantity(server)).toBe('2');
        // bob wrote nothing: his cached answer stands, and his misses may read the lagging standby
        for (const server of servers) expect(await quantity(server, bob, bobPortfolioId)).toBe('0');
      });
      const routed = await Promise.all(
        servers.map(async (s) => metricSum(await metrics(s), 'foliograph_db_read_routes_total', { reason: 'read_your_writes' })),
      );
      // the instances that did not take the trade read alice's answers from the primary
      expect(routed[1]).toBeGreaterThanOrEqual(1);
      expect(routed[2]).toBeGreaterThanOrEqual(1);
    },
  );

  it('never shows a user an answer from before their write, whichever instances take the write and the reads', { timeout: 60_000 }, async () => {
    let held = Number(await quantity(servers[0]!));
    for (let round = 0; round < 9; round++) {
      const writer = servers[round % 3]!;
      held += 1;
      expect(await buy(writer, '1')).toBe(String(held));
      // at once, on all three, concurrently: each answer holds the trade
      const seen = await Promise.all(servers.map((server) => quantity(server)));
      expect(seen).toEqual([String(held), String(held), String(held)]);
    }
    // and the standby took its share of the reads meanwhile
    const replica = await Promise.all(servers.map(async (s) => metricSum(await metrics(s), 'foliograph_db_read_routes_total', { reason: 'replica' })));
    expect(replica.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it(
    'keeps every acknowledged trade, once, and in every later answer on every instance, while Redis is killed and restarted under load',
    { timeout: 60_000 },
    async () => {
      const held = Number(await quantity(servers[0]!));
      const acknowledged: string[] = [];
      let sent = 0;
      let stop = false;
      const trader = async () => {
        while (!stop) {
          const key = `outage-${++sent}`;
          const res = await servers[sent % 3]!.post(
            {
              query: 'mutation($input: RecordTradeInput!) { recordTrade(input: $input) { position { quantity } } }',
              variables: { input: { portfolioId: String(portfolioId), symbol, side: 'BUY', quantity: '1', price: '10', idempotencyKey: key } },
            },
            await as(servers[0]!, alice),
          );
          if (res.status === 200 && !res.body.errors) acknowledged.push(key);
        }
      };
      // every read sent after a trade was acknowledged holds it, whichever instance answers and from where
      const stale: string[] = [];
      let reads = 0;
      const reader = async (server: TestServer) => {
        while (!stop) {
          const floor = held + acknowledged.length;
          const res = await server.post({ query: POSITIONS, variables: { id: String(portfolioId) } }, await as(server, alice));
          if (res.status !== 200 || res.body.errors) continue;
          reads++;
          const seen = Number(res.body.data.portfolio.positions.nodes[0]?.quantity ?? 0);
          if (seen < floor) stale.push(`${seen} < ${floor}`);
        }
      };
      const running = [trader(), trader(), ...servers.map(reader)];
      await new Promise((r) => setTimeout(r, 500));
      await redis.kill();
      await new Promise((r) => setTimeout(r, 1000));
      await redis.restart();
      for (const server of servers) {
        expect(
          await until(
            async () => /^foliograph_redis_up 1$/m.test(await metrics(server)),
            (up) => up,
          ),
        ).toBe(true);
      }
      await new Promise((r) => setTimeout(r, 500));
      stop = true;
      await Promise.all(running);
      expect(acknowledged.length).toBeGreaterThan(0);
      expect(reads).toBeGreaterThan(0);
      expect(stale).toEqual([]);
      // the ledger: each acknowledged trade applied once, and the position adds up what was applied
      const applied = (await database.db.execute(
        sql`select idempotency_key as key from trades where portfolio_id = ${portfolioId} and idempotency_key like 'outage-%'`,
      )) as unknown as { key: string }[];
      const keys = applied.map((r) => r.key);
      expect(new Set(keys).size).toBe(keys.length);
      for (const key of acknowledged) expect(keys).toContain(key);
      for (const server of servers) expect(Number(await quantity(server))).toBe(held + keys.length);
    },
  );

  it(
    'runs the replicas load scenario: trades and dashboards answered, reads split between the standby and, for traders, the primary',
    { timeout: 60_000 },
    async () => {
      const targets = await discoverTargets(servers[1]!.url, { jwtSecret: TEST_SECRET, users: 5, withPortfolios: true });
      const report = await runLoad({ url: servers[1]!.url, scenario: SCENARIOS.replicas, seconds: 2, peak: 4, targets });
      const [stage] = report.stages;
      expect(stage!.codes).toEqual({});
      expect(stage!.succeeded.trade).toBeGreaterThan(0);
      expect(stage!.succeeded.dashboard).toBeGreaterThan(0);
      expect(stage!.server!.reads['primary:mutation']).toBeGreaterThan(0);
      expect(formatReport(report)).toMatch(/reads in "steady" by where they went: .*primary \(mutation\)/);
    },
  );
});
