import { randomBytes, randomInt } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../src/db/client.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/observability/logger.js';
import { cacheNamespace } from '../src/cache/namespace.js';
import { createRedisLink, type RedisLink } from '../src/cache/redis-link.js';
import { createApp } from '../src/app.js';
import { addressCaller } from '../src/admission/caller.js';
import { createMemoryBudget, createRedisBudget, secondsUntilFits, usedInWindow, type BudgetOptions, type CostBudget } from '../src/limits/budget.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { seededRandom } from '../src/tools/random.js';

// Each caller's cost budget over a rolling minute: the arithmetic, the in-process budget and the Redis
// one under a fake clock (so nothing here depends on when it runs), and two servers sharing a budget
// through Redis over HTTP. The Redis parts run when REDIS_URL is set and are skipped otherwise.

const REDIS_URL = process.env.REDIS_URL;
const logger = createLogger('silent');

const MINUTE = 60_000;
/** A minute boundary (2023-11-14T22:14:00Z): fake clocks are set relative to it. */
const T0 = 28_333_334 * MINUTE;

// Every caller of this run shares a random prefix, so runs (and the two drivers' runs at once) never
// meet in Redis, and afterAll can remove exactly this run's keys.
const RUN = randomBytes(6).toString('hex');
let callers = 0;
const newCaller = () => `budget-test-${RUN}-${++callers}`;

/** A clock the test moves; `at(ms)` sets it to T0 + ms. */
function fakeClock(ms = 0) {
  let t = T0 + ms;
  return {
    now: () => t,
    at(offset: number) {
      t = T0 + offset;
    },
  };
}

const rng = seededRandom;

describe('rolling-minute arithmetic', () => {
  it('usedInWindow counts the previous minute in proportion to what is left of it, and all of this one', () => {
    expect(usedInWindow(100, 0, 0)).toBe(100);
    expect(usedInWindow(100, 0, 1)).toBe(0);
    expect(usedInWindow(100, 20, 0.5)).toBe(70);
    expect(usedInWindow(80, 10, 0.25)).toBe(70);
    expect(usedInWindow(0, 30, 0.75)).toBe(30);
    expect(usedInWindow(0, 0, 0.5)).toBe(0);
  });

  it('secondsUntilFits waits inside this minute while the previous one slides out', () => {
    // 100 from the previous minute, half-way through this one: 60 fits once only 40 counts, at 60%
    expect(secondsUntilFits(100, 0, 0.5, 60, 100)).toBe(6);
    // 100 + 20 now at 50%: 40 more fits once the previous share is 40, at 60%
    expect(secondsUntilFits(100, 20, 0.5, 40, 100)).toBe(6);
    // 50 + 50 at the start: 50 more fits only when all of the previous minute is gone, 60 s later
    expect(secondsUntilFits(50, 50, 0, 50, 100)).toBe(60);
  });

  it('secondsUntilFits waits into the next minute while this one fades', () => {
    // 100 spent now, half-way: the minute ends in 30 s, then 10 fits once 90 of it counts (6 s more)
    expect(secondsUntilFits(0, 100, 0.5, 10, 100)).toBe(36);
    // 100 spent now, at the start: a full 100 fits only once all of it is gone, two minutes on
    expect(secondsUntilFits(0, 100, 0, 100, 100)).toBe(120);
    // 60 now, half-way, 50 more: the 60 must fade to 50 (a sixth of the next minute)
    expect(secondsUntilFits(0, 60, 0.5, 50, 100)).toBe(40);
  });

  it('secondsUntilFits answers whole seconds between 1 and 120', () => {
    // a fraction of a second rounds up to one
    expect(secondsUntilFits(100, 0, 0.99, 100, 100)).toBe(1);
    expect(secondsUntilFits(100, 0, 0.999, 1, 100)).toBe(1);
    // a cost over the whole limit never fits: the longest answer, not an absurd one
    expect(secondsUntilFits(0, 100, 0, 200, 100)).toBe(120);
    expect(secondsUntilFits(0, 0, 0, 1_000_000, 100)).toBeLessThanOrEqual(120);
    for (const args of [
      [10, 90, 0.1, 5, 100],
      [90, 10, 0.9, 50, 100],
      [0, 7, 0.33, 1, 7],
      [1000, 1, 0.001, 999, 1000],
    ] as [number, number, number, number, number][]) {
      const seconds = secondsUntilFits(...args);
      expect(Number.isInteger(seconds), String(args)).toBe(true);
      expect(seconds, String(args)).toBeGreaterThanOrEqual(1);
      expect(seconds, String(args)).toBeLessThanOrEqual(120);
    }
  });
});

