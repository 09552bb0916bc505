import type { Resolvers } from '../__generated__/resolvers.js';
import { scalarResolvers } from '../scalars.js';
import { InstrumentConnection, PortfolioConnection, PositionConnection, TradeConnection } from './connections.js';
import { Instrument } from './Instrument.js';
import { Mutation } from './Mutation.js';
import { Portfolio } from './Portfolio.js';
import { PortfolioForecast, PortfolioForecastWeight } from './PortfolioForecast.js';
import { Position } from './Position.js';
import { Query } from './Query.js';
import { Trade } from './Trade.js';
import { User } from './User.js';

export const resolvers: Resolvers = {
  ...scalarResolvers,
  Query,
  Mutation,
  User,
  Portfolio,
  PortfolioForecast,
  PortfolioForecastWeight,
  Position,
  Trade,
  Instrument,
  PortfolioConnection,
  PositionConnection,
  TradeConnection,
  InstrumentConnection,
};
