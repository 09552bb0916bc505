import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { and, eq, sql } from 'drizzle-orm';
import type { Viewer } from '../../admission/tokens.js';
import { recordTrade } from '../../domain/trades.js';
import { generateForecasts } from '../../domain/forecasting/generate.js';
import { ensureBuiltInModels } from '../../domain/forecasting/registry.js';
import { demoDataDir } from '../../paths.js';
import { isoDate } from '../../domain/forecasting/price-csv.js';
import type { Db } from '../../db/client.js';
import { appMeta, instruments, portfolios, prices, users } from '../../db/schema.js';

export const DEMO_SEED_KEY = 'demo_seed';

export const DEMO_INSTRUMENTS = [
  { symbol: 'AAPL', name: 'Apple Inc.', assetClass: 'EQUITY' },
  { symbol: 'AMZN', name: 'Amazon.com, Inc.', assetClass: 'EQUITY' },
  { symbol: 'GOOG', name: 'Alphabet Inc. (Google)', assetClass: 'EQUITY' },
  { symbol: 'IBM', name: 'International Business Machines Corporation', assetClass: 'EQUITY' },
  { symbol: 'MSFT', name: 'Microsoft Corporation', assetClass: 'EQUITY' },
  { symbol: 'SPX', name: 'S&P 500 Index', assetClass: 'INDEX' },
];

export const DEMO_USERS = [
  { email: 'alice@example.com', name: 'Alice Archer' },
  { email: 'bob@example.com', name: 'Bob Baker' },
  { email: 'carol@example.com', name: 'Carol Chen' },
];

// Each demo trade is dated on a real price row and done at that day's close.
type DemoTrade = [symbol: string, side: 'BUY' | 'SELL', quantity: string, date: string];
const DEMO_PORTFOLIOS: Record<string, Record<string, DemoTrade[]>> = {
  'alice@example.com': {
    Retirement: [
      ['MSFT', 'BUY', '120', '2003-01-01'],
      ['IBM', 'BUY', '40', '2004-06-01'],
      ['SPX', 'BUY', '3.5', '2009-03-09'],
      ['MSFT', 'SELL', '20', '2008-01-01'],
      ['AAPL', 'BUY', '25', '2006-01-01'],
    ],
    'Tech Growth': [
      ['AAPL', 'BUY', '50', '2005-01-01'],
      ['AMZN', 'BUY', '30', '2007-01-01'],
      ['GOOG', 'BUY', '10', '2005-06-01'],
      ['AAPL', 'SELL', '15', '2009-01-01'],
      ['AMZN', 'BUY', '10', '2009-03-01'],
    ],
  },
  'bob@example.com': {
    'Core Holdings': [
      ['IBM', 'BUY', '100', '2002-10-01'],
      ['MSFT', 'BUY', '200', '2002-10-01'],
      ['IBM', 'SELL', '35', '2007-10-01'],
    ],
    'Index Tracker': [
      ['SPX', 'BUY', '2', '2002-10-09'],
      ['SPX', 'BUY', '1.25', '2008-11-20'],
      ['SPX', 'SELL', '0.5', '2018-01-26'],
    ],
  },
  'carol@example.com': {
    'Family Trust': [
      ['GOOG', 'BUY', '12', '2008-11-01'],
      ['AMZN', 'BUY', '40', '2008-11-01'],
      ['IBM', 'BUY', '15', '2009-02-01'],
    ],
    Speculative: [
      ['AAPL', 'BUY', '80', '2003-04-01'],
      ['AAPL', 'SELL', '60', '2007-12-01'],
      ['GOOG', 'BUY', '5', '2004-09-01'],
    ],
  },
};

