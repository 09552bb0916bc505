import { countInstruments, listInstruments } from '../../domain/instruments.js';
import { encodeCursor, parseId, readPage } from '../../domain/pagination.js';
import { normaliseSymbol } from '../../loaders/instruments.js';
import type { InstrumentRow } from '../../db/schema.js';
import type { QueryResolvers } from '../__generated__/resolvers.js';
import type { Connection } from '../connection.js';
import { viewerPortfolioPages } from '../lookahead.js';
import { portfolioConnection } from './User.js';

const isSymbol = (k: unknown): k is string => typeof k === 'string' && k.length <= 40;

export const Query: QueryResolvers = {
  viewer: (_, __, { viewer, loaders }, info) => {
    if (viewer.kind !== 'user') return null;
    // the page of portfolios the result shows is loaded with the viewer, in the same statement
    for (const page of viewerPortfolioPages(info)) loaders.wantViewerPortfolios(page);
    return loaders.userById.load(viewer.userId);
  },

  portfolio: (_, { id }, { loaders }) => {
    const key = parseId(id);
    return key === null ? null : loaders.portfolioById.load(key);
  },

  portfolios: (_, args, ctx) => portfolioConnection(ctx.viewer.kind === 'user' ? ctx.viewer.userId : 0, args, ctx),

  instrument: (_, { symbol }, { loaders }) => {
    const s = normaliseSymbol(symbol);
    return s.length === 0 || s.length > 40 ? null : loaders.instrumentBySymbol.load(s);
  },

  instruments: (_, args, { db }) => {
    const page = readPage('instruments', args, 20, isSymbol);
    let fetched: ReturnType<typeof listInstruments> | undefined;
    const connection: Connection<InstrumentRow> = {
      page: () => (fetched ??= listInstruments(db, page, args.search)),
      totalCount: () => countInstruments(db, args.search),
      cursor: (row) => encodeCursor('instruments', row.symbol),
    };
    return connection;
  },
};
