import type {
  InstrumentConnectionResolvers,
  PortfolioConnectionResolvers,
  PositionConnectionResolvers,
  TradeConnectionResolvers,
} from '../__generated__/resolvers.js';
import { connectionResolvers } from '../connection.js';

// Every connection type resolves alike from its Connection source; edges and PageInfo are plain objects.
export const PortfolioConnection: PortfolioConnectionResolvers = connectionResolvers;
export const PositionConnection: PositionConnectionResolvers = connectionResolvers;
export const TradeConnection: TradeConnectionResolvers = connectionResolvers;
export const InstrumentConnection: InstrumentConnectionResolvers = connectionResolvers;