/** The demo price history by symbol, oldest first, as shipped in src/db/demo (vega-datasets). */
export function readDemoPrices(): Map<string, { date: string; close: string }[]> {
  const bySymbol = new Map<string, { date: string; close: string }[]>();
  const add = (symbol: string, date: string, close: string) => {
    if (!bySymbol.has(symbol)) bySymbol.set(symbol, []);
    bySymbol.get(symbol)!.push({ date, close });
  };
  const stocks = readFileSync(join(demoDataDir, 'stocks.csv'), 'utf8').trim().split('\n').slice(1);
  for (const line of stocks) {
    const [symbol, date, price] = line.split(',');
    add(symbol, isoDate(date), price.trim());
  }
  const spx = readFileSync(join(demoDataDir, 'sp500-2000.csv'), 'utf8').trim().split('\n');
  const header = spx[0].split(',');
  const [dateCol, closeCol] = [header.indexOf('date'), header.indexOf('close')];
  for (const line of spx.slice(1)) {
    const cells = line.split(',');
    // closes carry six decimals of float noise (2874.560059): kept as given, they are exact decimals
    add('SPX', cells[dateCol], cells[closeCol].trim());
  }
  for (const list of bySymbol.values()) list.sort((a, b) => a.date.localeCompare(b.date));
  return bySymbol;
}

export async function isDemoSeeded(db: Db): Promise<boolean> {
  const [row] = await db.select().from(appMeta).where(eq(appMeta.key, DEMO_SEED_KEY));
  return row?.value === 'complete';
}

export interface SeedLog {
  (message: string): void;
}

/**
 * Seeds the demo data set (CONTRACT.md): instruments with real prices, alice, bob and carol with
 * portfolios built by recording trades, and forecasts. Idempotent: every step either finds what it
 * would create or, for trades, replays an idempotency key, so a second run changes nothing.
 */
export async function seedDemo(db: Db, log: SeedLog = () => {}): Promise<void> {
  const history = readDemoPrices();
  await db
    .insert(instruments)
    .values(DEMO_INSTRUMENTS.map((i) => ({ ...i, currency: 'USD' })))
    .onConflictDoNothing();
  const ids = new Map((await db.select({ id: instruments.id, symbol: instruments.symbol }).from(instruments)).map((r) => [r.symbol, r.id]));
  let priceRows = 0;
  for (const [symbol, list] of history) {
    const instrumentId = ids.get(symbol)!;
    for (let i = 0; i < list.length; i += 2000) {
      const chunk = list.slice(i, i + 2000).map((p) => ({ instrumentId, date: p.date, close: p.close }));
      await db.insert(prices).values(chunk).onConflictDoNothing();
      priceRows += chunk.length;
    }
  }
  log(`instruments: ${ids.size}, price rows: ${priceRows}`);

  await db.insert(users).values(DEMO_USERS).onConflictDoNothing();
  for (const [email, named] of Object.entries(DEMO_PORTFOLIOS)) {
    const [user] = await db.select().from(users).where(eq(users.email, email));
    const viewer: Viewer = { kind: 'user', userId: user.id };
    for (const [name, trades] of Object.entries(named)) {
      let [portfolio] = await db
        .select()
        .from(portfolios)
        .where(and(eq(portfolios.ownerId, user.id), eq(portfolios.name, name)));
      portfolio ??= (await db.insert(portfolios).values({ ownerId: user.id, name }).returning())[0];
      // trades in date order, whatever order the table lists them in
      const ordered = [...trades].sort((a, b) => a[3].localeCompare(b[3]));
      for (const [n, [symbol, side, quantity, date]] of ordered.entries()) {
        const close = closeOn(history.get(symbol)!, date);
        await recordTrade(db, viewer, {
          portfolioId: String(portfolio.id),
          symbol,
          side,
          quantity,
          price: close.close,
          executedAt: new Date(`${close.date}T20:00:00Z`),
          idempotencyKey: `demo-${n + 1}`,
        });
      }
    }
    log(`${email}: ${Object.keys(named).length} portfolios`);
  }

  await ensureBuiltInModels(db);
  const generated = await generateForecasts(db);
  log(`forecasts: ${generated.forecasts} new from ${generated.models} model(s)`);
  await db
    .insert(appMeta)
    .values({ key: DEMO_SEED_KEY, value: 'complete' })
    .onConflictDoUpdate({ target: appMeta.key, set: { value: 'complete', updatedAt: sql`now()` } });
}

/** The first price row on or after `date` (a trade on a non-trading day fills at the next close). */
function closeOn(list: { date: string; close: string }[], date: string) {
  const hit = list.find((p) => p.date >= date);
  if (!hit) throw new Error(`no price on or after ${date}`);
  return hit;
}