/** The behaviour every budget shares, whatever keeps its counts. */
function behavesAsABudget(make: (options: BudgetOptions) => CostBudget, scenarios: number) {
  it('allows spending up to the limit, counting `remaining` down exactly, then refuses with a retry-after', async () => {
    const clock = fakeClock(10_000);
    const budget = make({ costPerMinute: 100, now: clock.now });
    const who = newCaller();
    expect(await budget.spend(who, 30)).toEqual({ allowed: true, remaining: 70, limit: 100, retryAfterSeconds: 0 });
    expect(await budget.spend(who, 30)).toEqual({ allowed: true, remaining: 40, limit: 100, retryAfterSeconds: 0 });
    expect(await budget.spend(who, 1)).toEqual({ allowed: true, remaining: 39, limit: 100, retryAfterSeconds: 0 });
    expect(await budget.spend(who, 39)).toEqual({ allowed: true, remaining: 0, limit: 100, retryAfterSeconds: 0 });

    const refused = await budget.spend(who, 1);
    expect(refused).toMatchObject({ allowed: false, remaining: 0, limit: 100 });
    expect(Number.isInteger(refused.retryAfterSeconds)).toBe(true);
    expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    // 50 s to the end of this minute, then 0.6 s until 99 of the 100 still count
    expect(refused.retryAfterSeconds).toBe(51);
  });

  it('lets a refused spend consume nothing', async () => {
    const clock = fakeClock(5_000);
    const budget = make({ costPerMinute: 100, now: clock.now });
    const who = newCaller();
    expect(await budget.spend(who, 60)).toMatchObject({ allowed: true, remaining: 40 });
    for (let i = 0; i < 10; i++) expect(await budget.spend(who, 50)).toMatchObject({ allowed: false, remaining: 0 });
    expect(await budget.spend(who, 40)).toEqual({ allowed: true, remaining: 0, limit: 100, retryAfterSeconds: 0 });
    expect((await budget.spend(who, 1)).allowed).toBe(false);
  });

  it("fades the previous minute's spending linearly as the clock moves through the next", async () => {
    const clock = fakeClock();
    const budget = make({ costPerMinute: 100, now: clock.now });
    // seconds into the next minute → how much of a full previous minute still counts
    for (const [seconds, counted] of [
      [6, 90],
      [15, 75],
      [30, 50],
      [54, 10],
    ]) {
      const who = newCaller();
      clock.at(30_000);
      expect(await budget.spend(who, 100)).toMatchObject({ allowed: true, remaining: 0 });
      clock.at(MINUTE + seconds * 1000);
      const room = 100 - counted;
      expect((await budget.spend(who, room + 1)).allowed, `${seconds} s: ${room + 1}`).toBe(false);
      expect(await budget.spend(who, room), `${seconds} s: ${room}`).toEqual({ allowed: true, remaining: 0, limit: 100, retryAfterSeconds: 0 });
    }

    // what this minute spends counts whole, while the previous minute's share goes on fading
    const who = newCaller();
    clock.at(10_000);
    await budget.spend(who, 100);
    clock.at(MINUTE + 30_000); // 50 of the previous minute count
    expect(await budget.spend(who, 50)).toMatchObject({ allowed: true, remaining: 0 });
    clock.at(MINUTE + 45_000); // 25 of the previous minute and the 50 of this one
    expect(await budget.spend(who, 26)).toMatchObject({ allowed: false });
    expect(await budget.spend(who, 25)).toMatchObject({ allowed: true, remaining: 0 });
    expect(await budget.spend(who, 1)).toMatchObject({ allowed: false });
  });

  it('forgets everything after two minutes', async () => {
    const clock = fakeClock(59_999);
    const budget = make({ costPerMinute: 100, now: clock.now });
    const who = newCaller();
    expect(await budget.spend(who, 100)).toMatchObject({ allowed: true, remaining: 0 });
    clock.at(2 * MINUTE - 1); // the end of the next minute: a sliver of the 100 still counts
    expect((await budget.spend(who, 100)).allowed).toBe(false);
    clock.at(2 * MINUTE);
    expect(await budget.spend(who, 100)).toEqual({ allowed: true, remaining: 0, limit: 100, retryAfterSeconds: 0 });
    clock.at(10 * MINUTE);
    expect(await budget.spend(who, 100)).toEqual({ allowed: true, remaining: 0, limit: 100, retryAfterSeconds: 0 });
  });

  it('keeps callers independent', async () => {
    const clock = fakeClock(20_000);
    const budget = make({ costPerMinute: 100, now: clock.now });
    const [a, b] = [newCaller(), newCaller()];
    expect(await budget.spend(a, 100)).toMatchObject({ allowed: true, remaining: 0 });
    expect((await budget.spend(a, 1)).allowed).toBe(false);
    expect(await budget.spend(b, 1)).toMatchObject({ allowed: true, remaining: 99 });
    expect(await budget.spend(b, 99)).toMatchObject({ allowed: true, remaining: 0 });
    expect((await budget.spend(b, 1)).allowed).toBe(false);
  });

  it('never lets concurrent spends past the limit', async () => {
    const clock = fakeClock(30_000);
    const budget = make({ costPerMinute: 200, now: clock.now });
    const who = newCaller();
    const decisions = await Promise.all(Array.from({ length: 50 }, () => budget.spend(who, 10)));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(20);
    expect(decisions.filter((d) => !d.allowed).every((d) => d.remaining === 0 && d.retryAfterSeconds >= 1)).toBe(true);
    expect((await budget.spend(who, 1)).allowed).toBe(false);
  });

  it('gives an honest retry-after in exact cases: that many seconds later the same cost fits, a second earlier it does not', async () => {
    const clock = fakeClock();
    const budget = make({ costPerMinute: 100, now: clock.now });
    // spends before, when the cost is refused, the cost, the exact retry-after
    const cases: { spends: [number, number][]; at: number; cost: number; retry: number }[] = [
      // all of it this minute, half-way: 30 s to the minute's end, then 6 s until only 90 count
      { spends: [[30_000, 100]], at: 30_000, cost: 10, retry: 36 },
      // all of it in the previous minute, a quarter into this one: 50 fits at half-way
      { spends: [[10_000, 100]], at: MINUTE + 15_000, cost: 50, retry: 15 },
      // 100 before, 20 now at half-way: 40 more fits when 40 of the previous count, at 60%
      {
        spends: [
          [10_000, 100],
          [MINUTE + 30_000, 20],
        ],
        at: MINUTE + 30_000,
        cost: 40,
        retry: 6,
      },
      // 60 before, 70 now at half-way: 30 more fits only when the previous minute has gone
      {
        spends: [
          [0, 60],
          [MINUTE + 30_000, 70],
        ],
        at: MINUTE + 30_000,
        cost: 30,
        retry: 30,
      },
      // 90 now, half-way: 20 more fits when the 90 has faded to 80 (a ninth into the next minute)
      { spends: [[MINUTE + 30_000, 90]], at: MINUTE + 30_000, cost: 20, retry: 37 },
    ];
    for (const { spends, at, cost, retry } of cases) {
      const who = newCaller();
      const label = JSON.stringify({ spends, at, cost });
      for (const [t, c] of spends) {
        clock.at(t);
        expect((await budget.spend(who, c)).allowed, label).toBe(true);
      }
      clock.at(at);
      const refused = await budget.spend(who, cost);
      expect(refused, label).toMatchObject({ allowed: false, remaining: 0, retryAfterSeconds: retry });
      clock.at(at + (retry - 1) * 1000);
      expect((await budget.spend(who, cost)).allowed, `${label} a second early`).toBe(false);
      clock.at(at + retry * 1000);
      expect((await budget.spend(who, cost)).allowed, `${label} on time`).toBe(true);
    }
  });

  it(`gives an honest retry-after in ${scenarios} seeded random histories, and no more than a second too long`, async () => {
    const random = rng(0xb0d6e7);
    const int = (n: number) => Math.floor(random() * n);
    const clock = fakeClock();
    const budgets = new Map<number, CostBudget>();
    let refusals = 0;
    for (let n = 0; n < scenarios; n++) {
      const limit = [20, 37, 100, 250, 999][int(5)];
      if (!budgets.has(limit)) budgets.set(limit, make({ costPerMinute: limit, now: clock.now }));
      const budget = budgets.get(limit)!;
      // the same history for two callers: one retries on time, the other finds the first second that fits
      const [onTime, scan] = [newCaller(), newCaller()];
      const spends: [number, number][] = [];
      for (let k = int(6); k > 0; k--) spends.push([int(MINUTE), 1 + int(limit)]);
      for (let k = int(6); k > 0; k--) spends.push([MINUTE + int(MINUTE / 2), 1 + int(limit)]);
      spends.sort((x, y) => x[0] - y[0]);
      const at = MINUTE + MINUTE / 2 + int(MINUTE / 2);
      const cost = 1 + int(limit);
      const label = JSON.stringify({ n, limit, spends, at, cost });
      for (const [t, c] of spends) {
        clock.at(t);
        const [x, y] = [await budget.spend(onTime, c), await budget.spend(scan, c)];
        expect(x, label).toEqual(y);
      }
      clock.at(at);
      const first = await budget.spend(onTime, cost);
      expect(await budget.spend(scan, cost), label).toEqual(first);
      if (first.allowed) continue;
      refusals++;
      const retry = first.retryAfterSeconds;
      expect(Number.isInteger(retry) && retry >= 1 && retry <= 120, `${label}: ${retry}`).toBe(true);
      clock.at(at + retry * 1000);
      expect((await budget.spend(onTime, cost)).allowed, `${label}: retry after ${retry}`).toBe(true);
      let fits = 1;
      for (; fits < retry; fits++) {
        clock.at(at + fits * 1000);
        if ((await budget.spend(scan, cost)).allowed) break;
      }
      // it fits no earlier than a second before the answer (whole seconds round up)
      expect(fits, `${label}: retry after ${retry}, fits after ${fits}`).toBeGreaterThanOrEqual(retry - 1);
    }
    expect(refusals).toBeGreaterThan(scenarios / 4);
  });
}

