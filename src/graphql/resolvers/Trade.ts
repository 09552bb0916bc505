import { NotFoundError } from '../../errors.js';
import type { TradeResolvers } from '../__generated__/resolvers.js';

export const Trade: TradeResolvers = {
  id: (t) => String(t.id),
  instrument: async (t, _, { loaders }) => (await loaders.instrumentById.load(t.instrumentId)) ?? Promise.reject(new NotFoundError('instrument')),
};
