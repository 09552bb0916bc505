import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { ANONYMOUS, type Viewer } from '../src/admission/tokens.js';
import { trades, type InstrumentRow, type PortfolioRow, type TradeRow, type UserRow } from '../src/db/schema.js';
import { totalStatements } from '../src/db/sql-stats.js';
import { formatDecimal } from '../src/domain/decimal.js';
import { trimPage } from '../src/domain/pagination.js';
import { tradeDigest } from '../src/domain/trades.js';
import { groupByOrdinal } from '../src/loaders/batch.js';
import { forecastLists, latestForecasts } from '../src/loaders/forecasts.js';
import { createLoaders } from '../src/loaders/index.js';
import { instrumentsById, instrumentsBySymbol, latestPricesByInstrument, priceRangesByInstrument } from '../src/loaders/instruments.js';
import {
  openPositionsByPortfolio,
  portfolioCountsByOwner,
  portfolioPagesByOwner,
  portfoliosById,
  tradeCountsByPortfolio,
  tradePagesByPortfolio,
  type TradeCursor,
} from '../src/loaders/portfolios.js';
import { usersById } from '../src/loaders/users.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';

// Every loader is one SQL statement per batch, answers in key order, and does its own authorization.
// These tests call the loaders directly (no GraphQL) and count what they send.

const DEFAULT_MODEL = 'house-model';
const MISSING = 2_000_000_000;

/** Runs `fn` and returns what it resolved to and how many statements it sent (nothing else runs meanwhile). */
async function counted<T>(fn: () => Promise<T>): Promise<{ result: T; statements: number }> {
  const before = totalStatements();
  const result = await fn();
  return { result, statements: totalStatements() - before };
}

// numeric(38, 8) columns come back with all eight decimals; compare their canonical text
const dec = (value: string) => formatDecimal(value);
const priceOf = (p: { instrumentId: number; date: string; close: string } | null) => p && { ...p, close: dec(p.close) };

const cursorOf = (t: TradeRow): TradeCursor => ({ at: t.executedAt.toISOString(), id: t.id });

