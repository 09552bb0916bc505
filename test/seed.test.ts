import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { ANONYMOUS } from '../src/admission/tokens.js';
import { rows, type Db } from '../src/db/client.js';
import { positions, type PositionRow } from '../src/db/schema.js';
import { isDemoSeeded, seedDemo } from '../src/tools/seed/demo.js';
import { SCALE_SHAPE, seedScale } from '../src/tools/seed/scale.js';
import { totalStatements } from '../src/db/sql-stats.js';
import { Decimal } from '../src/domain/decimal.js';
import { applyTrade, type Holding, type TradeSide } from '../src/domain/trades.js';
import { HORIZONS } from '../src/domain/forecasting/generate.js';
import { EWMA } from '../src/domain/forecasting/models/ewma.js';
import { MODELS } from '../src/domain/forecasting/models/index.js';
import { createLoaders } from '../src/loaders/index.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

// The demo data set is part of the contract (CONTRACT.md, "The demo data set"); seeding it twice, or
// the load-test data on top of it twice, must change nothing.

const SEEDING = 180_000;

/** Row counts of every table of the product (the public schema), by table name. */
async function tableCounts(db: Db): Promise<Record<string, number>> {
  const tables = await rows<{ table_name: string }>(
    db,
    sql`select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`,
  );
  const counts: Record<string, number> = {};
  for (const { table_name } of tables) {
    const [row] = await rows<{ n: number }>(db, sql`select count(*)::int as n from ${sql.identifier(table_name)}`);
    counts[table_name] = Number(row.n);
  }
  return counts;
}

/** Every position as stored, in a stable order; numeric columns as their exact text. */
async function positionSnapshot(db: Db): Promise<PositionRow[]> {
  const found = await db.select().from(positions).orderBy(positions.portfolioId, positions.instrumentId);
  return found.map(({ updatedAt: _updated, ...rest }) => rest as PositionRow);
}

/**
 * Whether a stored position is the holding the trades imply: every field the trade domain carries
 * (quantity, average cost, realized P&L, and whatever else Holding has) is numerically equal.
 */
function differences(stored: PositionRow | undefined, implied: Holding | Error | undefined): string[] {
  if (!stored) return ['no position stored'];
  if (!implied) return ['no trades imply this position'];
  if (implied instanceof Error) return [implied.message];
  const row = stored as unknown as Record<string, string>;
  return Object.entries(implied)
    .filter(([field, value]) => row[field] === undefined || !new Decimal(row[field]).eq(value))
    .map(([field, value]) => `${field}: stored ${row[field]}, implied ${value}`);
}

interface TradeSqlRow {
  id: number;
  portfolio_id: number;
  instrument_id: number;
  side: TradeSide;
  quantity: string;
  price: string;
}

/** Replays trades (in the order given) with the trade domain's own arithmetic, per (portfolio, instrument). */
function replay(list: TradeSqlRow[]): Map<string, Holding | Error> {
  const holdings = new Map<string, Holding | Error>();
  for (const t of list) {
    const key = `${t.portfolio_id}/${t.instrument_id}`;
    const current = holdings.get(key) ?? null;
    if (current instanceof Error) continue;
    try {
      holdings.set(key, applyTrade(current, t.side, t.quantity, t.price));
    } catch (e) {
      // e.g. a sale dated before the buys that pay for it: the trades cannot have happened so
      holdings.set(key, new Error(`trade ${t.id}: ${(e as Error).message}`));
    }
  }
  return holdings;
}

