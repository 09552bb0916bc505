import { and, eq, sql } from 'drizzle-orm';
import type { Viewer } from '../admission/tokens.js';
import { rows, type Db } from '../db/client.js';
import { portfolios, type PortfolioRow, type PositionRow, type TradeRow } from '../db/schema.js';
import { trimPage, type Slice } from '../domain/pagination.js';
import { array, byKey, column, groupByKey, groupByOrdinal } from './batch.js';
import type { ForecastRecord } from './forecasts.js';
import type { InstrumentNode } from './instruments.js';

// Every function here takes the viewer and filters by ownership in its SQL: a portfolio that is not
// the viewer's is indistinguishable from one that does not exist, whichever path reaches it.

const ownerOf = (viewer: Viewer) => (viewer.kind === 'user' ? viewer.userId : null);

/** Keys of a page of a per-parent list: whose list, how many, and after which sort key. */
export interface PageKey<A> {
  parent: number;
  first: number;
  after: A | null;
}

/** The sort key of the trades list (newest first): executed time, then id. */
export interface TradeCursor {
  at: string;
  id: number;
}

export function portfoliosById(db: Db, viewer: Viewer) {
  return async (ids: readonly number[]): Promise<(PortfolioRow | null)[]> => {
    const owner = ownerOf(viewer);
    if (owner === null) return ids.map(() => null);
    const found = await db
      .select()
      .from(portfolios)
      .where(and(sql`${portfolios.id} = any(${array(ids, 'int')})`, eq(portfolios.ownerId, owner)));
    return byKey(
      ids,
      found,
      (r) => r.id,
      (r) => r,
      () => null,
    );
  };
}

interface PortfolioSqlRow {
  ord: string | number;
  id: number;
  owner_id: number;
  name: string;
  base_currency: string;
  created_at: string;
}

/** Pages of owners' portfolios, oldest first; only the viewer's own list has rows. One statement per batch. */
export function portfolioPagesByOwner(db: Db, viewer: Viewer) {
  return async (keys: readonly PageKey<number>[]): Promise<Slice<PortfolioRow>[]> => {
    const owner = ownerOf(viewer);
    if (owner === null || !keys.some((k) => k.parent === owner)) return keys.map(() => ({ rows: [], hasNextPage: false }));
    const found = await rows<PortfolioSqlRow>(
      db,
      sql`select k.ord, p.id, p.owner_id, p.name, p.base_currency, to_json(p.created_at) #>> '{}' as created_at
          from unnest(${column(keys, 'int', (k) => k.parent)}, ${column(keys, 'int', (k) => k.after ?? 0)},
                      ${column(keys, 'int', (k) => k.first + 1)}) with ordinality as k(owner_id, after_id, lim, ord)
          cross join lateral (
            select * from portfolios p where p.owner_id = k.owner_id and p.id > k.after_id order by p.id limit k.lim
          ) p
          where k.owner_id = ${owner}
          order by k.ord, p.id`,
    );
    const pages = groupByOrdinal(keys, found, (r): PortfolioRow => ({
      id: r.id,
      ownerId: r.owner_id,
      name: r.name,
      baseCurrency: r.base_currency,
      createdAt: new Date(r.created_at),
    }));
    return pages.map((page, i) => trimPage(page, keys[i].first));
  };
}

export function portfolioCountsByOwner(db: Db, viewer: Viewer) {
  return async (owners: readonly number[]): Promise<number[]> => {
    const owner = ownerOf(viewer);
    if (owner === null || !owners.includes(owner)) return owners.map(() => 0);
    const [row] = await rows<{ n: number }>(db, sql`select count(*)::int as n from portfolios where owner_id = ${owner}`);
    return owners.map((o) => (o === owner ? Number(row?.n ?? 0) : 0));
  };
}

/** A position with its instrument, the instrument's latest price and the forecasts asked for. */
export interface PositionNode extends PositionRow {
  /** Present when the position was loaded with it (openPositionsByPortfolio); a write's answer has none. */
  instrument?: InstrumentNode;
}

/** A forecast as the positions' statement returns it (one horizon's latest, of the default model's active version). */
interface PositionForecastSql {
  horizon_days: number;
  as_of: string;
  expected_return: number;
  lower95: number;
  upper95: number;
  generated_at: string;
}

interface PositionSqlRow {
  id: number;
  portfolio_id: number;
  instrument_id: number;
  quantity: string;
  average_cost: string;
  cost_basis: string;
  realized_pnl: string;
  updated_at: string;
  symbol: string;
  name: string;
  asset_class: string;
  currency: string;
  price_date: string | null;
  price_close: string | null;
  /** The first horizon's forecast, as columns (null when there is none, or no horizon was asked). */
  f_as_of: string | null;
  f_expected_return: number | null;
  f_lower95: number | null;
  f_upper95: number | null;
  f_generated_at: string | null;
  /** Every further horizon's, as JSON (only when more than one horizon was asked). */
  forecasts: PositionForecastSql[] | null;
  model_name: string | null;
  model_version: string | null;
}

