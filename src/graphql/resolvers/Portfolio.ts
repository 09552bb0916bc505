import type { TradeRow } from '../../db/schema.js';
import type { PositionNode } from '../../loaders/portfolios.js';
import { encodeCursor, isId, readPage } from '../../domain/pagination.js';
import { valuePositions } from '../../domain/valuation.js';
import { BadUserInputError } from '../../errors.js';
import { forecastPortfolioRisk, historyRange, PORTFOLIO_COVARIANCE, riskAsOf } from '../../domain/forecasting/portfolio-risk.js';
import type { TradeCursor } from '../../loaders/portfolios.js';
import type { PortfolioResolvers } from '../__generated__/resolvers.js';
import type { Connection } from '../connection.js';
import { positionForecastHorizons } from '../lookahead.js';
import { DEFAULT_HORIZON_DAYS } from './Instrument.js';

/**
 * A trade cursor's time is exactly what `toISOString` writes for a time PostgreSQL can hold: years
 * 0001–9999, a real calendar day (`Date.parse` turns 2024-02-30 into March 1st; PostgreSQL refuses it).
 */
const isCursorTime = (at: unknown): at is string => {
  if (typeof at !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(at) || at.startsWith('0000')) return false;
  const t = Date.parse(at);
  return !Number.isNaN(t) && new Date(t).toISOString() === at;
};

const isTradeCursor = (k: unknown): k is TradeCursor =>
  typeof k === 'object' &&
  k !== null &&
  !Array.isArray(k) &&
  Object.keys(k).join() === 'at,id' &&
  isCursorTime((k as TradeCursor).at) &&
  Number.isSafeInteger((k as TradeCursor).id) &&
  (k as TradeCursor).id > 0; // trade ids are int8

export const Portfolio: PortfolioResolvers = {
  id: (p) => String(p.id),

  // Pages are cut from the portfolio's whole list of open positions, which `valuation` also uses:
  // one statement per batch of portfolios serves both.
  positions: (p, args, { loaders }, info) => {
    const { first, after } = readPage('positions', args, 50, isId);
    // the forecasts the page will show are loaded with the positions, in the same statement
    for (const horizon of positionForecastHorizons(info, DEFAULT_HORIZON_DAYS)) loaders.wantPositionForecasts(horizon);
    const connection: Connection<PositionNode> = {
      page: async () => {
        const all = await loaders.openPositions.load(p.id);
        const rest = after === null ? all : all.filter((pos) => pos.id > after);
        return { rows: rest.slice(0, first), hasNextPage: rest.length > first };
      },
      totalCount: async () => (await loaders.openPositions.load(p.id)).length,
      cursor: (row) => encodeCursor('positions', row.id),
    };
    return connection;
  },

  // A price that failed to load (a timeout, a lost connection) is not an instrument without prices:
  // valuing the portfolio without it would be a wrong number that looks right. The field fails
  // instead, and an answer with an error is never cached.
  valuation: async (p, _, { loaders }) => {
    const open = await loaders.openPositions.load(p.id);
    // the positions came with their latest prices (a failed load fails the positions, and the field)
    return valuePositions(
      open,
      open.map((pos) => pos.instrument?.latestPrice ?? null),
    );
  },

  // positions and latest prices (shared with valuation), then every holding's window of closes: three
  // batches however many portfolios ask; the model itself is timed as an on-request computation
  forecast: async (p, args, { loaders, timeModel }) => {
    const { name, version, maxHorizonDays } = PORTFOLIO_COVARIANCE;
    const horizonDays = args.horizonDays ?? 21;
    if (!Number.isInteger(horizonDays) || horizonDays < 1 || horizonDays > maxHorizonDays) {
      throw new BadUserInputError(`horizonDays must be between 1 and ${maxHorizonDays} trading days, got ${horizonDays}`, 'horizonDays');
    }
    const open = await loaders.openPositions.load(p.id);
    const latest = open.map((pos) => pos.instrument?.latestPrice ?? null);
    const asOf = riskAsOf(latest);
    if (asOf === null) return null;
    const range = historyRange(asOf);
    const histories = await Promise.all(open.map((pos) => loaders.priceHistory.load({ instrumentId: pos.instrumentId, ...range })));
    const holdings = open.map((pos, i) => ({ instrumentId: pos.instrumentId, quantity: pos.quantity, latest: latest[i], history: histories[i] }));
    return timeModel(name, version, () => forecastPortfolioRisk(holdings, horizonDays));
  },

  trades: (p, args, { loaders }) => {
    const { first, after } = readPage('trades', args, 20, isTradeCursor);
    const connection: Connection<TradeRow> = {
      page: () => loaders.tradePage.load({ parent: p.id, first, after }),
      totalCount: () => loaders.tradeCount.load(p.id),
      cursor: (row) => encodeCursor('trades', { at: row.executedAt.toISOString(), id: row.id } satisfies TradeCursor),
    };
    return connection;
  },
};