describe('seeding', () => {
  let database: TestDatabase;
  let db: Db;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = database.db;
  });
  afterAll(async () => {
    await database?.destroy();
  });

  describe('seedDemo', () => {
    beforeAll(async () => {
      expect(await isDemoSeeded(db)).toBe(false);
      await seedDemo(db);
    }, SEEDING);

    it('marks the database as seeded', async () => {
      expect(await isDemoSeeded(db)).toBe(true);
    });

    it('creates the demo instruments', async () => {
      const found = await rows<{ symbol: string; currency: string }>(db, sql`select symbol, currency from instruments order by symbol`);
      expect(found.map((i) => i.symbol)).toEqual(['AAPL', 'AMZN', 'GOOG', 'IBM', 'MSFT', 'SPX']);
      expect(found.every((i) => i.currency === 'USD')).toBe(true);
    });

    it('gives each instrument its last row as latest price (AAPL 223.02 on 2010-03-01, SPX 2874.56 on 2020-04-17)', async () => {
      const ids = new Map((await rows<{ id: number; symbol: string }>(db, sql`select id, symbol from instruments`)).map((r) => [r.symbol, r.id]));
      const loaders = createLoaders(db, ANONYMOUS, { defaultModel: EWMA.name });
      const before = totalStatements();
      const [aapl, spx, msft] = await Promise.all(['AAPL', 'SPX', 'MSFT'].map((s) => loaders.latestPrice.load(ids.get(s)!)));
      expect(totalStatements() - before).toBe(1);
      expect(aapl?.date).toBe('2010-03-01');
      expect(Number(aapl?.close)).toBe(223.02);
      expect(spx?.date).toBe('2020-04-17');
      expect(Number(spx?.close)).toBeCloseTo(2874.56, 2); // the file's 2874.560059, kept or rounded
      expect(msft?.date).toBe('2010-03-01');
      // monthly closes for the stocks, daily for the index
      const [counts] = await rows<{ aapl: number; spx: number }>(
        db,
        sql`select count(*) filter (where i.symbol = 'AAPL')::int as aapl, count(*) filter (where i.symbol = 'SPX')::int as spx
            from prices p join instruments i on i.id = p.instrument_id`,
      );
      expect(Number(counts.aapl)).toBeGreaterThan(100);
      expect(Number(counts.spx)).toBeGreaterThan(4000);
    });

    it('gives alice, bob and carol at least two portfolios each, with open positions', async () => {
      const owners = await rows<{ email: string; portfolios: number }>(
        db,
        sql`select u.email, count(distinct p.id)::int as portfolios
            from users u join portfolios p on p.owner_id = u.id join positions x on x.portfolio_id = p.id and x.quantity > 0
            group by u.email order by u.email`,
      );
      expect(owners.map((o) => o.email)).toEqual(['alice@example.com', 'bob@example.com', 'carol@example.com']);
      for (const o of owners) expect(Number(o.portfolios)).toBeGreaterThanOrEqual(2);
      // and no portfolio of theirs is empty
      const [empty] = await rows<{ n: number }>(
        db,
        sql`select count(*)::int as n from portfolios p where not exists (select 1 from positions x where x.portfolio_id = p.id and x.quantity > 0)`,
      );
      expect(Number(empty.n)).toBe(0);
    });

    it('builds the positions by recording trades: replaying the trades gives the positions', async () => {
      const traded = await rows<TradeSqlRow>(
        db,
        sql`select id::int as id, portfolio_id, instrument_id, side, quantity::text as quantity, price::text as price from trades order by executed_at, id`,
      );
      expect(traded.length).toBeGreaterThan(0);
      const expected = replay(traded);
      const held = await positionSnapshot(db);
      expect(held).toHaveLength(expected.size);
      for (const p of held)
        expect(differences(p, expected.get(`${p.portfolioId}/${p.instrumentId}`)), `position ${p.portfolioId}/${p.instrumentId}`).toEqual([]);
    });

    it('forecasts every instrument at horizons 1, 5, 21 and 63 from the active default model, as of its last price', async () => {
      expect(HORIZONS).toEqual([1, 5, 21, 63]);
      const instruments = await rows<{ id: number; symbol: string }>(db, sql`select id, symbol from instruments order by symbol`);
      const loaders = createLoaders(db, ANONYMOUS, { defaultModel: EWMA.name });
      const keys = instruments.flatMap((i) => HORIZONS.map((horizonDays) => ({ instrumentId: i.id, horizonDays })));
      const before = totalStatements();
      const found = await Promise.all(keys.map((k) => loaders.latestForecast.load(k)));
      expect(totalStatements() - before).toBe(1);
      expect(found).toHaveLength(24);
      for (const [n, f] of found.entries()) {
        expect(f, `${instruments[Math.floor(n / 4)].symbol} at ${keys[n].horizonDays}`).not.toBeNull();
        expect(f!.model).toEqual({ name: EWMA.name, version: EWMA.version, active: true });
        expect(f!.horizonDays).toBe(keys[n].horizonDays);
        expect(f!.lower).toBeLessThan(f!.expectedReturn);
        expect(f!.expectedReturn).toBeLessThan(f!.upper);
      }
      const asOf = new Map(found.map((f) => [f!.instrumentId, f!.asOf]));
      const symbolOf = new Map(instruments.map((i) => [i.id, i.symbol]));
      expect(Object.fromEntries([...asOf].map(([id, d]) => [symbolOf.get(id), d]))).toEqual({
        AAPL: '2010-03-01',
        AMZN: '2010-03-01',
        GOOG: '2010-03-01',
        IBM: '2010-03-01',
        MSFT: '2010-03-01',
        SPX: '2020-04-17',
      });
    });

    it('stores forecasts from every built-in model, each active, for every instrument and horizon', async () => {
      const found = await rows<{ name: string; version: string; active: boolean; n: number }>(
        db,
        sql`select m.name, m.version, m.active, count(f.id)::int as n
            from forecast_models m left join forecasts f on f.model_id = m.id group by m.id order by m.name`,
      );
      expect(found.map((m) => ({ ...m, n: Number(m.n) }))).toEqual(
        Object.values(MODELS)
          .map((m) => ({ name: m.name, version: m.version, active: true, n: 6 * 4 }))
          .sort((a, b) => a.name.localeCompare(b.name)),
      );
    });

    it(
      'changes nothing when run a second time',
      async () => {
        const counts = await tableCounts(db);
        const held = await positionSnapshot(db);
        const tradeIds = await rows<{ id: number }>(db, sql`select id::int as id from trades order by id`);
        expect(Object.keys(counts)).toEqual(
          expect.arrayContaining(['app_meta', 'forecast_models', 'forecasts', 'instruments', 'portfolios', 'positions', 'prices', 'trades', 'users']),
        );
        await seedDemo(db);
        expect(await tableCounts(db)).toEqual(counts);
        expect(await positionSnapshot(db)).toEqual(held);
        expect(await rows<{ id: number }>(db, sql`select id::int as id from trades order by id`)).toEqual(tradeIds);
        expect(await isDemoSeeded(db)).toBe(true);
      },
      SEEDING,
    );
  });

  describe('seedScale', () => {
    let before: Record<string, number>;
    let after: Record<string, number>;

    beforeAll(async () => {
      before = await tableCounts(db);
      await seedScale(db, 1);
      after = await tableCounts(db);
    }, SEEDING);

    /** The load users' trades, in the order given. */
    const loadTrades = (order: 'recorded' | 'executed') =>
      rows<TradeSqlRow>(
        db,
        sql`select t.id::int as id, t.portfolio_id, t.instrument_id, t.side, t.quantity::text as quantity, t.price::text as price
            from trades t join portfolios p on p.id = t.portfolio_id join users u on u.id = p.owner_id
            where u.email like 'load-%'
            order by ${order === 'recorded' ? sql`t.id` : sql`t.executed_at, t.id`}`,
      );

    it('adds 25 users, 100 portfolios and 2,000 positions, built from their trades', () => {
      expect(SCALE_SHAPE).toMatchObject({ usersPerUnit: 25, portfoliosPerUser: 4, positionsPerPortfolio: 20 });
      expect(after.users - before.users).toBe(25);
      expect(after.portfolios - before.portfolios).toBe(100);
      expect(after.positions - before.positions).toBe(2000);
      // two or three trades per position
      expect(after.trades - before.trades).toBeGreaterThanOrEqual(4000);
      expect(after.trades - before.trades).toBeLessThanOrEqual(6000);
    });

    it('gives every load user 4 portfolios of 20 positions', async () => {
      const shape = await rows<{ portfolios: number; positions: number }>(
        db,
        sql`select count(distinct p.id)::int as portfolios, count(x.id)::int as positions
            from users u join portfolios p on p.owner_id = u.id left join positions x on x.portfolio_id = p.id
            where u.email like 'load-%' group by u.id`,
      );
      expect(shape).toHaveLength(25);
      for (const s of shape) expect([Number(s.portfolios), Number(s.positions)]).toEqual([4, 80]);
    });

    it('has positions equal to what their trades imply', async () => {
      const traded = await loadTrades('recorded');
      const expected = replay(traded);
      const loadPortfolios = new Set(traded.map((t) => t.portfolio_id));
      const held = (await positionSnapshot(db)).filter((p) => loadPortfolios.has(p.portfolioId));
      expect(held).toHaveLength(2000);
      expect(expected.size).toBe(2000);
      for (const p of held)
        expect(differences(p, expected.get(`${p.portfolioId}/${p.instrumentId}`)), `position ${p.portfolioId}/${p.instrumentId}`).toEqual([]);
    });

    it('dates each position’s trades so that, in time order, they imply the same position (no sale before the buys)', async () => {
      // the trades list shows trades by executedAt: replayed in that order they must make sense, and
      // give the position the portfolio holds
      const traded = await loadTrades('executed');
      const expected = replay(traded);
      const byKey = new Map((await positionSnapshot(db)).map((p) => [`${p.portfolioId}/${p.instrumentId}`, p]));
      expect(expected.size).toBe(2000);
      for (const [key, holding] of expected) expect(differences(byKey.get(key), holding), `position ${key}`).toEqual([]);
    });

    it('partly sells some positions, as seedScale means to (every fourth position gets a SELL)', async () => {
      // without sales the load data never reaches realized P&L or the sell path of the valuation
      const [sold] = await rows<{ sells: number; realized: number }>(
        db,
        sql`select (select count(*)::int from trades t join portfolios p on p.id = t.portfolio_id join users u on u.id = p.owner_id
                    where u.email like 'load-%' and t.side = 'SELL') as sells,
                   (select count(*)::int from positions x join portfolios p on p.id = x.portfolio_id join users u on u.id = p.owner_id
                    where u.email like 'load-%' and x.realized_pnl <> 0) as realized`,
      );
      expect(Number(sold.sells)).toBeGreaterThan(0);
      expect(Number(sold.realized)).toBeGreaterThan(0);
    });

    it('forecasts the synthetic instruments too', async () => {
      const [missing] = await rows<{ n: number }>(
        db,
        sql`select count(*)::int as n from instruments i cross join unnest(${sql.param(HORIZONS)}::int[]) as h(days)
            where not exists (select 1 from forecasts f join forecast_models m on m.id = f.model_id and m.active
                              where f.instrument_id = i.id and f.horizon_days = h.days)`,
      );
      expect(Number(missing.n)).toBe(0);
      expect(after.instruments - before.instruments).toBe(30);
    });

    it(
      'adds nothing when run a second time',
      async () => {
        const held = await positionSnapshot(db);
        await seedScale(db, 1);
        expect(await tableCounts(db)).toEqual(after);
        expect(await positionSnapshot(db)).toEqual(held);
      },
      SEEDING,
    );
  });
});