describe('loaders', () => {
  let database: TestDatabase;
  let owner: UserRow & { viewer: Viewer };
  let other: UserRow & { viewer: Viewer };
  let a: InstrumentRow; // ten daily closes 10..19 ending 2024-01-31
  let b: InstrumentRow; // two closes ending 2023-12-29
  let c: InstrumentRow; // no prices
  let p1: PortfolioRow; // owner: A closed (bought then sold), B open
  let p2: PortfolioRow; // owner: B open
  let p3: PortfolioRow; // other: A open
  let empty: PortfolioRow; // owner: no trades
  let ordered: PortfolioRow; // owner: trades for the newest-first ordering
  let orderedTrades: TradeRow[]; // in the order recorded

  const loadersOf = (viewer: Viewer) => createLoaders(database.db, viewer, { defaultModel: DEFAULT_MODEL });

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    owner = await s.user();
    other = await s.user();
    a = await s.instrument(['10', '11', '12', '13', '14', '15', '16', '17', '18', '19.25']);
    b = await s.instrument(['50', '55.5'], { last: '2023-12-29' });
    c = await s.instrument([]);

    p1 = await s.portfolio(owner, 'First');
    p2 = await s.portfolio(owner, 'Second');
    p3 = await s.portfolio(other, 'Not yours');
    empty = await s.portfolio(owner, 'Empty');
    ordered = await s.portfolio(owner, 'Ordered');
    await s.trade(owner.viewer, {
      portfolioId: p1.id,
      symbol: a.symbol,
      side: 'BUY',
      quantity: '10',
      price: '12',
      executedAt: new Date('2024-01-10T10:00:00Z'),
    });
    await s.trade(owner.viewer, {
      portfolioId: p1.id,
      symbol: b.symbol,
      side: 'BUY',
      quantity: '5',
      price: '50',
      executedAt: new Date('2024-01-11T10:00:00Z'),
    });
    await s.trade(owner.viewer, {
      portfolioId: p1.id,
      symbol: a.symbol,
      side: 'SELL',
      quantity: '10',
      price: '15',
      executedAt: new Date('2024-01-12T10:00:00Z'),
    });
    await s.trade(owner.viewer, {
      portfolioId: p2.id,
      symbol: b.symbol,
      side: 'BUY',
      quantity: '3',
      price: '51',
      executedAt: new Date('2024-01-13T10:00:00Z'),
    });
    await s.trade(owner.viewer, {
      portfolioId: p2.id,
      symbol: a.symbol,
      side: 'BUY',
      quantity: '2.5',
      price: '11',
      executedAt: new Date('2024-01-14T10:00:00Z'),
    });
    await s.trade(other.viewer, {
      portfolioId: p3.id,
      symbol: a.symbol,
      side: 'BUY',
      quantity: '1',
      price: '10',
      executedAt: new Date('2024-01-15T10:00:00Z'),
    });

    orderedTrades = [];
    for (const at of ['2024-01-01T10:00:00Z', '2024-01-02T10:00:00Z', '2024-01-02T10:00:00Z', '2024-01-03T10:00:00Z', '2024-01-01T09:00:00Z']) {
      const { trade } = await s.trade(owner.viewer, {
        portfolioId: ordered.id,
        symbol: a.symbol,
        side: 'BUY',
        quantity: '1',
        price: '10',
        executedAt: new Date(at),
      });
      orderedTrades.push(trade);
    }

    // the default model: version 1 inactive (with a newer forecast that must never be used), version 2 active;
    // and another model, active, with the newest forecast of all
    const v1 = await s.model(DEFAULT_MODEL, '1', false);
    const v2 = await s.model(DEFAULT_MODEL, '2', true);
    const rival = await s.model('other-model', '1', true);
    await s.forecast(v1.id, a.id, 21, '2024-02-01', 0.9);
    await s.forecast(v1.id, a.id, 5, '2024-02-01', 0.9);
    await s.forecast(v2.id, a.id, 21, '2024-01-31', 0.02);
    await s.forecast(v2.id, a.id, 21, '2024-01-30', 0.01);
    await s.forecast(v2.id, a.id, 63, '2024-01-31', 0.05);
    await s.forecast(rival.id, a.id, 21, '2024-02-05', 0.7);
    await s.forecast(rival.id, b.id, 1, '2023-12-29', 0.3);
  });
  afterAll(async () => {
    await database?.destroy();
  });

  describe('instruments (public)', () => {
    it('instrumentById: one statement, key order, null for missing and for duplicates alike', async () => {
      const l = loadersOf(ANONYMOUS);
      const { result, statements } = await counted(() => Promise.all([c.id, MISSING, a.id, b.id, a.id].map((id) => l.instrumentById.load(id))));
      expect(statements).toBe(1);
      expect(result.map((r) => r?.symbol ?? null)).toEqual([c.symbol, null, a.symbol, b.symbol, a.symbol]);
      expect(result[2]).toEqual(a);
    });

    it('instrumentBySymbol: one statement, key order, null for unknown symbols', async () => {
      const l = loadersOf(ANONYMOUS);
      const { result, statements } = await counted(() => Promise.all([b.symbol, 'NOPE', a.symbol, b.symbol].map((s) => l.instrumentBySymbol.load(s))));
      expect(statements).toBe(1);
      expect(result.map((r) => r?.id ?? null)).toEqual([b.id, null, a.id, b.id]);
    });

    it('instrumentBySymbol primes instrumentById: no further statement', async () => {
      const l = loadersOf(owner.viewer);
      const first = await counted(() => Promise.all([a.symbol, b.symbol].map((s) => l.instrumentBySymbol.load(s))));
      expect(first.statements).toBe(1);
      const then = await counted(() => Promise.all([a.id, b.id].map((id) => l.instrumentById.load(id))));
      expect(then.statements).toBe(0);
      expect(then.result).toEqual([a, b]);
      // an id it did not find by symbol still needs its own statement
      const more = await counted(() => l.instrumentById.load(c.id));
      expect(more.statements).toBe(1);
      expect(more.result?.symbol).toBe(c.symbol);
    });

    it('latestPrice: one statement, the newest date per instrument, null without prices', async () => {
      const l = loadersOf(ANONYMOUS);
      const { result, statements } = await counted(() => Promise.all([b.id, c.id, a.id, MISSING, b.id].map((id) => l.latestPrice.load(id))));
      expect(statements).toBe(1);
      expect(result.map(priceOf)).toEqual([
        { instrumentId: b.id, date: '2023-12-29', close: '55.5' },
        null,
        { instrumentId: a.id, date: '2024-01-31', close: '19.25' },
        null,
        { instrumentId: b.id, date: '2023-12-29', close: '55.5' },
      ]);
    });

    it('priceRange: one statement for many ranges, honouring from, to and first (the latest `first`, oldest first)', async () => {
      const l = loadersOf(ANONYMOUS);
      const keys = [
        { instrumentId: a.id, from: '2024-01-24', to: '2024-01-29', first: 3 }, // six dates match, latest three
        { instrumentId: a.id, from: '', to: '', first: 2 },
        { instrumentId: a.id, from: '2024-01-30', to: '', first: 100 },
        { instrumentId: a.id, from: '', to: '2024-01-23', first: 100 },
        { instrumentId: b.id, from: '', to: '', first: 10 },
        { instrumentId: c.id, from: '', to: '', first: 10 },
        { instrumentId: MISSING, from: '', to: '', first: 10 },
        { instrumentId: a.id, from: '2024-02-01', to: '', first: 10 },
        { instrumentId: a.id, from: '', to: '', first: 2 }, // a duplicate of the second key
      ];
      const { result, statements } = await counted(() => Promise.all(keys.map((k) => l.priceRange.load(k))));
      expect(statements).toBe(1);
      const dates = result.map((list) => list.map((p) => p.date));
      expect(dates).toEqual([
        ['2024-01-27', '2024-01-28', '2024-01-29'],
        ['2024-01-30', '2024-01-31'],
        ['2024-01-30', '2024-01-31'],
        ['2024-01-22', '2024-01-23'],
        ['2023-12-28', '2023-12-29'],
        [],
        [],
        [],
        ['2024-01-30', '2024-01-31'],
      ]);
      expect(result[1].map(priceOf)).toEqual([
        { instrumentId: a.id, date: '2024-01-30', close: '18' },
        { instrumentId: a.id, date: '2024-01-31', close: '19.25' },
      ]);
    });
  });

  describe('forecasts (public)', () => {
    it('latestForecast: the active version of the default model only, newest asOf, at the asked horizon', async () => {
      const l = loadersOf(ANONYMOUS);
      const keys = [
        { instrumentId: a.id, horizonDays: 21 },
        { instrumentId: a.id, horizonDays: 63 },
        { instrumentId: a.id, horizonDays: 5 }, // only the inactive version has one
        { instrumentId: b.id, horizonDays: 1 }, // only another model has one
        { instrumentId: MISSING, horizonDays: 21 },
        { instrumentId: a.id, horizonDays: 21 },
      ];
      const { result, statements } = await counted(() => Promise.all(keys.map((k) => l.latestForecast.load(k))));
      expect(statements).toBe(1);
      expect(result.map((f) => (f ? [f.model.name, f.model.version, f.asOf, f.horizonDays, f.expectedReturn] : null))).toEqual([
        [DEFAULT_MODEL, '2', '2024-01-31', 21, 0.02],
        [DEFAULT_MODEL, '2', '2024-01-31', 63, 0.05],
        null,
        null,
        null,
        [DEFAULT_MODEL, '2', '2024-01-31', 21, 0.02],
      ]);
      const f = result[0]!;
      expect(f.instrumentId).toBe(a.id);
      expect(f.model.active).toBe(true);
      expect(f.lower).toBeCloseTo(0.02 - 0.1, 12);
      expect(f.upper).toBeCloseTo(0.02 + 0.1, 12);
      expect(f.generatedAt).toBeInstanceOf(Date);
      expect(Number.isNaN(f.generatedAt.getTime())).toBe(false);
    });

    it('latestForecast follows whichever model the loaders are made for', async () => {
      const l = createLoaders(database.db, ANONYMOUS, { defaultModel: 'other-model' });
      const { result, statements } = await counted(() =>
        Promise.all(
          [
            { instrumentId: a.id, horizonDays: 21 },
            { instrumentId: b.id, horizonDays: 1 },
          ].map((k) => l.latestForecast.load(k)),
        ),
      );
      expect(statements).toBe(1);
      expect(result.map((f) => f && [f.model.name, f.asOf, f.expectedReturn])).toEqual([
        ['other-model', '2024-02-05', 0.7],
        ['other-model', '2023-12-29', 0.3],
      ]);
    });

    it('forecastList: one statement; filters by model and horizon, active versions unless one is named, newest first', async () => {
      const l = loadersOf(ANONYMOUS);
      const keys = [
        { instrumentId: a.id, model: '', version: '', horizonDays: 0, first: 20 },
        { instrumentId: a.id, model: DEFAULT_MODEL, version: '', horizonDays: 21, first: 20 },
        { instrumentId: a.id, model: 'other-model', version: '', horizonDays: 0, first: 20 },
        { instrumentId: a.id, model: '', version: '', horizonDays: 0, first: 2 },
        { instrumentId: a.id, model: DEFAULT_MODEL, version: '', horizonDays: 5, first: 20 }, // only inactive forecasts
        { instrumentId: a.id, model: 'no-such-model', version: '', horizonDays: 0, first: 20 },
        { instrumentId: c.id, model: '', version: '', horizonDays: 0, first: 20 },
        { instrumentId: MISSING, model: '', version: '', horizonDays: 0, first: 20 },
        { instrumentId: a.id, model: '', version: '', horizonDays: 63, first: 20 },
        { instrumentId: a.id, model: DEFAULT_MODEL, version: '1', horizonDays: 0, first: 20 }, // a named, inactive version
        { instrumentId: a.id, model: DEFAULT_MODEL, version: '2', horizonDays: 63, first: 20 }, // named and active
        { instrumentId: a.id, model: 'other-model', version: '2', horizonDays: 0, first: 20 }, // no such version
      ];
      const { result, statements } = await counted(() => Promise.all(keys.map((k) => l.forecastList.load(k))));
      expect(statements).toBe(1);
      const shown = result.map((list) => list.map((f) => `${f.model.name}@${f.model.version} ${f.asOf} h${f.horizonDays}`));
      expect(shown).toEqual([
        ['other-model@1 2024-02-05 h21', 'house-model@2 2024-01-31 h21', 'house-model@2 2024-01-31 h63', 'house-model@2 2024-01-30 h21'],
        ['house-model@2 2024-01-31 h21', 'house-model@2 2024-01-30 h21'],
        ['other-model@1 2024-02-05 h21'],
        ['other-model@1 2024-02-05 h21', 'house-model@2 2024-01-31 h21'],
        [],
        [],
        [],
        [],
        ['house-model@2 2024-01-31 h63'],
        ['house-model@1 2024-02-01 h5', 'house-model@1 2024-02-01 h21'],
        ['house-model@2 2024-01-31 h63'],
        [],
      ]);
      expect(
        result
          .slice(0, 9)
          .flat()
          .every((f) => f.model.active && f.instrumentId === a.id),
      ).toBe(true);
      expect(result[9].every((f) => !f.model.active)).toBe(true);
    });
  });

  describe('users and portfolios (private)', () => {
    it('userById: the viewer only, in one statement; other ids are null without SQL', async () => {
      const l = loadersOf(owner.viewer);
      const { result, statements } = await counted(() => Promise.all([other.id, owner.id, MISSING, owner.id].map((id) => l.userById.load(id))));
      expect(statements).toBe(1);
      expect(result.map((u) => u?.email ?? null)).toEqual([null, owner.email, null, owner.email]);

      const fresh = loadersOf(owner.viewer);
      const none = await counted(() => Promise.all([other.id, MISSING].map((id) => fresh.userById.load(id))));
      expect(none.statements).toBe(0);
      expect(none.result).toEqual([null, null]);
    });

    it('portfolioById: one statement, key order, null for missing and for another user’s portfolio', async () => {
      const l = loadersOf(owner.viewer);
      const { result, statements } = await counted(() => Promise.all([p2.id, p3.id, MISSING, p1.id, p2.id].map((id) => l.portfolioById.load(id))));
      expect(statements).toBe(1);
      expect(result.map((p) => p?.id ?? null)).toEqual([p2.id, null, null, p1.id, p2.id]);
      expect(result[0]).toMatchObject({ id: p2.id, ownerId: owner.id, name: 'Second', baseCurrency: 'USD' });

      // the other user sees their own and not the owner's
      const theirLoaders = loadersOf(other.viewer);
      const theirs = await counted(() => Promise.all([p1.id, p3.id].map((id) => theirLoaders.portfolioById.load(id))));
      expect(theirs.statements).toBe(1);
      expect(theirs.result.map((p) => p?.id ?? null)).toEqual([null, p3.id]);
    });

    it('portfolioPage: one statement for many pages, oldest first, empty for another owner', async () => {
      const l = loadersOf(owner.viewer);
      const keys = [
        { parent: owner.id, first: 2, after: null },
        { parent: owner.id, first: 2, after: p2.id },
        { parent: owner.id, first: 10, after: ordered.id },
        { parent: other.id, first: 10, after: null },
        { parent: owner.id, first: 0, after: null },
        { parent: MISSING, first: 10, after: null },
        { parent: owner.id, first: 100, after: null },
      ];
      const { result, statements } = await counted(() => Promise.all(keys.map((k) => l.portfolioPage.load(k))));
      expect(statements).toBe(1);
      expect(result.map((page) => [page.rows.map((p) => p.id), page.hasNextPage])).toEqual([
        [[p1.id, p2.id], true],
        [[empty.id, ordered.id], false],
        [[], false],
        [[], false],
        [[], true], // first: 0 with portfolios after it: another page follows (Relay)
        [[], false],
        [[p1.id, p2.id, empty.id, ordered.id], false],
      ]);
      expect(result[0].rows[0]).toMatchObject({ id: p1.id, ownerId: owner.id, name: 'First', baseCurrency: 'USD' });
      expect(result[0].rows[0].createdAt).toBeInstanceOf(Date);
    });

    it('portfolioCount: one statement, the viewer’s count and 0 for anyone else', async () => {
      const l = loadersOf(owner.viewer);
      const { result, statements } = await counted(() => Promise.all([other.id, owner.id, MISSING].map((id) => l.portfolioCount.load(id))));
      expect(statements).toBe(1);
      expect(result).toEqual([0, 4, 0]);
    });

    it('openPositions: one statement, open positions only in the order opened, [] for another user’s portfolio', async () => {
      const l = loadersOf(owner.viewer);
      const { result, statements } = await counted(() => Promise.all([p2.id, p3.id, empty.id, p1.id, MISSING, p2.id].map((id) => l.openPositions.load(id))));
      expect(statements).toBe(1);
      const shown = result.map((list) => list.map((p) => [p.instrumentId, dec(p.quantity), dec(p.averageCost)]));
      expect(shown).toEqual([
        [
          [b.id, '3', '51'],
          [a.id, '2.5', '11'],
        ],
        [],
        [],
        [[b.id, '5', '50']], // A was sold out: closed, not listed
        [],
        [
          [b.id, '3', '51'],
          [a.id, '2.5', '11'],
        ],
      ]);
    });

    it('tradeCount: one statement, 0 for another user’s portfolio and for missing ones', async () => {
      const l = loadersOf(owner.viewer);
      const { result, statements } = await counted(() => Promise.all([p1.id, p3.id, ordered.id, empty.id, MISSING, p1.id].map((id) => l.tradeCount.load(id))));
      expect(statements).toBe(1);
      expect(result).toEqual([3, 0, 5, 0, 0, 3]);
    });

    it('tradePage: one statement for many pages, empty for another user’s portfolio', async () => {
      const l = loadersOf(owner.viewer);
      const keys = [
        { parent: p1.id, first: 10, after: null },
        { parent: p3.id, first: 10, after: null },
        { parent: p2.id, first: 1, after: null },
        { parent: empty.id, first: 10, after: null },
        { parent: MISSING, first: 10, after: null },
        { parent: p1.id, first: 0, after: null },
      ];
      const { result, statements } = await counted(() => Promise.all(keys.map((k) => l.tradePage.load(k))));
      expect(statements).toBe(1);
      expect(result.map((page) => [page.rows.map((t) => [t.side, dec(t.quantity)]), page.hasNextPage])).toEqual([
        [
          [
            ['SELL', '10'],
            ['BUY', '5'],
            ['BUY', '10'],
          ],
          false,
        ],
        [[], false],
        [[['BUY', '2.5']], true],
        [[], false],
        [[], false],
        [[], true], // first: 0 with trades after it: another page follows (Relay)
      ]);
      const [trade] = result[2].rows;
      expect(trade).toMatchObject({ portfolioId: p2.id, instrumentId: a.id, side: 'BUY' });
      expect([dec(trade.quantity), dec(trade.price)]).toEqual(['2.5', '11']);
      expect(trade.executedAt.toISOString()).toBe('2024-01-14T10:00:00.000Z');
    });

    it('tradePage: newest first by executedAt, then id, across pages', async () => {
      const [t1, t2, t3, t4, t5] = orderedTrades;
      const expected = [t4, t3, t2, t1, t5].map((t) => t.id); // t2 and t3 share a time: the higher id first
      const seen: number[] = [];
      let after: TradeCursor | null = null;
      let pages = 0;
      for (;;) {
        const l = loadersOf(owner.viewer);
        const { result, statements } = await counted(() => l.tradePage.load({ parent: ordered.id, first: 2, after }));
        expect(statements).toBe(1);
        seen.push(...result.rows.map((t) => t.id));
        pages++;
        if (!result.hasNextPage) break;
        after = cursorOf(result.rows[result.rows.length - 1]);
      }
      expect(seen).toEqual(expected);
      expect(pages).toBe(3);
    });

    it('tradePage: a page boundary loses no trade whose time has sub-millisecond digits', async () => {
      // recordTrade's default executedAt is the database's now(), which keeps microseconds, while a
      // cursor is made from the row's JS Date (milliseconds). Two trades in the same millisecond:
      const s = seed(database.db);
      const someone = await s.user(); // its own user, so the other tests' counts stay as they are
      const portfolio = await s.portfolio(someone);
      const inserted: TradeRow[] = [];
      for (const [at, key] of [
        ['2024-03-01 10:00:00.000300+00', 'us-1'],
        ['2024-03-01 10:00:00.000700+00', 'us-2'],
      ]) {
        const [row] = await database.db
          .insert(trades)
          .values({
            portfolioId: portfolio.id,
            instrumentId: a.id,
            side: 'BUY',
            quantity: '1',
            price: '10',
            executedAt: sql`${at}::timestamptz`,
            idempotencyKey: key,
            requestDigest: tradeDigest(a.symbol, 'BUY', '1', '10', null),
          })
          .returning();
        inserted.push(row);
      }
      const seen: number[] = [];
      let after: TradeCursor | null = null;
      for (let pages = 0; pages < 5; pages++) {
        const page = await loadersOf(someone.viewer).tradePage.load({ parent: portfolio.id, first: 1, after });
        seen.push(...page.rows.map((t) => t.id));
        if (!page.hasNextPage || page.rows.length === 0) break;
        after = cursorOf(page.rows[page.rows.length - 1]);
      }
      expect(seen).toEqual([inserted[1].id, inserted[0].id]);
    });
  });

  describe('the anonymous viewer', () => {
    it('gets null or empty from every private loader and sends no statement at all', async () => {
      const l = loadersOf(ANONYMOUS);
      const { result, statements } = await counted(async () => ({
        users: await Promise.all([owner.id, other.id].map((id) => l.userById.load(id))),
        portfolios: await Promise.all([p1.id, p3.id].map((id) => l.portfolioById.load(id))),
        pages: await Promise.all([owner.id, other.id, 0].map((parent) => l.portfolioPage.load({ parent, first: 10, after: null }))),
        counts: await Promise.all([owner.id, other.id, 0].map((id) => l.portfolioCount.load(id))),
        positions: await Promise.all([p1.id, p3.id].map((id) => l.openPositions.load(id))),
        trades: await Promise.all([p1.id, p3.id].map((parent) => l.tradePage.load({ parent, first: 10, after: null }))),
        tradeCounts: await Promise.all([p1.id, p3.id].map((id) => l.tradeCount.load(id))),
      }));
      expect(statements).toBe(0);
      expect(result).toEqual({
        users: [null, null],
        portfolios: [null, null],
        pages: [
          { rows: [], hasNextPage: false },
          { rows: [], hasNextPage: false },
          { rows: [], hasNextPage: false },
        ],
        counts: [0, 0, 0],
        positions: [[], []],
        trades: [
          { rows: [], hasNextPage: false },
          { rows: [], hasNextPage: false },
        ],
        tradeCounts: [0, 0],
      });
    });

    it('still reads public data', async () => {
      const l = loadersOf(ANONYMOUS);
      const { result, statements } = await counted(() => Promise.all([l.instrumentById.load(a.id), l.latestPrice.load(a.id)]));
      expect(statements).toBe(2);
      expect(result[0]?.symbol).toBe(a.symbol);
      expect(dec(result[1]!.close)).toBe('19.25');
    });
  });

  it('sends one statement per loader when every loader is used in the same tick', async () => {
    const l = loadersOf(owner.viewer);
    const { statements } = await counted(() =>
      Promise.all([
        l.userById.load(owner.id),
        l.portfolioById.load(p1.id),
        l.portfolioPage.load({ parent: owner.id, first: 5, after: null }),
        l.portfolioCount.load(owner.id),
        l.openPositions.load(p1.id),
        l.tradePage.load({ parent: p1.id, first: 5, after: null }),
        l.tradeCount.load(p1.id),
        l.instrumentById.load(a.id),
        l.instrumentBySymbol.load(b.symbol),
        l.latestPrice.load(a.id),
        l.priceRange.load({ instrumentId: a.id, from: '', to: '', first: 5 }),
        l.latestForecast.load({ instrumentId: a.id, horizonDays: 21 }),
        l.forecastList.load({ instrumentId: a.id, model: '', version: '', horizonDays: 0, first: 5 }),
      ]),
    );
    expect(statements).toBe(13);
  });

  // DataLoader de-duplicates keys before they reach a batch function; the batch functions must still
  // answer one result per key, in key order, when handed duplicates (e.g. with caching turned off).
  describe('batch functions given duplicate keys', () => {
    it('answer one result per key, in key order, in one statement', async () => {
      const db = database.db;
      const v = owner.viewer;
      const { result, statements } = await counted(async () => ({
        byId: await instrumentsById(db)([a.id, MISSING, a.id]),
        bySymbol: await instrumentsBySymbol(db)([b.symbol, b.symbol, 'NOPE']),
        latest: await latestPricesByInstrument(db)([b.id, b.id, c.id]),
        ranges: await priceRangesByInstrument(db)([
          { instrumentId: b.id, from: '', to: '', first: 1 },
          { instrumentId: b.id, from: '', to: '', first: 1 },
        ]),
        users: await usersById(db, v)([owner.id, owner.id, other.id]),
        portfolios: await portfoliosById(db, v)([p1.id, p3.id, p1.id]),
        pages: await portfolioPagesByOwner(
          db,
          v,
        )([
          { parent: owner.id, first: 1, after: null },
          { parent: owner.id, first: 1, after: null },
        ]),
        counts: await portfolioCountsByOwner(db, v)([owner.id, owner.id]),
        positions: await openPositionsByPortfolio(db, v, DEFAULT_MODEL, new Set())([p1.id, p1.id, p3.id]),
        tradePages: await tradePagesByPortfolio(
          db,
          v,
        )([
          { parent: p2.id, first: 1, after: null },
          { parent: p2.id, first: 1, after: null },
        ]),
        tradeCounts: await tradeCountsByPortfolio(db, v)([p2.id, p2.id]),
        latestForecast: await latestForecasts(
          db,
          DEFAULT_MODEL,
        )([
          { instrumentId: a.id, horizonDays: 63 },
          { instrumentId: a.id, horizonDays: 63 },
        ]),
        forecastList: await forecastLists(db)([
          { instrumentId: a.id, model: 'other-model', version: '', horizonDays: 0, first: 5 },
          { instrumentId: a.id, model: 'other-model', version: '', horizonDays: 0, first: 5 },
        ]),
      }));
      expect(statements).toBe(13);
      expect(result.byId.map((r) => r?.id ?? null)).toEqual([a.id, null, a.id]);
      expect(result.bySymbol.map((r) => r?.id ?? null)).toEqual([b.id, b.id, null]);
      expect(result.latest.map((p) => (p ? dec(p.close) : null))).toEqual(['55.5', '55.5', null]);
      expect(result.ranges.map((list) => list.map((p) => p.date))).toEqual([['2023-12-29'], ['2023-12-29']]);
      expect(result.users.map((u) => u?.id ?? null)).toEqual([owner.id, owner.id, null]);
      expect(result.portfolios.map((p) => p?.id ?? null)).toEqual([p1.id, null, p1.id]);
      expect(result.pages.map((pg) => pg.rows.map((p) => p.id))).toEqual([[p1.id], [p1.id]]);
      expect(result.counts).toEqual([4, 4]);
      expect(result.positions.map((list) => list.map((p) => p.instrumentId))).toEqual([[b.id], [b.id], []]);
      expect(result.tradePages.map((pg) => pg.rows.map((t) => dec(t.quantity)))).toEqual([['2.5'], ['2.5']]);
      expect(result.tradeCounts).toEqual([2, 2]);
      expect(result.latestForecast.map((f) => f?.expectedReturn ?? null)).toEqual([0.05, 0.05]);
      expect(result.forecastList.map((list) => list.map((f) => f.expectedReturn))).toEqual([[0.7], [0.7]]);
    });
  });
});

describe('groupByOrdinal and trimPage (the skeleton of the paged loaders)', () => {
  it('groups rows under the key at their 1-based ordinal, whether the driver gives it as text or number', () => {
    const keys = ['a', 'b', 'c'];
    const found = [
      { ord: '1', v: 1 },
      { ord: 3, v: 2 },
      { ord: '1', v: 3 },
    ];
    expect(groupByOrdinal(keys, found, (r) => r.v)).toEqual([[1, 3], [], [2]]);
  });

  it('cuts a page of `first` from rows fetched with one extra, which says a next page exists', () => {
    expect(trimPage([1, 2, 3], 2)).toEqual({ rows: [1, 2], hasNextPage: true });
    expect(trimPage([1, 2], 2)).toEqual({ rows: [1, 2], hasNextPage: false });
    expect(trimPage([1], 0)).toEqual({ rows: [], hasNextPage: true });
    expect(trimPage([], 0)).toEqual({ rows: [], hasNextPage: false });
  });
});
