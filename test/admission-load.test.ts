import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { count, eq } from 'drizzle-orm';
import { trades } from '../src/db/schema.js';
import { metricSum } from '../src/observability/prom-text.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, TEST_SECRET, type TestServer } from './helpers/server.js';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createMemoryBudget, type CostBudget } from '../src/limits/budget.js';
import { createLogger } from '../src/observability/logger.js';
import { overload } from './helpers/overload.js';
import { until } from './helpers/until.js';

// Shedding by priority through the real server over a real database whose connections the test
// holds: anonymous ad-hoc queries are refused first, while signed-in users, trades, cached answers and
// probes keep flowing; what is refused runs no SQL and changes nothing.

const QUOTE = `query Quote($s: String!) { instrument(symbol: $s) { symbol latestPrice { close } } }`;
const LIST = `{ instruments(first: 3) { nodes { symbol } } }`;
const MINE = `{ viewer { portfolios(first: 5) { nodes { name } } } }`;
const TRADE = `mutation T($input: RecordTradeInput!) { recordTrade(input: $input) { position { quantity } } }`;

describe('admission by priority', () => {
  let database: TestDatabase;
  let server: TestServer;
  let symbol: string;
  let alice: { id: number; portfolio: number };
  let key = 0;

  beforeAll(async () => {
    database = await createTestDatabase({ poolMax: 2 });
    const s = seed(database.db);
    symbol = (await s.instrument(['10', '12'])).symbol;
    const user = await s.user();
    alice = { id: user.id, portfolio: (await s.portfolio(user)).id };
    // a patient line (ADMISSION_TARGET_WAIT_MS): the requests the tests hold in it are not dropped however slow the machine
    server = await startTestServer(database, {
      DB_QUEUE_MAX: '3',
      ADMISSION_TARGET_WAIT_MS: '5000',
      HOT_CACHE_TTL_MS: '0',
      RATE_LIMIT_COST_PER_MINUTE: '1000000',
    });
  });
  afterAll(async () => {
    await server.stop();
    await database.destroy();
  });

  const metrics = async () => (await fetch(server.url.replace('/graphql', '/metrics'))).text();
  const as = async (userId: number) => ({ authorization: `Bearer ${await server.token(userId)}` });
  const trade = async (quantity: string) =>
    server.post(
      { query: TRADE, variables: { input: { portfolioId: String(alice.portfolio), symbol, side: 'BUY', quantity, price: '10', idempotencyKey: `k${++key}` } } },
      await as(alice.id),
    );
  const tradeCount = async () => Number((await database.db.select({ n: count() }).from(trades).where(eq(trades.portfolioId, alice.portfolio)))[0].n);

  it('sheds anonymous ad-hoc queries first while signed-in users, trades, cached answers and probes keep flowing', async () => {
    // a quote answered once, so that it is cached; and the metrics' own first read done
    expect((await server.post({ query: QUOTE, variables: { s: symbol } })).status).toBe(200);
    await metrics();
    const before = await metrics();
    const trades0 = await tradeCount();
    // every connection held and three anonymous statements in line: DB_QUEUE_MAX ahead of any anonymous newcomer
    const release = overload(database.pool, 3, 'anonymous');
    try {
      const shed = await server.countSql(() => server.post({ query: LIST }));
      expect(shed.result.status).toBe(503);
      expect(shed.result.headers.get('retry-after')).toBe('1');
      expect(shed.result.body.errors[0].extensions).toMatchObject({ code: 'OVERLOADED', reason: 'db_queue', priority: 'anonymous' });
      expect(shed.statements).toBe(0);
      // the cached answer and the probe need no connection
      const cached = await server.post({ query: QUOTE, variables: { s: symbol } });
      expect(cached.status).toBe(200);
      expect(cached.body.extensions.responseCache).toMatchObject({ hit: true });
      expect((await fetch(server.url.replace('/graphql', '/healthz'))).status).toBe(200);
      // a signed-in user's query and a trade are admitted, and wait in line ahead of the anonymous statements
      const mine = server.post({ query: MINE }, await as(alice.id));
      const bought = trade('2');
      await until(
        async () => database.pool.waitingAhead('user'),
        (n) => n === 2,
      );
      expect(database.pool.waiting).toBe(5);
      await release();
      const [mineAnswer, boughtAnswer] = await Promise.all([mine, bought]);
      expect(mineAnswer.status).toBe(200);
      expect(mineAnswer.body.errors).toBeUndefined();
      expect(boughtAnswer.status).toBe(200);
      expect(boughtAnswer.body.data.recordTrade.position.quantity).toBe('2');
      expect(await tradeCount()).toBe(trades0 + 1);
    } finally {
      await release();
    }
    const after = await metrics();
    const shedBy = (text: string, priority: string) => metricSum(text, 'foliograph_shed_requests_total', { priority });
    expect(shedBy(after, 'anonymous') - shedBy(before, 'anonymous')).toBe(1);
    expect(metricSum(after, 'foliograph_shed_requests_total', { reason: 'db_queue', priority: 'anonymous' })).toBeGreaterThanOrEqual(1);
    for (const priority of ['write', 'user', 'partner']) expect(shedBy(after, priority)).toBe(0);
  });

  it('releases the cost in flight of every request, those refused while their budget was being charged included', async () => {
    // a budget that answers a moment later, as Redis does: meanwhile another plugin refuses the
    // request (a NUL in a variable) and Apollo answers it
    const memory = createMemoryBudget({ costPerMinute: 1_000_000 });
    const slow: CostBudget = {
      spend: async (caller, cost) => {
        await new Promise((r) => setTimeout(r, 20));
        return memory.spend(caller, cost);
      },
      close: () => memory.close(),
    };
    const config = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', RESPONSE_CACHE: 'off' });
    const app = createApp({ config, database, logger: createLogger('silent'), budget: slow });
    const url = await app.listen(0, '127.0.0.1');
    try {
      const post = (body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const refused = await post({ query: QUOTE, variables: { s: 'A\u0000' } });
      expect(((await refused.json()) as { errors: { extensions: { code: string } }[] }).errors[0].extensions.code).toBe('BAD_USER_INPUT');
      expect((await post({ query: LIST })).status).toBe(200);
      await new Promise((r) => setTimeout(r, 50));
      expect(metricSum(await app.metrics.registry.metrics(), 'foliograph_admission_cost_in_flight')).toBe(0);
    } finally {
      await app.stop();
    }
  });

  it('sheds a trade only when writes fill the line, and then the trade changes nothing', async () => {
    const trades0 = await tradeCount();
    const release = overload(database.pool, 3, 'write');
    try {
      const refused = await trade('7');
      expect(refused.status).toBe(503);
      expect(refused.body.errors[0].extensions).toMatchObject({ code: 'OVERLOADED', reason: 'db_queue', priority: 'write' });
      expect(refused.body.data ?? null).toBeNull();
    } finally {
      await release();
    }
    expect(await tradeCount()).toBe(trades0);
    // and once the line is gone, the same trade goes through
    expect((await trade('7')).body.data.recordTrade.position.quantity).toBe('9');
  });

  it('caps the estimated cost in flight: an anonymous query is shed while others run, a signed-in user gets a larger share', async () => {
    const probe = await server.post({ query: LIST });
    const cost = probe.body.extensions.cost.estimated as number;
    expect(cost).toBeGreaterThan(0);
    // with three of these as the cap, a user may start one beside a running one (2 ≤ 3 × 3/4), an anonymous caller may not (2 > 3 × 1/2)
    const capped = await startTestServer(database, {
      ADMISSION_MAX_COST_IN_FLIGHT: String(3 * cost),
      ADMISSION_TARGET_WAIT_MS: '5000',
      RESPONSE_CACHE: 'off',
      HOT_CACHE_TTL_MS: '0',
      RATE_LIMIT_COST_PER_MINUTE: '1000000',
    });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const holders = Array.from({ length: database.pool.permits }, () => database.pool.run(() => held));
    try {
      // the first runs alone (admitted, then waiting for a connection with its cost in flight)
      const first = capped.post({ query: LIST });
      await until(
        async () => database.pool.waiting,
        (n) => n === 1,
      );
      const second = await capped.countSql(() => capped.post({ query: LIST }));
      expect(second.result.status).toBe(503);
      expect(second.result.body.errors[0].extensions).toMatchObject({ code: 'OVERLOADED', reason: 'cost_in_flight', priority: 'anonymous' });
      expect(second.statements).toBe(0);
      const text = await (await fetch(capped.url.replace('/graphql', '/metrics'))).text();
      expect(metricSum(text, 'foliograph_admission_cost_in_flight')).toBe(cost);
      // a signed-in user's share is larger: the same query is admitted
      const user = capped.post({ query: LIST }, await as(alice.id));
      await until(
        async () => database.pool.waiting,
        (n) => n === 2,
      );
      release();
      expect((await first).status).toBe(200);
      expect((await user).status).toBe(200);
    } finally {
      release();
      await Promise.all(holders);
      await capped.stop();
    }
  });
});
