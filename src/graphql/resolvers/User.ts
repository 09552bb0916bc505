import type { PortfolioRow } from '../../db/schema.js';
import { encodeCursor, isId, readPage, type PageArgs } from '../../domain/pagination.js';
import type { UserResolvers } from '../__generated__/resolvers.js';
import type { Connection } from '../connection.js';
import type { Context } from '../context.js';

/** The portfolios of one owner, oldest first; the loaders return rows only for the viewer's own. */
export function portfolioConnection(ownerId: number, args: PageArgs, { loaders }: Context): Connection<PortfolioRow> {
  const { first, after } = readPage('portfolios', args, 20, isId);
  return {
    page: () => loaders.portfolioPage.load({ parent: ownerId, first, after }),
    totalCount: () => loaders.portfolioCount.load(ownerId),
    cursor: (row) => encodeCursor('portfolios', row.id),
  };
}

export const User: UserResolvers = {
  id: (user) => String(user.id),
  portfolios: (user, args, ctx) => portfolioConnection(user.id, args, ctx),
};
