import type { PositionRow, TradeRow } from '../../db/schema.js';
import { encodeCursor, isId, readPage } from '../../domain/pagination.js';
import { valuePositions } from '../../domain/valuation.js';
import type { TradeCursor } from '../../loaders/portfolios.js';
import type { PortfolioResolvers } from '../__generated__/resolvers.js';
import type { Connection } from '../connection.js';

const isTradeCursor = (k: unknown): k is TradeCursor =>
  typeof k === 'object' && k !== null && typeof (k as TradeCursor).at === 'string' &&
  !Number.isNaN(Date.parse((k as TradeCursor).at)) && Number.isSafeInteger((k as TradeCursor).id) && (k as TradeCursor).id > 0;

export const Portfolio: PortfolioResolvers = {
  id: (p) => String(p.id),

  // Pages are cut from the portfolio's whole list of open positions, which `valuation` also uses:
  // one statement per batch of portfolios serves both.
  positions: (p, args, { loaders }) => {
    const { first, after } = readPage('positions', args, 50, isId);
    const connection: Connection<PositionRow> = {
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

  valuation: async (p, _, { loaders }) => {
    const open = await loaders.openPositions.load(p.id);
    const prices = await loaders.latestPrice.loadMany(open.map((pos) => pos.instrumentId));
    return valuePositions(open, prices.map((x) => (x instanceof Error ? null : x)));
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