describe('createMemoryBudget', () => {
  behavesAsABudget((options) => createMemoryBudget(options), 400);
});

describe('createRedisBudget without a Redis server', () => {
  it('allows the operation rather than taking the API down', async () => {
    const link = createRedisLink({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 100, logger });
    try {
      const decision = await createRedisBudget(link, { costPerMinute: 10, now: () => T0, namespace: 'none' }).spend(newCaller(), 1_000);
      expect(decision).toEqual({ allowed: true, remaining: 10, limit: 10, retryAfterSeconds: 0 });
    } finally {
      await link.close();
    }
  });
});

describe.skipIf(!REDIS_URL)('createRedisBudget', () => {
  let inspect: Redis;
  let link: RedisLink;
  // this run's own namespace: as a database's identity keeps deployments apart in one Redis
  const NS = `budget-test-${RUN}`;
  const make = (options: BudgetOptions, namespace = NS) => createRedisBudget(link, { ...options, namespace });

  beforeAll(async () => {
    inspect = new Redis(REDIS_URL!);
    link = createRedisLink({ url: REDIS_URL!, commandTimeoutMs: 1000, logger });
    expect(await link.whenUp(5000)).toBe(true);
  });
  afterAll(async () => {
    await link?.close();
    if (!inspect) return;
    const keys = await inspect.keys(`foliograph:${NS}*:budget:*`);
    if (keys.length) await inspect.del(...keys);
    await inspect.quit();
  });

  behavesAsABudget(make, 200);

  it('keeps its counts in Redis under foliograph:<namespace>:budget:<caller>:<minute>', async () => {
    const budget = make({ costPerMinute: 100, now: () => T0 + 5_000 });
    const who = newCaller();
    await budget.spend(who, 7);
    await budget.spend(who, 8);
    await budget.spend(who, 1000); // refused: not counted
    expect(await inspect.get(`foliograph:${NS}:budget:${who}:${T0 / MINUTE}`)).toBe('15');
    const ttl = await inspect.pttl(`foliograph:${NS}:budget:${who}:${T0 / MINUTE}`);
    expect(ttl).toBeGreaterThan(0);
  });

  it('gives the same caller of two databases (two namespaces) a budget each', async () => {
    const clock = fakeClock(3_000);
    const staging = make({ costPerMinute: 100, now: clock.now }, `${NS}-staging`);
    const production = make({ costPerMinute: 100, now: clock.now }, `${NS}-production`);
    const who = newCaller();
    expect(await staging.spend(who, 100)).toMatchObject({ allowed: true, remaining: 0 });
    expect((await staging.spend(who, 1)).allowed).toBe(false);
    expect(await production.spend(who, 60)).toMatchObject({ allowed: true, remaining: 40 });
  });

  it('shares one caller’s budget between two instances', async () => {
    const clock = fakeClock(12_000);
    const a = make({ costPerMinute: 100, now: clock.now });
    const b = make({ costPerMinute: 100, now: clock.now });
    const who = newCaller();
    expect(await a.spend(who, 70)).toMatchObject({ allowed: true, remaining: 30 });
    expect(await b.spend(who, 20)).toMatchObject({ allowed: true, remaining: 10 });
    expect(await a.spend(who, 10)).toMatchObject({ allowed: true, remaining: 0 });
    const refused = await b.spend(who, 1);
    expect(refused).toMatchObject({ allowed: false, remaining: 0, limit: 100 });
    expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect((await a.spend(who, 1)).allowed).toBe(false);
    // another caller is untouched on either
    expect(await b.spend(newCaller(), 100)).toMatchObject({ allowed: true, remaining: 0 });
    // and the retry-after B gave holds on A too
    clock.at(12_000 + refused.retryAfterSeconds * 1000);
    expect((await a.spend(who, 1)).allowed).toBe(true);
  });

  it('never lets 50 concurrent spends through two instances past the limit', async () => {
    const clock = fakeClock(40_000);
    const a = make({ costPerMinute: 200, now: clock.now });
    const b = make({ costPerMinute: 200, now: clock.now });
    const who = newCaller();
    const decisions = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).spend(who, 10)));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(20);
    expect(await inspect.get(`foliograph:${NS}:budget:${who}:${T0 / MINUTE}`)).toBe('200');
    expect((await a.spend(who, 1)).allowed).toBe(false);
    expect((await b.spend(who, 1)).allowed).toBe(false);
  });
});

