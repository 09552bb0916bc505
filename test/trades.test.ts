import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Decimal as DecimalJs } from 'decimal.js';
import { asc, count, eq } from 'drizzle-orm';
import type { Viewer } from '../src/admission/tokens.js';
import type { Db } from '../src/db/client.js';
import { positions, trades } from '../src/db/schema.js';
import { recordTrade, type RecordTradeInput } from '../src/domain/trades.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// Trades go through the real HTTP server (and, where simpler, straight through recordTrade) over a
// real database. Every refusal is checked to have changed nothing: the portfolio's trade and
// position rows, and the number of trades in the whole database, are compared before and after.

const RECORD = /* GraphQL */ `
  mutation Record($input: RecordTradeInput!) {
    recordTrade(input: $input) {
      trade {
        id
        side
        quantity
        price
        executedAt
        idempotencyKey
        instrument {
          symbol
        }
      }
      position {
        id
        quantity
        averageCost
        realizedPnl
        instrument {
          symbol
        }
      }
    }
  }
`;

const PORTFOLIO = /* GraphQL */ `
  query Portfolio($id: ID!) {
    portfolio(id: $id) {
      positions {
        totalCount
        nodes {
          quantity
          averageCost
          realizedPnl
          instrument {
            symbol
          }
        }
      }
      trades {
        totalCount
        nodes {
          id
          side
          quantity
          price
          idempotencyKey
          instrument {
            symbol
          }
        }
      }
    }
  }
`;

// Independent arithmetic for expected values.
const Exact = DecimalJs.clone({ precision: 200, rounding: DecimalJs.ROUND_HALF_EVEN });
/** A stored numeric ("175.00000000") in canonical form ("175"). */
const norm = (value: string) => new Exact(value).toFixed();

type Response = { status: number; body: any };
const codes = (res: Response): unknown[] => (res.body.errors ?? []).map((e: any) => e.extensions?.code);

/** The `extensions.code` a promise rejects with, 'NO ERROR' when it resolves. */
async function codeOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
    return 'NO ERROR';
  } catch (e) {
    return (e as { extensions?: { code?: unknown } }).extensions?.code ?? `uncoded error: ${String(e)}`;
  }
}

