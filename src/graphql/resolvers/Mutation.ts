import { createPortfolio } from '../../domain/portfolios.js';
import { recordTrade } from '../../domain/trades.js';
import type { MutationResolvers } from '../__generated__/resolvers.js';

export const Mutation: MutationResolvers = {
  createPortfolio: async (_, { input }, { db, viewer, deadline }) => ({ portfolio: await createPortfolio(db, viewer, input, { deadline }) }),
  recordTrade: async (_, { input }, { db, viewer, deadline }) => {
    const { trade, position } = await recordTrade(db, viewer, input, { deadline });
    return { trade, position };
  },
};