describe.skipIf(!REDIS_URL)('two servers sharing budgets through Redis', () => {
  // viewer 1 + portfolios 1 + totalCount 1 + 2 nodes = 5 a time, against 20 a minute
  const MINE = { query: 'query Mine { viewer { email portfolios(first: 2) { totalCount nodes { name } } } }' };
  let database: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  let first: { id: number; email: string };
  let second: { id: number; email: string };

  /**
   * A user with a random id: the budget key names the user's id, and every test database starts its
   * ids at 1, so random ids keep this run's budgets apart from any other's in the shared Redis.
   */
  async function userWithRandomId(db: Db) {
    const id = 1_000_000_000 + randomInt(1_000_000_000);
    const email = `budget-${id}-${RUN}@example.com`;
    await db.execute(sql`insert into users (id, email, name) overriding system value values (${id}, ${email}, ${'Budget ' + id})`);
    await seed(db).portfolio({ id });
    return { id, email };
  }
  const budgetKeys = (redis: Redis, userId: number) => redis.keys(`foliograph:${cacheNamespace(database)}:budget:user:${userId}:*`);

  beforeAll(async () => {
    database = await createTestDatabase();
    first = await userWithRandomId(database.db);
    second = await userWithRandomId(database.db);
    const env = { REDIS_URL: REDIS_URL!, RATE_LIMIT_COST_PER_MINUTE: '20' };
    a = await startTestServer(database, env);
    b = await startTestServer(database, env);
    // no cost-recorder flush may land inside a statement count below
    for (const s of [a, b]) await s.app.recorder.stop();
  });
  afterAll(async () => {
    for (const s of [a, b]) await s?.stop();
    await database?.destroy();
    if (REDIS_URL) {
      const redis = new Redis(REDIS_URL);
      const keys = (await Promise.all([first, second].filter(Boolean).map((u) => budgetKeys(redis, u.id)))).flat();
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    }
  });

  const auth = async (s: TestServer, userId: number) => ({ authorization: `Bearer ${await s.token(userId)}` });

  it('rate limits a user on the second server after spending on the first, and leaves another user alone', async () => {
    const expectServed = (res: Awaited<ReturnType<TestServer['post']>>, email: string, remaining: number) => {
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.viewer).toMatchObject({ email, portfolios: { totalCount: 1 } });
      expect(res.body.extensions.cost).toMatchObject({ estimated: 5, budget: { limit: 20, remaining } });
    };
    // the spending alternates, and each server sees what the other spent
    expectServed(await a.post(MINE, await auth(a, first.id)), first.email, 15);
    expectServed(await b.post(MINE, await auth(b, first.id)), first.email, 10);
    expectServed(await a.post(MINE, await auth(a, first.id)), first.email, 5);
    expectServed(await a.post(MINE, await auth(a, first.id)), first.email, 0);

    for (const server of [b, a]) {
      const { result: res, statements } = await server.countSql(async () => server.post(MINE, await auth(server, first.id)));
      expect(res.status, JSON.stringify(res.body)).toBe(429);
      expect(res.body.data ?? null).toBeNull();
      expect(res.body.errors).toHaveLength(1);
      expect(res.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 20 });
      const retryAfter = res.headers.get('retry-after');
      expect(retryAfter).toMatch(/^\d+$/);
      expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
      expect(Number(retryAfter)).toBeLessThanOrEqual(120);
      expect(res.body.errors[0].extensions.retryAfter).toBe(Number(retryAfter));
      expect(statements).toBe(0);
    }

    // another user has a whole budget of their own, on both servers
    expectServed(await b.post(MINE, await auth(b, second.id)), second.email, 15);
    expectServed(await a.post(MINE, await auth(a, second.id)), second.email, 10);

    // and the counts live under this database's namespace (user 7 of staging is not user 7 of production)
    const redis = new Redis(REDIS_URL!);
    try {
      expect(await budgetKeys(redis, first.id)).toHaveLength(1);
      expect(await redis.keys(`foliograph:budget:user:${first.id}:*`)).toEqual([]);
    } finally {
      await redis.quit();
    }
  });
});