/**
 * All open positions (quantity > 0) of each portfolio, in the order they were opened, each with its
 * instrument, that instrument's latest close and, for the horizons in `horizons` when the batch runs,
 * its latest forecast of the default model: everything a dashboard shows of a position, in one
 * statement per batch of portfolios. Pages and the valuation are cut from this one list. Resolvers at
 * one level run before their batch is sent, so a `positions` field that will ask for forecasts adds
 * its horizon to `horizons` first (see Portfolio.positions); a horizon asked later is loaded apart.
 * Decimals come back as PostgreSQL writes them without trailing zeros (trim_scale), ready to serve.
 * The first horizon's forecast is a plain lateral join (one index probe per position); further
 * horizons, which dashboards rarely ask, go through an aggregate that cost PostgreSQL a fifth of the
 * statement when every request paid it. Three statement texts in all: no, one, or several horizons.
 */
export function openPositionsByPortfolio(db: Db, viewer: Viewer, defaultModel: string, horizons: Set<number>) {
  return async (ids: readonly number[]): Promise<PositionNode[][]> => {
    const owner = ownerOf(viewer);
    if (owner === null) return ids.map(() => []);
    const [first, ...rest] = horizons;
    const forecastColumns =
      first === undefined
        ? sql`null::text as f_as_of, null::float8 as f_expected_return, null::float8 as f_lower95, null::float8 as f_upper95,
              null::text as f_generated_at, null::json as forecasts, null::text as model_name, null::text as model_version`
        : sql`fc.as_of::text as f_as_of, fc.expected_return as f_expected_return, fc.lower95 as f_lower95, fc.upper95 as f_upper95,
              to_json(fc.generated_at) #>> '{}' as f_generated_at, ${rest.length ? sql`fr.forecasts` : sql`null::json`} as forecasts,
              m.name as model_name, m.version as model_version`;
    const forecastJoins =
      first === undefined
        ? sql``
        : sql`left join forecast_models m on m.name = ${defaultModel} and m.active
              left join lateral (
                select f.as_of, f.expected_return, f.lower95, f.upper95, f.generated_at from forecasts f
                where f.model_id = m.id and f.instrument_id = i.id and f.horizon_days = ${first} order by f.as_of desc limit 1
              ) fc on true
              ${
                rest.length
                  ? sql`left join lateral (
                      select json_agg(json_build_object('horizon_days', h.h, 'as_of', f.as_of::text, 'expected_return', f.expected_return,
                                                        'lower95', f.lower95, 'upper95', f.upper95, 'generated_at', to_json(f.generated_at) #>> '{}')) as forecasts
                      from unnest(${array(rest, 'int')}) as h(h)
                      cross join lateral (
                        select * from forecasts f where f.model_id = m.id and f.instrument_id = i.id and f.horizon_days = h.h order by f.as_of desc limit 1
                      ) f
                    ) fr on m.id is not null`
                  : sql``
              }`;
    const found = await rows<PositionSqlRow>(
      db,
      sql`select p.id, p.portfolio_id, p.instrument_id, trim_scale(p.quantity)::text as quantity,
                 trim_scale(p.average_cost)::text as average_cost, p.cost_basis::text as cost_basis,
                 trim_scale(p.realized_pnl)::text as realized_pnl, to_json(p.updated_at) #>> '{}' as updated_at,
                 i.symbol, i.name, i.asset_class, i.currency,
                 lp.date::text as price_date, trim_scale(lp.close)::text as price_close, ${forecastColumns}
          from positions p
          join portfolios o on o.id = p.portfolio_id and o.owner_id = ${owner}
          join instruments i on i.id = p.instrument_id
          left join lateral (select date, close from prices where instrument_id = i.id order by date desc limit 1) lp on true
          ${forecastJoins}
          where p.portfolio_id = any(${array(ids, 'int')}) and p.quantity > 0
          order by p.portfolio_id, p.id`,
    );
    const wanted = first === undefined ? [] : [first, ...rest];
    return groupByKey(
      ids,
      found,
      (r) => r.portfolio_id,
      (r) => toPositionNode(r, wanted),
    );
  };
}

function toPositionNode(r: PositionSqlRow, horizons: number[]): PositionNode {
  const instrument: InstrumentNode = {
    id: r.instrument_id,
    symbol: r.symbol,
    name: r.name,
    assetClass: r.asset_class,
    currency: r.currency,
    latestPrice: r.price_date === null || r.price_close === null ? null : { instrumentId: r.instrument_id, date: r.price_date, close: r.price_close },
  };
  if (horizons.length) {
    const byHorizon = new Map<number, ForecastRecord | null>(horizons.map((h) => [h, null]));
    const record = (f: PositionForecastSql): ForecastRecord => ({
      instrumentId: r.instrument_id,
      model: { name: r.model_name!, version: r.model_version!, active: true },
      asOf: f.as_of,
      horizonDays: f.horizon_days,
      expectedReturn: Number(f.expected_return),
      lower: Number(f.lower95),
      upper: Number(f.upper95),
      generatedAt: new Date(f.generated_at),
    });
    if (r.f_as_of !== null) {
      byHorizon.set(
        horizons[0],
        record({
          horizon_days: horizons[0],
          as_of: r.f_as_of,
          expected_return: r.f_expected_return!,
          lower95: r.f_lower95!,
          upper95: r.f_upper95!,
          generated_at: r.f_generated_at!,
        }),
      );
    }
    for (const f of r.forecasts ?? []) byHorizon.set(f.horizon_days, record(f));
    instrument.latestForecasts = byHorizon;
  }
  return {
    id: r.id,
    portfolioId: r.portfolio_id,
    instrumentId: r.instrument_id,
    quantity: r.quantity,
    averageCost: r.average_cost,
    costBasis: r.cost_basis,
    realizedPnl: r.realized_pnl,
    updatedAt: new Date(r.updated_at),
    instrument,
  };
}

interface TradeSqlRow {
  ord: string | number;
  id: string | number;
  portfolio_id: number;
  instrument_id: number;
  side: 'BUY' | 'SELL';
  quantity: string;
  price: string;
  executed_at: string;
  idempotency_key: string | null;
  request_digest: string;
  created_at: string;
}

export function toTradeRow(r: Omit<TradeSqlRow, 'ord'>): TradeRow {
  return {
    id: Number(r.id),
    portfolioId: r.portfolio_id,
    instrumentId: r.instrument_id,
    side: r.side,
    quantity: r.quantity,
    price: r.price,
    executedAt: new Date(r.executed_at),
    idempotencyKey: r.idempotency_key,
    requestDigest: r.request_digest,
    createdAt: new Date(r.created_at),
  };
}

/** Pages of portfolios' trades, newest first, for the viewer's portfolios only. One statement per batch. */
export function tradePagesByPortfolio(db: Db, viewer: Viewer) {
  return async (keys: readonly PageKey<TradeCursor>[]): Promise<Slice<TradeRow>[]> => {
    const owner = ownerOf(viewer);
    if (owner === null) return keys.map(() => ({ rows: [], hasNextPage: false }));
    const found = await rows<TradeSqlRow>(
      db,
      sql`select k.ord, t.id::text as id, t.portfolio_id, t.instrument_id, t.side, t.quantity::text as quantity,
                 t.price::text as price, to_json(t.executed_at) #>> '{}' as executed_at, t.idempotency_key, t.request_digest,
                 to_json(t.created_at) #>> '{}' as created_at
          from unnest(${column(keys, 'int', (k) => k.parent)}, ${column(keys, 'text', (k) => k.after?.at ?? '')},
                      ${column(keys, 'int8', (k) => k.after?.id ?? 0)}, ${column(keys, 'int', (k) => k.first + 1)})
               with ordinality as k(portfolio_id, after_at, after_id, lim, ord)
          join portfolios p on p.id = k.portfolio_id and p.owner_id = ${owner}
          cross join lateral (
            select * from trades t
            where t.portfolio_id = k.portfolio_id
              and (k.after_id = 0 or (t.executed_at, t.id) < (nullif(k.after_at, '')::timestamptz, k.after_id))
            order by t.executed_at desc, t.id desc
            limit k.lim
          ) t
          order by k.ord, t.executed_at desc, t.id desc`,
    );
    return groupByOrdinal(keys, found, toTradeRow).map((page, i) => trimPage(page, keys[i].first));
  };
}

export function tradeCountsByPortfolio(db: Db, viewer: Viewer) {
  return async (ids: readonly number[]): Promise<number[]> => {
    const owner = ownerOf(viewer);
    if (owner === null) return ids.map(() => 0);
    const found = await rows<{ portfolio_id: number; n: number }>(
      db,
      sql`select t.portfolio_id, count(*)::int as n from trades t join portfolios p on p.id = t.portfolio_id
          where t.portfolio_id = any(${array(ids, 'int')}) and p.owner_id = ${owner} group by t.portfolio_id`,
    );
    return byKey(
      ids,
      found,
      (r) => r.portfolio_id,
      (r) => Number(r.n),
      () => 0,
    );
  };
}