describe('recording trades', () => {
  let database: TestDatabase;
  let db: Db;
  let server: TestServer;

  beforeAll(async () => {
    // 20 connections, so that on PostgreSQL the concurrent cases really run side by side.
    database = await createTestDatabase({ poolMax: 20 });
    db = database.db;
    server = await startTestServer(database);
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  /** A user with a portfolio and an instrument (last close 100), optionally already holding some of it. */
  async function fixture(initial?: { quantity: string; price: string }) {
    const s = seed(db);
    const owner = await s.user();
    const portfolio = await s.portfolio(owner);
    const instrument = await s.instrument(['100']);
    const symbol = instrument.symbol;
    if (initial) await s.trade(owner.viewer, { portfolioId: portfolio.id, symbol, side: 'BUY', ...initial });
    const defaults = { portfolioId: String(portfolio.id), symbol, side: 'BUY', quantity: '1', price: '100' } as const;
    /** A RecordTradeInput as JSON variables (anything may be overridden, valid or not). */
    const input = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({ ...defaults, ...overrides });
    /** Records a trade straight through the domain function. */
    const trade = (overrides: Partial<RecordTradeInput> = {}, viewer: Viewer = owner.viewer) => recordTrade(db, viewer, { ...defaults, ...overrides });
    return { s, owner, portfolio, instrument, symbol, input, trade };
  }

  /** Everything a trade could change in a portfolio, plus the number of trades anywhere. */
  async function state(portfolioId: number) {
    const tradeRows = await db.select().from(trades).where(eq(trades.portfolioId, portfolioId)).orderBy(asc(trades.id));
    const positionRows = await db.select().from(positions).where(eq(positions.portfolioId, portfolioId)).orderBy(asc(positions.id));
    const [{ n }] = await db.select({ n: count() }).from(trades);
    return {
      tradesEverywhere: Number(n),
      trades: tradeRows.map((t) => ({ id: t.id, side: t.side, quantity: norm(t.quantity), price: norm(t.price), key: t.idempotencyKey })),
      positions: positionRows.map((p) => ({
        id: p.id,
        instrumentId: p.instrumentId,
        quantity: norm(p.quantity),
        averageCost: norm(p.averageCost),
        realizedPnl: norm(p.realizedPnl),
        updatedAt: p.updatedAt.toISOString(),
      })),
    };
  }

  async function position(portfolioId: number) {
    const rows = await db.select().from(positions).where(eq(positions.portfolioId, portfolioId));
    expect(rows).toHaveLength(1);
    return { quantity: norm(rows[0].quantity), averageCost: norm(rows[0].averageCost), realizedPnl: norm(rows[0].realizedPnl) };
  }

  async function tradeCount(portfolioId: number) {
    const [{ n }] = await db.select({ n: count() }).from(trades).where(eq(trades.portfolioId, portfolioId));
    return Number(n);
  }

  /** POSTs a GraphQL request as `userId` (anonymous when null). */
  async function post(userId: number | null, query: string, variables?: Record<string, unknown>): Promise<Response> {
    const headers: Record<string, string> = userId === null ? {} : { authorization: `Bearer ${await server.token(userId)}` };
    return server.post({ query, variables }, headers);
  }

  const record = (userId: number | null, input: Record<string, unknown>) => post(userId, RECORD, { input });

  /** Runs `request`, expects exactly one error with `code`, no payload, and no change in the portfolio. */
  async function expectRefused(portfolioId: number, code: string, request: () => Promise<Response>) {
    const before = await state(portfolioId);
    const res = await request();
    expect(codes(res)).toEqual([code]);
    expect(res.body.data?.recordTrade ?? null).toBeNull();
    expect(await state(portfolioId)).toEqual(before);
    return res;
  }

  describe('through the API', () => {
    it('records buys with the exact quantity and weighted average cost', async () => {
      const f = await fixture();
      const first = await record(f.owner.id, f.input({ quantity: '10', price: '100' }));
      expect(first.body.errors).toBeUndefined();
      // sent without a key, the trade is recorded under one of the server's (see "outcome unknown")
      expect(first.body.data.recordTrade.trade).toMatchObject({
        side: 'BUY',
        quantity: '10',
        price: '100',
        idempotencyKey: expect.stringMatching(/^srv-[0-9a-f-]{36}$/),
        instrument: { symbol: f.symbol },
      });
      expect(first.body.data.recordTrade.position).toMatchObject({ quantity: '10', averageCost: '100', realizedPnl: '0' });

      const second = await record(f.owner.id, f.input({ quantity: '30', price: '200' }));
      expect(second.body.errors).toBeUndefined();
      expect(second.body.data.recordTrade.position).toMatchObject({ quantity: '40', averageCost: '175', instrument: { symbol: f.symbol } });
      expect(await position(f.portfolio.id)).toEqual({ quantity: '40', averageCost: '175', realizedPnl: '0' });
      expect(await tradeCount(f.portfolio.id)).toBe(2);
    });

    it('keeps fractional quantities and prices exact, to 8 places', async () => {
      const f = await fixture();
      await record(f.owner.id, f.input({ quantity: '0.5', price: '10.1' }));
      const res = await record(f.owner.id, f.input({ quantity: '1.25', price: '20.02' }));
      // (0.5 × 10.1 + 1.25 × 20.02) / 1.75 = 30.075 / 1.75 = 17.185714285714...
      expect(res.body.data.recordTrade.position).toMatchObject({ quantity: '1.75', averageCost: '17.18571429' });
      const sell = await record(f.owner.id, f.input({ side: 'SELL', quantity: '0.00000001', price: '99999999999999999999.99999999' }));
      expect(sell.body.errors).toBeUndefined();
      expect(sell.body.data.recordTrade.trade).toMatchObject({ quantity: '0.00000001', price: '99999999999999999999.99999999' });
      expect(sell.body.data.recordTrade.position).toMatchObject({ quantity: '1.74999999', averageCost: '17.18571429' });
    });

    it('keeps the average cost on a sell, realises the PnL, and returns position null once everything is sold', async () => {
      const f = await fixture();
      await record(f.owner.id, f.input({ quantity: '10', price: '100' }));
      await record(f.owner.id, f.input({ quantity: '30', price: '200' }));

      const partial = await record(f.owner.id, f.input({ side: 'SELL', quantity: '15', price: '180' }));
      expect(partial.body.errors).toBeUndefined();
      expect(partial.body.data.recordTrade.position).toMatchObject({ quantity: '25', averageCost: '175', realizedPnl: '75' });

      const rest = await record(f.owner.id, f.input({ side: 'SELL', quantity: '25', price: '170' }));
      expect(rest.body.errors).toBeUndefined();
      expect(rest.body.data.recordTrade.trade).toMatchObject({ side: 'SELL', quantity: '25', price: '170' });
      expect(rest.body.data.recordTrade.position).toBeNull();
      // 15 × (180 − 175) + 25 × (170 − 175) = 75 − 125
      expect(await position(f.portfolio.id)).toEqual({ quantity: '0', averageCost: '175', realizedPnl: '-50' });

      const view = await post(f.owner.id, PORTFOLIO, { id: String(f.portfolio.id) });
      expect(view.body.data.portfolio.positions).toEqual({ totalCount: 0, nodes: [] });
      expect(view.body.data.portfolio.trades.totalCount).toBe(4);
    });

    it('lists the recorded trade in the portfolio, newest first', async () => {
      const f = await fixture();
      const older = await record(f.owner.id, f.input({ quantity: '2', price: '50', executedAt: '2024-01-02T10:00:00.000Z', idempotencyKey: 'first' }));
      const newer = await record(f.owner.id, f.input({ side: 'SELL', quantity: '0.5', price: '60.25', executedAt: '2024-01-03T10:00:00.000Z' }));
      expect(older.body.data.recordTrade.trade.executedAt).toBe('2024-01-02T10:00:00.000Z');

      const view = await post(f.owner.id, PORTFOLIO, { id: String(f.portfolio.id) });
      expect(view.body.errors).toBeUndefined();
      expect(view.body.data.portfolio.trades).toEqual({
        totalCount: 2,
        nodes: [
          {
            id: newer.body.data.recordTrade.trade.id,
            side: 'SELL',
            quantity: '0.5',
            price: '60.25',
            idempotencyKey: expect.stringMatching(/^srv-/),
            instrument: { symbol: f.symbol },
          },
          { id: older.body.data.recordTrade.trade.id, side: 'BUY', quantity: '2', price: '50', idempotencyKey: 'first', instrument: { symbol: f.symbol } },
        ],
      });
      expect(view.body.data.portfolio.positions).toEqual({
        totalCount: 1,
        nodes: [{ quantity: '1.5', averageCost: '50', realizedPnl: '5.125', instrument: { symbol: f.symbol } }],
      });
    });

    it('accepts the symbol in any case and with surrounding spaces', async () => {
      const f = await fixture();
      const res = await record(f.owner.id, f.input({ symbol: `  ${f.symbol.toLowerCase()} ` }));
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.recordTrade.trade.instrument.symbol).toBe(f.symbol);
    });

    it('accepts Decimal string literals written in the document', async () => {
      const f = await fixture();
      const res = await post(
        f.owner.id,
        `mutation { recordTrade(input: { portfolioId: "${f.portfolio.id}", symbol: "${f.symbol}", side: BUY, quantity: "3", price: "1.5" }) { position { quantity averageCost } } }`,
      );
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.recordTrade.position).toEqual({ quantity: '3', averageCost: '1.5' });
    });
  });

  describe('refusals change nothing', () => {
    const NOT_HELD = '<an existing instrument the portfolio does not hold>';
    it.each([
      ['a sell of more than the holding', { side: 'SELL', quantity: '10.00000001' }],
      ['a sell of an instrument not held', { side: 'SELL', quantity: '1', symbol: NOT_HELD }],
      ['quantity "0"', { quantity: '0' }],
      ['quantity "0.00000000"', { quantity: '0.00000000' }],
      ['quantity "-0"', { quantity: '-0' }],
      ['a negative quantity "-5"', { quantity: '-5' }],
      ['a negative sell quantity "-5"', { side: 'SELL', quantity: '-5' }],
      ['price "0"', { price: '0' }],
      ['a negative price "-1"', { price: '-1' }],
      ['an unknown symbol', { symbol: 'NOSUCH1' }],
      ['a symbol that cannot exist', { symbol: 'not a symbol!' }],
      ['an empty symbol', { symbol: '' }],
      ['quantity "1e3" in variables', { quantity: '1e3' }],
      ['price "1e3" in variables', { price: '1e3' }],
      ['quantity "+5" in variables', { quantity: '+5' }],
      ['quantity ".5" in variables', { quantity: '.5' }],
      ['quantity "5." in variables', { quantity: '5.' }],
      ['quantity "NaN" in variables', { quantity: 'NaN' }],
      ['quantity with 9 decimals in variables', { quantity: '1.000000001' }],
      ['price with 21 integer digits in variables', { price: '100000000000000000000' }],
      ['quantity as a JSON number in variables', { quantity: 5 }],
      ['an executedAt two days in the future', { executedAt: new Date(Date.now() + 2 * 86_400_000).toISOString() }],
      ['an executedAt that is not a date-time', { executedAt: 'yesterday' }],
      ['an empty idempotencyKey', { idempotencyKey: '' }],
      ['an idempotencyKey of 201 characters', { idempotencyKey: 'k'.repeat(201) }],
      ['a side that does not exist', { side: 'SHORT' }],
    ])('%s is BAD_USER_INPUT', async (_, overrides) => {
      const f = await fixture({ quantity: '10', price: '100' });
      const input = f.input(overrides);
      if (input.symbol === NOT_HELD) input.symbol = (await f.s.instrument(['5'])).symbol;
      await expectRefused(f.portfolio.id, 'BAD_USER_INPUT', () => record(f.owner.id, input));
      expect(await position(f.portfolio.id)).toEqual({ quantity: '10', averageCost: '100', realizedPnl: '0' });
    });

    it.each([
      ['a string with an exponent', '"1e3"'],
      ['a string with a plus sign', '"+5"'],
      ['a string with 9 decimals', '"0.000000001"'],
      ['an Int literal', '1000'],
      ['a Float literal', '10.5'],
      ['a Float literal with an exponent', '1e3'],
    ])('a quantity written in the document as %s (%s) is BAD_USER_INPUT', async (_, literal) => {
      const f = await fixture({ quantity: '10', price: '100' });
      const query = `mutation { recordTrade(input: { portfolioId: "${f.portfolio.id}", symbol: "${f.symbol}", side: BUY, quantity: ${literal}, price: "100" }) { trade { id } } }`;
      await expectRefused(f.portfolio.id, 'BAD_USER_INPUT', () => post(f.owner.id, query));
    });

    it('a price written in the document as a Float literal is BAD_USER_INPUT', async () => {
      const f = await fixture({ quantity: '10', price: '100' });
      const query = `mutation { recordTrade(input: { portfolioId: "${f.portfolio.id}", symbol: "${f.symbol}", side: BUY, quantity: "1", price: 99.5 }) { trade { id } } }`;
      await expectRefused(f.portfolio.id, 'BAD_USER_INPUT', () => post(f.owner.id, query));
    });

    it('says which argument is wrong and why', async () => {
      const f = await fixture({ quantity: '10', price: '100' });
      const oversell = await record(f.owner.id, f.input({ side: 'SELL', quantity: '11' }));
      expect(oversell.body.errors[0].message).toMatch(/quantity/);
      expect(oversell.body.errors[0].message).toContain('11');
      const zeroPrice = await record(f.owner.id, f.input({ price: '0' }));
      expect(zeroPrice.body.errors[0].message).toMatch(/price/);
      const unknown = await record(f.owner.id, f.input({ symbol: 'NOSUCH2' }));
      expect(unknown.body.errors[0].message).toMatch(/symbol/);
    });

    it('an idempotencyKey reused with a different input is BAD_USER_INPUT', async () => {
      const f = await fixture();
      const first = await record(f.owner.id, f.input({ quantity: '1', price: '100', idempotencyKey: 'order-1' }));
      expect(first.body.errors).toBeUndefined();
      for (const different of [{ quantity: '2' }, { price: '101' }, { side: 'SELL' }, { executedAt: '2024-01-02T00:00:00.000Z' }]) {
        await expectRefused(f.portfolio.id, 'BAD_USER_INPUT', () =>
          record(f.owner.id, f.input({ quantity: '1', price: '100', idempotencyKey: 'order-1', ...different })),
        );
      }
      const other = await f.s.instrument(['5']);
      await expectRefused(f.portfolio.id, 'BAD_USER_INPUT', () => record(f.owner.id, f.input({ symbol: other.symbol, idempotencyKey: 'order-1' })));
      expect(await tradeCount(f.portfolio.id)).toBe(1);
    });

    it('a sell whose realised PnL would not fit the database is BAD_USER_INPUT, not an internal error', async () => {
      // 10^19 units at 1, sold at 99999999999999999999: a PnL near 10^39, beyond numeric(38, 8)
      const units = '1' + '0'.repeat(19);
      const f = await fixture({ quantity: units, price: '1' });
      await expectRefused(f.portfolio.id, 'BAD_USER_INPUT', () => record(f.owner.id, f.input({ side: 'SELL', quantity: units, price: '9'.repeat(20) })));
    });

    // Replayed in the order of executedAt, a portfolio's trades must never sell units it did not hold yet.
    it('a sell dated before the buy it would sell is BAD_USER_INPUT (executedAt), and changes nothing', async () => {
      const f = await fixture();
      expect(codes(await record(f.owner.id, f.input({ quantity: '10', executedAt: '2024-03-01T10:00:00.000Z' })))).toEqual([]);
      const res = await expectRefused(f.portfolio.id, 'BAD_USER_INPUT', () =>
        record(f.owner.id, f.input({ side: 'SELL', quantity: '4', executedAt: '2024-02-01T10:00:00.000Z' })),
      );
      expect(res.body.errors[0].extensions.argument).toBe('executedAt');
      expect(res.body.errors[0].message).toMatch(
        /^executedAt: a sell of 4 \S+ dated 2024-02-01 needs units held from then on; the portfolio's trades hold as little as 0 from that date$/,
      );
    });

    it('a sell dated between trades must leave every later trade covered', async () => {
      const f = await fixture();
      for (const t of [
        { quantity: '10', executedAt: '2024-01-01T10:00:00.000Z' },
        { side: 'SELL', quantity: '5', executedAt: '2024-03-01T10:00:00.000Z' },
      ]) {
        expect(codes(await record(f.owner.id, f.input(t)))).toEqual([]);
      }
      // on 2024-02-01 ten were held, but the March sell needs five of them: at most five may go
      await expectRefused(f.portfolio.id, 'BAD_USER_INPUT', () =>
        record(f.owner.id, f.input({ side: 'SELL', quantity: '6', executedAt: '2024-02-01T10:00:00.000Z' })),
      );
      const ok = await record(f.owner.id, f.input({ side: 'SELL', quantity: '5', executedAt: '2024-02-01T10:00:00.000Z' }));
      expect(codes(ok)).toEqual([]);
      expect(ok.body.data.recordTrade.position).toBeNull();
      // a sell now cannot use a buy dated later than now (executedAt may be up to a day ahead)
      const later = new Date(Date.now() + 3_600_000).toISOString();
      expect(codes(await record(f.owner.id, f.input({ quantity: '3', executedAt: later })))).toEqual([]);
      await expectRefused(f.portfolio.id, 'BAD_USER_INPUT', () => record(f.owner.id, f.input({ side: 'SELL', quantity: '1' })));
    });
  });

  describe('who may trade', () => {
    it('an anonymous caller is UNAUTHENTICATED and nothing changes', async () => {
      const f = await fixture({ quantity: '10', price: '100' });
      await expectRefused(f.portfolio.id, 'UNAUTHENTICATED', () => record(null, f.input()));
      await expect(codeOf(f.trade({}, { kind: 'anonymous' }))).resolves.toBe('UNAUTHENTICATED');
    });

    it("another user's portfolio is NOT_FOUND and nothing changes", async () => {
      const f = await fixture({ quantity: '10', price: '100' });
      const intruder = await f.s.user();
      await expectRefused(f.portfolio.id, 'NOT_FOUND', () => record(intruder.id, f.input()));
      // an oversell there is NOT_FOUND too: the answer says nothing about what the portfolio holds
      await expectRefused(f.portfolio.id, 'NOT_FOUND', () => record(intruder.id, f.input({ side: 'SELL', quantity: '1000' })));
      await expect(codeOf(f.trade({}, intruder.viewer))).resolves.toBe('NOT_FOUND');
      expect(await position(f.portfolio.id)).toEqual({ quantity: '10', averageCost: '100', realizedPnl: '0' });
    });

    it.each([
      ['non-numeric', 'abc'],
      ['empty', ''],
      ['zero', '0'],
      ['negative', '-1'],
      ['fractional', '1.5'],
      ['with a leading zero', '01'],
      ['beyond 32 bits', '2147483648'],
      ['huge', '99999999999999999999999999'],
      ['valid but unused', '2147483647'],
    ])('a %s portfolioId (%j) is NOT_FOUND', async (_, portfolioId) => {
      const f = await fixture({ quantity: '10', price: '100' });
      const before = await state(f.portfolio.id);
      const res = await record(f.owner.id, { ...f.input(), portfolioId });
      expect(codes(res)).toEqual(['NOT_FOUND']);
      expect(await state(f.portfolio.id)).toEqual(before);
    });
  });

  describe('idempotency', () => {
    it('the same key with the same input returns the first trade and changes nothing', async () => {
      const f = await fixture();
      const input = f.input({ quantity: '4', price: '25.5', idempotencyKey: 'abc-123' });
      const first = await record(f.owner.id, input);
      expect(first.body.errors).toBeUndefined();
      const before = await state(f.portfolio.id);

      for (let i = 0; i < 3; i++) {
        const again = await record(f.owner.id, input);
        expect(again.body.errors).toBeUndefined();
        expect(again.body.data.recordTrade.trade).toEqual(first.body.data.recordTrade.trade);
        expect(again.body.data.recordTrade.position).toEqual(first.body.data.recordTrade.position);
      }
      expect(await state(f.portfolio.id)).toEqual(before);
      expect(before.trades).toHaveLength(1);
      expect(await position(f.portfolio.id)).toEqual({ quantity: '4', averageCost: '25.5', realizedPnl: '0' });
    });

    it('a replay returns the current position, not the one after the first trade', async () => {
      const f = await fixture();
      const first = await f.trade({ quantity: '4', price: '10', idempotencyKey: 'k' });
      await f.trade({ quantity: '4', price: '20' });
      const replay = await f.trade({ quantity: '4', price: '10', idempotencyKey: 'k' });
      expect(replay.replayed).toBe(true);
      expect(replay.trade.id).toBe(first.trade.id);
      expect(norm(replay.position!.quantity)).toBe('8');
      expect(norm(replay.position!.averageCost)).toBe('15');
      expect(await tradeCount(f.portfolio.id)).toBe(2);
    });

    it('a replay of a sell that closed the position returns it and does not sell again', async () => {
      const f = await fixture({ quantity: '5', price: '10' });
      const sell = await f.trade({ side: 'SELL', quantity: '5', price: '12', idempotencyKey: 'close' });
      expect(sell.position).toBeNull();
      const before = await state(f.portfolio.id);
      const replay = await f.trade({ side: 'SELL', quantity: '5', price: '12', idempotencyKey: 'close' });
      expect(replay).toMatchObject({ replayed: true, position: null });
      expect(replay.trade.id).toBe(sell.trade.id);
      expect(await state(f.portfolio.id)).toEqual(before);
    });

    it('the same key in a different portfolio is independent', async () => {
      const f = await fixture();
      const second = await f.s.portfolio(f.owner);
      const a = await record(f.owner.id, f.input({ quantity: '1', price: '100', idempotencyKey: 'shared' }));
      const b = await record(f.owner.id, f.input({ portfolioId: String(second.id), quantity: '1', price: '100', idempotencyKey: 'shared' }));
      // a different input under the same key is fine in another portfolio as well
      const third = await f.s.portfolio(f.owner);
      const c = await record(f.owner.id, f.input({ portfolioId: String(third.id), quantity: '7', price: '3', idempotencyKey: 'shared' }));
      for (const res of [a, b, c]) expect(res.body.errors).toBeUndefined();
      const ids = [a, b, c].map((res) => res.body.data.recordTrade.trade.id);
      expect(new Set(ids).size).toBe(3);
      expect(await tradeCount(f.portfolio.id)).toBe(1);
      expect(await tradeCount(second.id)).toBe(1);
      expect(await tradeCount(third.id)).toBe(1);
      expect(await position(third.id)).toEqual({ quantity: '7', averageCost: '3', realizedPnl: '0' });
    });

    it("another user's identical key and input in their own portfolio is independent", async () => {
      const f = await fixture();
      const g = await fixture();
      const a = await f.trade({ symbol: f.symbol, idempotencyKey: 'same' });
      const b = await g.trade({ symbol: f.symbol, idempotencyKey: 'same' });
      expect(b.replayed).toBe(false);
      expect(b.trade.id).not.toBe(a.trade.id);
    });
  });

  describe('exact average cost', () => {
    it('is the exact weighted mean over several buys, rounded once (1@1, 2@2, 3@3 = 14/6)', async () => {
      const f = await fixture();
      await f.trade({ quantity: '1', price: '1' });
      const two = await f.trade({ quantity: '2', price: '2' });
      expect(norm(two.position!.averageCost)).toBe('1.66666667');
      await f.trade({ quantity: '3', price: '3' });
      // 14 / 6 = 2.333333333…; carrying the rounded 1.66666667 forward would give 2.33333334
      expect(await position(f.portfolio.id)).toEqual({ quantity: '6', averageCost: '2.33333333', realizedPnl: '0' });
    });
  });

  describe('concurrency', () => {
    it('100 concurrent buys on one position add up exactly', async () => {
      const f = await fixture();
      const legs = Array.from({ length: 100 }, (_, i) => ({ quantity: String(i + 1), price: `${100 + (i % 7)}.${String((i * 37) % 100).padStart(2, '0')}` }));
      const results = await Promise.allSettled(legs.map((leg, i) => f.trade({ ...leg, idempotencyKey: `buy-${i}` })));
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);

      const units = legs.reduce((s, l) => s.plus(l.quantity), new Exact(0));
      const cost = legs.reduce((s, l) => s.plus(new Exact(l.quantity).times(l.price)), new Exact(0));
      expect(units.toFixed()).toBe('5050');
      expect(await tradeCount(f.portfolio.id)).toBe(100);
      const held = await position(f.portfolio.id);
      expect(held.quantity).toBe('5050');
      expect(held.averageCost).toBe(cost.dividedBy(units).toDecimalPlaces(8, DecimalJs.ROUND_HALF_EVEN).toFixed());
    });

    it('100 concurrent sells of 1 from 50 units: exactly 50 succeed, 50 are BAD_USER_INPUT, none oversells', async () => {
      const f = await fixture({ quantity: '50', price: '10' });
      const outcomes = await Promise.all(Array.from({ length: 100 }, (_, i) => codeOf(f.trade({ side: 'SELL', quantity: '1', price: String(10 + (i % 3)) }))));
      expect(outcomes.filter((c) => c === 'NO ERROR')).toHaveLength(50);
      expect(outcomes.filter((c) => c === 'BAD_USER_INPUT')).toHaveLength(50);
      expect(await tradeCount(f.portfolio.id)).toBe(51);
      const held = await position(f.portfolio.id);
      expect(held.quantity).toBe('0');
      expect(held.averageCost).toBe('10');
      // each successful sell realised 0, 1 or 2; the total must match the recorded sells exactly
      const sold = await db.select().from(trades).where(eq(trades.portfolioId, f.portfolio.id));
      const realised = sold.filter((t) => t.side === 'SELL').reduce((s, t) => s.plus(new Exact(t.price).minus(10)), new Exact(0));
      expect(held.realizedPnl).toBe(realised.toFixed());
    });

    it('interleaved concurrent buys and sells never oversell and keep the position equal to its trades', async () => {
      const f = await fixture({ quantity: '10', price: '10' });
      const ops = Array.from({ length: 100 }, (_, i) =>
        i % 5 < 2 ? { side: 'BUY' as const, quantity: '1', price: '20' } : { side: 'SELL' as const, quantity: '1', price: '15' },
      );
      const outcomes = await Promise.all(ops.map((op) => codeOf(f.trade(op))));

      const buys = ops.filter((op, i) => op.side === 'BUY' && outcomes[i] === 'NO ERROR').length;
      const sells = ops.filter((op, i) => op.side === 'SELL' && outcomes[i] === 'NO ERROR').length;
      expect(buys).toBe(40);
      // the 10 units held at the start guarantee at least 10 sells; a failed sell only ever meets an empty position
      expect(sells).toBeGreaterThanOrEqual(10);
      expect(outcomes.filter((c) => c !== 'NO ERROR').every((c) => c === 'BAD_USER_INPUT')).toBe(true);
      expect(await tradeCount(f.portfolio.id)).toBe(1 + buys + sells);

      const rows = await db.select().from(trades).where(eq(trades.portfolioId, f.portfolio.id));
      const net = rows.reduce((s, t) => (t.side === 'BUY' ? s.plus(t.quantity) : s.minus(t.quantity)), new Exact(0));
      const held = await position(f.portfolio.id);
      expect(held.quantity).toBe(net.toFixed());
      expect(held.quantity).toBe(String(10 + buys - sells));
    });

    it('20 concurrent replays of one idempotency key record one trade and all return it', async () => {
      const f = await fixture();
      const results = await Promise.all(Array.from({ length: 20 }, () => f.trade({ quantity: '3', price: '7.5', idempotencyKey: 'once' })));
      const ids = new Set(results.map((r) => r.trade.id));
      expect(ids.size).toBe(1);
      expect(results.filter((r) => !r.replayed)).toHaveLength(1);
      expect(await tradeCount(f.portfolio.id)).toBe(1);
      expect(await position(f.portfolio.id)).toEqual({ quantity: '3', averageCost: '7.5', realizedPnl: '0' });
    });

    it('20 concurrent replays through the API return the same trade id', async () => {
      const f = await fixture();
      const input = f.input({ quantity: '2', price: '9', idempotencyKey: 'http-once' });
      const responses = await Promise.all(Array.from({ length: 20 }, () => record(f.owner.id, input)));
      expect(responses.flatMap(codes)).toEqual([]);
      expect(new Set(responses.map((r) => r.body.data.recordTrade.trade.id)).size).toBe(1);
      expect(await tradeCount(f.portfolio.id)).toBe(1);
      expect(await position(f.portfolio.id)).toEqual({ quantity: '2', averageCost: '9', realizedPnl: '0' });
    });
  });
});