describe('an operation costlier than the whole budget', () => {
  let database: TestDatabase;
  let server: TestServer;
  let userId: number;

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    userId = (await s.user()).id;
    for (let i = 0; i < 3; i++) await s.instrument(['10']);
    // MAX_COST lets the operation through; the budget of 20 a minute could never hold it
    server = await startTestServer(database, { RATE_LIMIT_COST_PER_MINUTE: '20', MAX_COST: '50000' });
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  it('is refused as too costly (400, cost and limit), not with a Retry-After that retrying can never satisfy', async () => {
    // 1 + 24 instruments = 25 > 20: no amount of waiting makes it fit
    const headers = { authorization: `Bearer ${await server.token(userId)}` };
    const res = await server.post({ query: '{ instruments(first: 24) { nodes { symbol } } }' }, headers);
    expect(res.body.data ?? null).toBeNull();
    expect(res.body.errors).toHaveLength(1);
    expect(res.headers.get('retry-after'), JSON.stringify(res.body)).toBeNull();
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'QUERY_TOO_COSTLY', cost: 25, limit: 20 });
    // and the caller's budget is untouched: an operation that fits still runs
    const fits = await server.post({ query: '{ instruments(first: 3) { nodes { symbol } } }' }, headers);
    expect(fits.status).toBe(200);
    expect(fits.body.extensions.cost).toMatchObject({ estimated: 4, budget: { limit: 20, remaining: 16 } });
  });
});

