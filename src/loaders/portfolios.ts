import { and, eq, gt, sql } from 'drizzle-orm';
import type { Viewer } from '../admission/tokens.js';
import { rows, type Db } from '../db/client.js';
import { portfolios, positions, type PortfolioRow, type PositionRow, type TradeRow } from '../db/schema.js';
import { trimPage, type Slice } from '../domain/pagination.js';
import { array, byKey, groupByKey, groupByOrdinal } from './batch.js';

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
    return byKey(ids, found, (r) => r.id, (r) => r, () => null);
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
          from unnest(${array(keys.map((k) => k.parent), 'int')}, ${array(keys.map((k) => k.after ?? 0), 'int')},
                      ${array(keys.map((k) => k.first + 1), 'int')}) with ordinality as k(owner_id, after_id, lim, ord)
          cross join lateral (
            select * from portfolios p where p.owner_id = k.owner_id and p.id > k.after_id order by p.id limit k.lim
          ) p
          where k.owner_id = ${owner}
          order by k.ord, p.id`,
    );
    const pages = groupByOrdinal(
      keys,
      found,
      (r): PortfolioRow => ({ id: r.id, ownerId: r.owner_id, name: r.name, baseCurrency: r.base_currency, createdAt: new Date(r.created_at) }),
    );
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

/**
 * All open positions (quantity > 0) of each portfolio, in the order they were opened. Pages and the
 * valuation are cut from this one list, so a dashboard asks for positions once per batch.
 */
export function openPositionsByPortfolio(db: Db, viewer: Viewer) {
  return async (ids: readonly number[]): Promise<PositionRow[][]> => {
    const owner = ownerOf(viewer);
    if (owner === null) return ids.map(() => []);
    const found = await db
      .select({ position: positions })
      .from(positions)
      .innerJoin(portfolios, eq(portfolios.id, positions.portfolioId))
      .where(and(sql`${positions.portfolioId} = any(${array(ids, 'int')})`, eq(portfolios.ownerId, owner), gt(positions.quantity, '0')))
      .orderBy(positions.portfolioId, positions.id);
    return groupByKey(ids, found, (r) => r.position.portfolioId, (r) => r.position);
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
          from unnest(${array(keys.map((k) => k.parent), 'int')}, ${array(keys.map((k) => k.after?.at ?? ''), 'text')},
                      ${array(keys.map((k) => k.after?.id ?? 0), 'int8')}, ${array(keys.map((k) => k.first + 1), 'int')})
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
    return byKey(ids, found, (r) => r.portfolio_id, (r) => Number(r.n), () => 0);
  };
}
