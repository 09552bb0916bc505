import { randomBytes } from 'node:crypto';
import { inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trades } from '../src/db/schema.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { hasRedisServer, startPrivateRedis, type PrivateRedis } from './helpers/redis.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

// Redis trouble never takes the API with it. Two instances share a database and a Redis of this
// file's own (port 6391), under read and write load, while that Redis is killed, started again,
// hung (SIGSTOP) and let go. Every answer must come before the deadline (no 504), every trade
// answered ok must be stored exactly once, readiness must show Redis's state, and once Redis is back
// neither instance, the writer's included, may show a dashboard without every acknowledged trade.

const DASHBOARD = `query OutageDashboard { viewer { portfolios(first: 5) { nodes { id positions(first: 10) { nodes { quantity instrument { symbol } } } } } } }`;
const TRADE = `mutation OutageTrade($input: RecordTradeInput!) { recordTrade(input: $input) { position { quantity } } }`;

interface Trader {
  id: number;
  portfolioId: string;
  token: string;
  /** Idempotency keys of the trades answered ok, and of those answered with an error. */
  acknowledged: string[];
  failed: string[];
}

describe.skipIf(!hasRedisServer)('Redis down, hung and back, under load on two instances', () => {
  let redis: PrivateRedis;
  let database: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  let symbol: string;
  const traders: Trader[] = [];
  /** Every GraphQL answer of the load: status and first error code. */
  const answers: { status: number; code?: string }[] = [];

  const post = (server: TestServer, trader: Trader, body: object) => server.post(body, { authorization: `Bearer ${trader.token}` });
  const record = (res: { status: number; body: any }) => {
    answers.push({ status: res.status, code: res.body?.errors?.[0]?.extensions?.code });
    return res;
  };

  /** Readers and writers on both instances until `stop` resolves. */
  async function load(stop: Promise<void>) {
    let running = true;
    void stop.then(() => (running = false));
    const reader = async (i: number) => {
      for (let n = i; running; n++) record(await post(n % 2 ? a : b, traders[n % traders.length], { query: DASHBOARD }));
    };
    const writer = async (trader: Trader, i: number) => {
      for (let n = i; running; n++) {
        const key = `outage-${randomBytes(6).toString('hex')}`;
        const res = record(
          await post(n % 2 ? a : b, trader, {
            query: TRADE,
            variables: { input: { portfolioId: trader.portfolioId, symbol, side: 'BUY', quantity: '1', price: '10', idempotencyKey: key } },
          }),
        );
        (res.status === 200 && !res.body.errors ? trader.acknowledged : trader.failed).push(key);
      }
    };
    await Promise.all([...[0, 1, 2, 3].map(reader), ...traders.map(writer)]);
  }
  /** Runs the load while `during` does its work, then for `ms` more. */
  async function underLoad(during: () => Promise<void>, ms = 300) {
    let stop!: () => void;
    const stopped = new Promise<void>((r) => (stop = r));
    const running = load(stopped);
    try {
      await during();
      await new Promise((r) => setTimeout(r, ms));
    } finally {
      stop();
      await running;
    }
  }
  const ready = async (server: TestServer) => {
    const res = await fetch(server.url.replace(/\/graphql$/, '/readyz'));
    return { status: res.status, body: (await res.json()) as { status: string; redis?: string } };
  };
  const redisUp = async (server: TestServer) => {
    const text = await (await fetch(server.url.replace(/\/graphql$/, '/metrics'))).text();
    return /^foliograph_redis_up (\S+)$/m.exec(text)?.[1];
  };
  /** Waits (bounded) until both instances report Redis `state` in /readyz, which stays 200 either way. */
  async function bothSee(state: 'up' | 'down') {
    for (const server of [a, b]) {
      const seen = await until(
        () => ready(server),
        (r) => r.body.redis === state,
      );
      expect(seen).toEqual({ status: 200, body: { status: 'ready', redis: state } });
      expect(await redisUp(server)).toBe(state === 'up' ? '1' : '0');
    }
  }
  /** Each trader's dashboard, on each instance twice (a miss, then whatever tier answers), shows every acknowledged trade. */
  async function everyTradeShows() {
    for (const trader of traders) {
      const expected = String(3 + trader.acknowledged.length);
      for (const server of [a, b, a, b]) {
        const res = await post(server, trader, { query: DASHBOARD });
        expect(res.status).toBe(200);
        const position = res.body.data.viewer.portfolios.nodes[0].positions.nodes.find((p: any) => p.instrument.symbol === symbol);
        expect(position.quantity, `user ${trader.id} on ${server === a ? 'A' : 'B'}`).toBe(expected);
      }
    }
  }

  beforeAll(async () => {
    redis = await startPrivateRedis(6391);
    database = await createTestDatabase();
    const s = seed(database.db);
    symbol = (await s.instrument(['10', '11'])).symbol;
    const env = { REDIS_URL: redis.url, REQUEST_TIMEOUT_MS: '3000' };
    a = await startTestServer(database, env);
    b = await startTestServer(database, env);
    for (let i = 0; i < 2; i++) {
      const user = await s.user();
      const portfolio = await s.portfolio(user);
      await s.trade(user.viewer, { portfolioId: portfolio.id, symbol, side: 'BUY', quantity: '3', price: '10' });
      traders.push({ id: user.id, portfolioId: String(portfolio.id), token: await a.token(user.id), acknowledged: [], failed: [] });
    }
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await database?.destroy();
    await redis?.stop();
  });

  it('serves every request in time while Redis is killed and restarted, and shows every trade once it is back', async () => {
    await bothSee('up');
    // cached everywhere: both instances' memory and Redis hold the traders' dashboards
    await underLoad(async () => {});
    await underLoad(async () => {
      await redis.kill();
      await bothSee('down');
      // longer than the deadline: a request waiting on Redis would be answered 504
      await new Promise((r) => setTimeout(r, 3500));
      await redis.restart();
      await bothSee('up');
    });
    await everyTradeShows();
  });

  it('serves every request in time while Redis hangs, and shows every trade once it answers again (it kept its old answers)', async () => {
    await underLoad(async () => {});
    await underLoad(async () => {
      redis.pause();
      await bothSee('down');
      // longer than the deadline: a request waiting on Redis would be answered 504
      await new Promise((r) => setTimeout(r, 3500));
      redis.resume();
      await bothSee('up');
    });
    await everyTradeShows();
  });

  it('answered every request of the load ok: no deadline, no error, and every acknowledged trade stored exactly once', async () => {
    expect(answers.length).toBeGreaterThan(0);
    const wrong = answers.filter((x) => x.status !== 200 || x.code);
    expect(wrong).toEqual([]);
    const acknowledged = traders.flatMap((t) => t.acknowledged);
    expect(traders.flatMap((t) => t.failed)).toEqual([]);
    expect(acknowledged.length).toBeGreaterThan(0);
    const stored = await database.db.select({ key: trades.idempotencyKey }).from(trades).where(inArray(trades.idempotencyKey, acknowledged));
    expect(stored.map((r) => r.key).sort()).toEqual([...acknowledged].sort());
  });
});
