import { BadUserInputError } from '../../errors.js';
import { PAGE_CAPS, pageSize } from '../../domain/pagination.js';
import type { InstrumentResolvers } from '../__generated__/resolvers.js';

const isoDate = (d: Date | null | undefined) => (d ? d.toISOString().slice(0, 10) : '');

/** latestForecast's horizon when none is given (the schema's default). */
export const DEFAULT_HORIZON_DAYS = 21;

function horizon(days: number | null | undefined, argument = 'horizonDays'): number {
  const h = days ?? DEFAULT_HORIZON_DAYS;
  if (!Number.isInteger(h) || h < 1 || h > 1000) throw new BadUserInputError(`${argument} must be between 1 and 1000 trading days, got ${h}`, argument);
  return h;
}

export const Instrument: InstrumentResolvers = {
  id: (i) => String(i.id),
  // loaded with the instrument when it came with a position (see openPositionsByPortfolio)
  latestPrice: (i, _, { loaders }) => (i.latestPrice !== undefined ? i.latestPrice : loaders.latestPrice.load(i.id)),
  prices: (i, args, { loaders }) => {
    const first = pageSize(args.first, 100, PAGE_CAPS.prices);
    const [from, to] = [isoDate(args.from), isoDate(args.to)];
    if (from && to && from > to) throw new BadUserInputError(`from (${from}) is after to (${to})`, 'from');
    return first === 0 ? [] : loaders.priceRange.load({ instrumentId: i.id, from, to, first });
  },
  latestForecast: (i, args, { loaders }) => {
    const horizonDays = horizon(args.horizonDays);
    const loaded = i.latestForecasts?.get(horizonDays);
    return loaded !== undefined ? loaded : loaders.latestForecast.load({ instrumentId: i.id, horizonDays });
  },
  forecasts: (i, args, { loaders }) => {
    const first = pageSize(args.first, 20, PAGE_CAPS.forecasts);
    const model = (args.model ?? '').trim();
    if (model.length > 100) throw new BadUserInputError('model may be at most 100 characters', 'model');
    const version = (args.version ?? '').trim();
    if (version.length > 100) throw new BadUserInputError('version may be at most 100 characters', 'version');
    if (version && !model) throw new BadUserInputError('version needs model: a version belongs to one model', 'version');
    const horizonDays = args.horizonDays == null ? 0 : horizon(args.horizonDays);
    return first === 0 ? [] : loaders.forecastList.load({ instrumentId: i.id, model, version, horizonDays, first });
  },
};
