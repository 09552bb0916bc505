import { NotFoundError } from '../../errors.js';
import type { PortfolioForecastResolvers, PortfolioForecastWeightResolvers } from '../__generated__/resolvers.js';

// The forecast is computed by the time it gets here; only its instruments are loaded, and only when
// asked for (one batch for all of them, or none when the hot cache has them).

export const PortfolioForecast: PortfolioForecastResolvers = {
  // an on-request model has no registry row: the version that answers is always the active one
  model: (f) => ({ ...f.model, active: true }),
  excluded: (f, _, { loaders }) =>
    Promise.all(f.excluded.map(async (id) => (await loaders.instrumentById.load(id)) ?? Promise.reject(new NotFoundError('instrument')))),
};

/** A weight's own type, kept beside the forecast it belongs to. */
export const PortfolioForecastWeight: PortfolioForecastWeightResolvers = {
  instrument: async (w, _, { loaders }) => (await loaders.instrumentById.load(w.instrumentId)) ?? Promise.reject(new NotFoundError('instrument')),
};
