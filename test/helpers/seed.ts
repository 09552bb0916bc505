import { randomBytes } from 'node:crypto';
import type { Viewer } from '../../src/admission/tokens.js';
import type { Db } from '../../src/db/client.js';
import { forecastModels, forecasts, instruments, portfolios, prices, users, type InstrumentRow, type PortfolioRow, type UserRow } from '../../src/db/schema.js';
import { recordTrade, type RecordTradeInput } from '../../src/domain/trades.js';
import { loadConfig } from '../../src/config.js';

const unique = () => randomBytes(4).toString('hex');

/** The model whose forecasts answer latestForecast with the default configuration (FORECAST_DEFAULT_MODEL). */
export const DEFAULT_MODEL = loadConfig({ NODE_ENV: 'test', JWT_SECRET: 'x'.repeat(32) }).forecasts.defaultModel;

/**
 * Small builders for per-test fixtures: every call makes new rows with fresh names, so tests never
 * depend on each other's data.
 */
export function seed(db: Db) {
  return {
    async user(overrides: Partial<{ email: string; name: string }> = {}): Promise<UserRow & { viewer: Viewer }> {
      const tag = unique();
      const [row] = await db
        .insert(users)
        .values({ email: `user-${tag}@example.com`, name: `User ${tag}`, ...overrides })
        .returning();
      return { ...row, viewer: { kind: 'user', userId: row.id } };
    },

    async portfolio(owner: { id: number }, name = `Portfolio ${unique()}`): Promise<PortfolioRow> {
      const [row] = await db.insert(portfolios).values({ ownerId: owner.id, name }).returning();
      return row;
    },

    /** An instrument with closes on consecutive days ending at `last` (default 2024-01-31). */
    async instrument(closes: string[] = ['100'], options: Partial<{ symbol: string; last: string; assetClass: string }> = {}): Promise<InstrumentRow> {
      const symbol = options.symbol ?? `T${unique().toUpperCase()}`;
      const [row] = await db
        .insert(instruments)
        .values({ symbol, name: `Test ${symbol}`, assetClass: options.assetClass ?? 'EQUITY' })
        .returning();
      const last = Date.parse(`${options.last ?? '2024-01-31'}T00:00:00Z`);
      if (closes.length) {
        await db
          .insert(prices)
          .values(
            closes.map((close, i) => ({ instrumentId: row.id, date: new Date(last - (closes.length - 1 - i) * 86_400_000).toISOString().slice(0, 10), close })),
          );
      }
      return row;
    },

    async trade(viewer: Viewer, input: Omit<RecordTradeInput, 'portfolioId'> & { portfolioId: number | string }) {
      return recordTrade(db, viewer, { ...input, portfolioId: String(input.portfolioId) });
    },

    /** A model version (active unless told) and, optionally, one forecast per (instrument, horizon). */
    async model(name: string, version = '1', active = true) {
      const [row] = await db.insert(forecastModels).values({ name, version, active }).returning();
      return row;
    },

    async forecast(modelId: number, instrumentId: number, horizonDays: number, asOf: string, expectedReturn = 0.01) {
      const [row] = await db
        .insert(forecasts)
        .values({ modelId, instrumentId, horizonDays, asOf, expectedReturn, lower95: expectedReturn - 0.1, upper95: expectedReturn + 0.1 })
        .returning();
      return row;
    },
  };
}