describe('the budget of an anonymous caller', () => {
  it('is one per IPv4 address and one per IPv6 /64, an IPv4-mapped address counting as its IPv4 one', () => {
    expect(addressCaller('203.0.113.7')).toBe('203.0.113.7');
    expect(addressCaller('::ffff:203.0.113.7')).toBe('203.0.113.7');
    // any host owns a whole /64: every address in it is the same caller
    const one = addressCaller('2001:db8:1:2::1');
    for (const a of ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0DB8:0001:0002:0:0:0:9', '2001:db8:1:2:a:b:1.2.3.4', '2001:db8:1:2::1%eth0'])
      expect(addressCaller(a), a).toBe(one);
    expect(one).toBe('2001:db8:1:2::/64');
    for (const a of ['2001:db8:1:3::1', '2001:db8::1', '2001:db9:1:2::1']) expect(addressCaller(a), a).not.toBe(one);
    expect(addressCaller('::1')).toBe('0:0:0:0::/64');
    expect(addressCaller(undefined)).toBe('unknown');
  });

  it('is keyed so by the server, from the socket it was called on', async () => {
    const database = await createTestDatabase();
    const spent: string[] = [];
    const recording: CostBudget = {
      async spend(caller) {
        spent.push(caller);
        return { allowed: true, remaining: 1000, limit: 1000, retryAfterSeconds: 0 };
      },
      async close() {},
    };
    const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', COST_FLUSH_INTERVAL_MS: String(2 ** 31 - 1) });
    const app = createApp({ config, database, logger, budget: recording });
    try {
      // a dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d
      const url = new URL(await app.listen(0, '::'));
      const ask = (host: string) =>
        fetch(`http://${host}:${url.port}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: '{ instruments { totalCount } }' }),
        });
      expect((await ask('127.0.0.1')).status).toBe(200);
      expect((await ask('[::1]')).status).toBe(200);
      expect(spent).toEqual(['ip:127.0.0.1', 'ip:0:0:0:0::/64']);
    } finally {
      await app.stop();
      await database.destroy();
    }
  });
});
