import type { Viewer } from '../admission/tokens.js';
import type { Db } from '../db/client.js';
import type { Deadline } from '../db/deadline.js';
import type { InstrumentRow } from '../db/schema.js';
import type { HotCache } from '../cache/hot.js';
import { loader, type BatchObserver } from './batch.js';
import { forecastLists, latestForecasts } from './forecasts.js';
import { instrumentsById, instrumentsBySymbol, latestPricesByInstrument, priceRangesByInstrument } from './instruments.js';
import {
  openPositionsByPortfolio,
  portfolioCountsByOwner,
  portfolioPagesByOwner,
  portfoliosById,
  tradeCountsByPortfolio,
  tradePagesByPortfolio,
} from './portfolios.js';
import { priceHistoriesByInstrument } from './prices-history.js';
import { usersById, type ViewerPortfolioPage, type ViewerPortfolios } from './users.js';

export interface LoaderOptions {
  /** The model whose active version answers latestForecast. */
  defaultModel: string;
  /** Told of every batch: the loader, its keys, rows and time. */
  observe?: BatchObserver;
  /** The request's deadline: once it has passed, loaders send nothing more. */
  deadline?: Deadline;
  /** Instruments and latest prices shared across requests (a short TTL, invalidated explicitly). */
  hot?: HotCache;
  /** False: one statement per key, the naive N+1 design (LOADER_BATCHING=off, for bench -- incident only). */
  batching?: boolean;
}

/**
 * The loaders of one request. Made fresh per request (never shared), for the viewer of that request:
 * the authorization of every private read happens inside these batch functions.
 */
export function createLoaders(db: Db, viewer: Viewer, options: LoaderOptions) {
  const o = { db, observe: options.observe, deadline: options.deadline, batching: options.batching };
  const hot = options.hot;
  const instrumentById = loader('instrumentById', (db) => (hot ? hot.instrumentsById(instrumentsById(db)) : instrumentsById(db)), o);
  // an instrument found by symbol is also known by id for the rest of the request
  const instrumentBySymbol = loader<string, InstrumentRow | null>(
    'instrumentBySymbol',
    (db) => async (symbols) => {
      const found = await (hot ? hot.instrumentsBySymbol(instrumentsBySymbol(db)) : instrumentsBySymbol(db))(symbols);
      for (const row of found) if (row) instrumentById.prime(row.id, row);
      return found;
    },
    o,
  );
  // the forecast horizons the request's positions are loaded with (see openPositionsByPortfolio)
  const positionForecasts = new Set<number>();
  const portfolioPage = loader('portfolioPage', (db) => portfolioPagesByOwner(db, viewer), o);
  const portfolioCount = loader('portfolioCount', (db) => portfolioCountsByOwner(db, viewer), o);
  // the one page of the viewer's portfolios loaded with the viewer, when the request asks exactly one
  const viewerPages = new Map<string, ViewerPortfolioPage>();
  const onePage = () => (viewerPages.size === 1 ? [...viewerPages.values()][0] : null);
  const primeViewerPortfolios = ({ page, slice, count }: ViewerPortfolios) => {
    if (viewer.kind !== 'user') return;
    // the same key, property for property, as portfolioConnection loads
    portfolioPage.prime({ parent: viewer.userId, first: page.first, after: page.after }, slice);
    if (count !== null) portfolioCount.prime(viewer.userId, count);
  };
  return {
    /** Loads positions with the latest forecast at this horizon too (ask before the positions load). */
    wantPositionForecasts(horizonDays: number) {
      positionForecasts.add(horizonDays);
    },
    /** Loads this page of the viewer's portfolios with the viewer (ask before the viewer loads). */
    wantViewerPortfolios(page: ViewerPortfolioPage) {
      viewerPages.set(JSON.stringify(page), page);
    },
    userById: loader('userById', (db) => usersById(db, viewer, onePage, primeViewerPortfolios), o),
    portfolioById: loader('portfolioById', (db) => portfoliosById(db, viewer), o),
    portfolioPage,
    portfolioCount,
    openPositions: loader('openPositions', (db) => openPositionsByPortfolio(db, viewer, options.defaultModel, positionForecasts), o),
    tradePage: loader('tradePage', (db) => tradePagesByPortfolio(db, viewer), o),
    tradeCount: loader('tradeCount', (db) => tradeCountsByPortfolio(db, viewer), o),
    instrumentById,
    instrumentBySymbol,
    latestPrice: loader('latestPrice', (db) => (hot ? hot.latestPrices(latestPricesByInstrument(db)) : latestPricesByInstrument(db)), o),
    priceRange: loader('priceRange', priceRangesByInstrument, o),
    priceHistory: loader('priceHistory', priceHistoriesByInstrument, o),
    latestForecast: loader('latestForecast', (db) => latestForecasts(db, options.defaultModel), o),
    forecastList: loader('forecastList', forecastLists, o),
  };
}

export type Loaders = ReturnType<typeof createLoaders>;
