import { setTimeout as sleep } from 'node:timers/promises';
import { eq, sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import { createDeadline } from '../src/db/deadline.js';
import { portfolios, trades } from '../src/db/schema.js';
import { writeTransaction } from '../src/db/transaction.js';
import { ErrorCode } from '../src/errors.js';
import { createTestDatabase, onPostgres, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// A mutation's answer is the truth about whether it was applied: a write the client is told failed
// (DEADLINE_EXCEEDED, DATABASE_UNAVAILABLE, ...) is not in the database, however long it waited for a
// connection or a lock, and one that is acknowledged is there exactly once.

const RECORD = `mutation Trade($input: RecordTradeInput!) { recordTrade(input: $input) { trade { id } position { quantity } } }`;

describe('a write past its deadline', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database.destroy();
  });

  it('rolls back instead of committing when the deadline passed while it ran', async () => {
    const owner = await seed(database.db).user();
    const deadline = createDeadline(30);
    const write = writeTransaction(database.db, deadline, async (tx) => {
      await tx.insert(portfolios).values({ ownerId: owner.id, name: 'too late' });
      await sleep(80);
    });
    await expect(write).rejects.toMatchObject({ extensions: { code: ErrorCode.DEADLINE_EXCEEDED } });
    deadline.cancel();
    expect(await database.db.select().from(portfolios).where(eq(portfolios.ownerId, owner.id))).toEqual([]);
    expect(deadline.writing).toBe(true);
  });

  it('does not even begin once the deadline has passed', async () => {
    const owner = await seed(database.db).user();
    const deadline = createDeadline(1);
    await sleep(10);
    await expect(writeTransaction(database.db, deadline, (tx) => tx.insert(portfolios).values({ ownerId: owner.id, name: 'never' }))).rejects.toMatchObject({
      extensions: { code: ErrorCode.DEADLINE_EXCEEDED },
    });
    expect(await database.db.select().from(portfolios).where(eq(portfolios.ownerId, owner.id))).toEqual([]);
  });

  it('commits within its deadline as before', async () => {
    const owner = await seed(database.db).user();
    const deadline = createDeadline(5000);
    await writeTransaction(database.db, deadline, (tx) => tx.insert(portfolios).values({ ownerId: owner.id, name: 'in time' }));
    deadline.cancel();
    expect(await database.db.select({ name: portfolios.name }).from(portfolios).where(eq(portfolios.ownerId, owner.id))).toEqual([{ name: 'in time' }]);
  });
});

// Lock waits and a pool of one need a second connection that holds a lock: PostgreSQL only.
describe.skipIf(!onPostgres)('trades behind a held lock, on a pool of one connection', () => {
  let database: TestDatabase;
  let server: TestServer;
  let locker: postgres.Sql;

  beforeAll(async () => {
    database = await createTestDatabase({ poolMax: 1 });
    server = await startTestServer(database, { REQUEST_TIMEOUT_MS: '300', DB_POOL_MAX: '1', RATE_LIMIT_COST_PER_MINUTE: '1000000000' });
    locker = postgres(database.url!, { max: 2, onnotice: () => {} });
  });
  afterAll(async () => {
    await locker.end();
    await server.stop();
    await database.destroy();
  });

  async function fixture() {
    const s = seed(database.db);
    const owner = await s.user();
    const portfolio = await s.portfolio(owner);
    const instrument = await s.instrument(['10']);
    const headers = { authorization: `Bearer ${await server.token(owner.id)}` };
    const trade = (key: string) =>
      server.post(
        {
          query: RECORD,
          variables: { input: { portfolioId: String(portfolio.id), symbol: instrument.symbol, side: 'BUY', quantity: '1', price: '10', idempotencyKey: key } },
        },
        headers,
      );
    const storedKeys = async () =>
      (await database.db.select({ key: trades.idempotencyKey }).from(trades).where(eq(trades.portfolioId, portfolio.id))).map((r) => r.key);
    /** Holds the portfolio row's lock for `ms` from a connection of its own. */
    const hold = (ms: number) =>
      locker.begin(async (tx) => {
        await tx`select id from portfolios where id = ${portfolio.id} for update`;
        await sleep(ms);
      });
    return { trade, storedKeys, hold };
  }

  it('answers DEADLINE_EXCEEDED to every trade that waited past its deadline, for the lock or for the connection, and stores none of them', async () => {
    const f = await fixture();
    const holding = f.hold(1200);
    await sleep(50);
    // the first waits for the lock on the only connection; the others wait for that connection
    const answers = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((k) => f.trade(k)));
    for (const a of answers) {
      expect(a.status).toBe(504);
      expect(a.body.errors[0].extensions.code).toBe(ErrorCode.DEADLINE_EXCEEDED);
      expect(a.body.errors[0].extensions.outcome).toBeUndefined();
    }
    await holding;
    // nothing that was told "failed" commits later, once the lock and the connection are free
    await sleep(500);
    expect(await f.storedKeys()).toEqual([]);
    // and the server serves as before
    const after = await f.trade('after');
    expect(after.body.errors).toBeUndefined();
    expect(await f.storedKeys()).toEqual(['after']);
  });

  it('keeps the ledger exact through many short lock stalls: acknowledged trades stored once, refused ones not at all', async () => {
    const f = await fixture();
    let stalling = true;
    const staller = (async () => {
      while (stalling) {
        await f.hold(150);
        await sleep(20);
      }
    })();
    const answers = new Map<string, { status: number; code?: string; outcome?: string }>();
    await Promise.all(
      Array.from({ length: 6 }, async (_, c) => {
        for (let n = 0; n < 12; n++) {
          const key = `stall-${c}-${n}`;
          const a = await f.trade(key);
          answers.set(key, { status: a.status, code: a.body.errors?.[0]?.extensions?.code, outcome: a.body.errors?.[0]?.extensions?.outcome });
        }
      }),
    );
    stalling = false;
    await staller;
    await sleep(300);
    const stored = new Set(await f.storedKeys());
    const ok = [...answers].filter(([, a]) => a.status === 200 && !a.code).map(([k]) => k);
    const refused = [...answers].filter(([, a]) => a.code && a.outcome !== 'unknown').map(([k]) => k);
    expect(refused.length).toBeGreaterThan(0);
    expect(ok.filter((k) => !stored.has(k))).toEqual([]);
    expect(refused.filter((k) => stored.has(k))).toEqual([]);
    expect([...answers.values()].filter((a) => a.outcome === 'unknown')).toEqual([]);
    expect(new Set(refused.map((k) => answers.get(k)!.code))).toEqual(new Set([ErrorCode.DEADLINE_EXCEEDED]));
    const [row] = await rows<{ n: number }>(database.db, sql`select count(*)::int as n from trades where idempotency_key like 'stall-%'`);
    expect(Number(row.n)).toBe(stored.size);
  });
});
