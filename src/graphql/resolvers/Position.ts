import { marketValue, unrealizedPnl } from '../../domain/valuation.js';
import { NotFoundError } from '../../errors.js';
import type { PositionResolvers } from '../__generated__/resolvers.js';

export const Position: PositionResolvers = {
  id: (p) => String(p.id),
  // a position loaded for a portfolio came with its instrument and latest price; a write's answer did not
  instrument: async (p, _, { loaders }) =>
    p.instrument ?? (await loaders.instrumentById.load(p.instrumentId)) ?? Promise.reject(new NotFoundError('instrument')),
  marketValue: async (p, _, { loaders }) => {
    const price = p.instrument ? p.instrument.latestPrice : await loaders.latestPrice.load(p.instrumentId);
    return price ? marketValue(p.quantity, price.close) : null;
  },
  unrealizedPnl: async (p, _, { loaders }) => {
    const price = p.instrument ? p.instrument.latestPrice : await loaders.latestPrice.load(p.instrumentId);
    return price ? unrealizedPnl(p.quantity, p.costBasis, price.close) : null;
  },
};
