import { createHash, randomUUID } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import type { Viewer } from '../admission/tokens.js';
import { rows, type Db } from '../db/client.js';
import type { Deadline } from '../db/deadline.js';
import { writeTransaction } from '../db/transaction.js';
import { instruments, portfolios, positions, trades, type PositionRow, type TradeRow } from '../db/schema.js';
import { BadUserInputError, NotFoundError, UnauthenticatedError } from '../errors.js';
import { Decimal, formatDecimal } from './decimal.js';
import { parseId } from './pagination.js';

export type TradeSide = 'BUY' | 'SELL';

export interface RecordTradeInput {
  portfolioId: string;
  symbol: string;
  side: TradeSide;
  /** A validated Decimal string (the scalar checked its form). */
  quantity: string;
  price: string;
  executedAt?: Date | null;
  idempotencyKey?: string | null;
}

export interface WriteOptions {
  /** The request's deadline: past it the write rolls back instead of committing (see writeTransaction). */
  deadline?: Deadline;
}

export interface RecordTradeResult {
  trade: TradeRow;
  /** The position after the trade; null once it is closed. */
  position: PositionRow | null;
  /** True when an idempotency key was replayed and nothing changed. */
  replayed: boolean;
}

/**
 * The holding a position carries from trade to trade. `costBasis` is what the units held cost, kept
 * exact (unrounded) so that the average cost is rounded once, from exact sums, whatever the order
 * and number of trades; `averageCost` is that average rounded for reading.
 */
export interface Holding {
  quantity: string;
  averageCost: string;
  costBasis: string;
  realizedPnl: string;
}

// numeric(38, 8) keeps 30 digits before the point.
const LIMIT = new Decimal('1e30');
// The exact average cost carried through a sell: far below any rounding the API shows.
const BASIS_PLACES = 40;
const FUTURE_SLACK_MS = 24 * 60 * 60 * 1000;

/**
 * The position after one trade, exactly. A buy adds quantity × price to the cost basis, so the
 * average cost is the quantity-weighted mean of every buy; a sell keeps the average cost, takes its
 * share of the basis, and realises (price − average cost) × quantity. Selling more than held, or a
 * result beyond what the database holds (10^30), is refused.
 */
export function applyTrade(current: Holding | null, side: TradeSide, quantity: string, price: string, symbol = 'it'): Holding {
  const held = new Decimal(current?.quantity ?? 0);
  const basis = new Decimal(current?.costBasis ?? 0);
  const realized = new Decimal(current?.realizedPnl ?? 0);
  const q = new Decimal(quantity);
  if (side === 'BUY') {
    const next = held.plus(q);
    if (next.gte(LIMIT)) throw new BadUserInputError(`quantity: the position in ${symbol} would exceed 10^30 units`, 'quantity');
    const nextBasis = basis.plus(q.times(price));
    return {
      quantity: formatDecimal(next),
      averageCost: formatDecimal(nextBasis.dividedBy(next)),
      costBasis: nextBasis.toFixed(),
      realizedPnl: formatDecimal(realized),
    };
  }
  if (q.gt(held)) {
    throw new BadUserInputError(`quantity: cannot sell ${formatDecimal(q)} ${symbol}, the portfolio holds ${formatDecimal(held)}`, 'quantity');
  }
  const average = held.isZero() ? new Decimal(0) : basis.dividedBy(held).toDecimalPlaces(BASIS_PLACES);
  const next = held.minus(q);
  const nextRealized = realized.plus(q.times(new Decimal(price).minus(average)));
  if (nextRealized.abs().gte(LIMIT)) throw new BadUserInputError(`quantity: the realised P&L in ${symbol} would exceed 10^30`, 'quantity');
  return {
    quantity: formatDecimal(next),
    averageCost: current?.averageCost ?? '0',
    costBasis: next.isZero() ? '0' : average.times(next).toFixed(),
    realizedPnl: formatDecimal(nextRealized),
  };
}

/** Keys the server gives trades sent without one. */
export const SERVER_KEY_PREFIX = 'srv-';

/** What makes two requests "the same input" for an idempotency key: everything the client sent. */
export function tradeDigest(symbol: string, side: TradeSide, quantity: string, price: string, executedAt: Date | null): string {
  return createHash('sha256')
    .update(JSON.stringify([symbol, side, quantity, price, executedAt?.toISOString() ?? null]))
    .digest('base64url');
}

interface CheckedTrade {
  portfolioId: number;
  symbol: string;
  side: TradeSide;
  quantity: string;
  price: string;
  executedAt: Date | null;
  idempotencyKey: string;
  digest: string;
}

/** Checks everything that needs no database, so a bad request is refused before any SQL. */
export function checkTradeInput(input: RecordTradeInput): CheckedTrade {
  const symbol = input.symbol.trim().toUpperCase();
  if (!/^[A-Z0-9.^-]{1,20}$/.test(symbol)) throw new BadUserInputError(`symbol: unknown symbol ${JSON.stringify(input.symbol.slice(0, 40))}`, 'symbol');
  for (const field of ['quantity', 'price'] as const) {
    if (!new Decimal(input[field]).gt(0)) throw new BadUserInputError(`${field} must be greater than 0, got ${input[field]}`, field);
  }
  const executedAt = input.executedAt ?? null;
  if (executedAt && (Number.isNaN(executedAt.getTime()) || executedAt.getTime() > Date.now() + FUTURE_SLACK_MS)) {
    throw new BadUserInputError('executedAt must not be more than a day in the future', 'executedAt');
  }
  const given = input.idempotencyKey ?? null;
  if (given !== null && (given.length < 1 || given.length > 200)) {
    throw new BadUserInputError('idempotencyKey must be 1 to 200 characters', 'idempotencyKey');
  }
  // Every trade is recorded under a key: a trade sent without one gets the server's, so that a client
  // told "outcome unknown" (its connection lost at commit) can still learn the truth by retrying with it.
  const key = given ?? `${SERVER_KEY_PREFIX}${randomUUID()}`;
  const portfolioId = parseId(input.portfolioId);
  if (portfolioId === null) throw new NotFoundError('portfolio');
  const quantity = formatDecimal(input.quantity);
  const price = formatDecimal(input.price);
  const digest = tradeDigest(symbol, input.side, quantity, price, executedAt);
  return { portfolioId, symbol, side: input.side, quantity, price, executedAt, idempotencyKey: key, digest };
}

/**
 * Records a trade in one of the viewer's portfolios and updates its position, in one transaction.
 * The portfolio row is locked first, so trades (and replays of one idempotency key) on a portfolio
 * apply one at a time, whatever the concurrency; the position row need not exist yet for that.
 */
export async function recordTrade(db: Db, viewer: Viewer, input: RecordTradeInput, { deadline }: WriteOptions = {}): Promise<RecordTradeResult> {
  if (viewer.kind !== 'user') throw new UnauthenticatedError();
  const t = checkTradeInput(input);
  return writeTransaction(
    db,
    deadline,
    async (tx) => {
      const [portfolio] = await tx
        .select({ id: portfolios.id })
        .from(portfolios)
        .where(and(eq(portfolios.id, t.portfolioId), eq(portfolios.ownerId, viewer.userId)))
        .for('update');
      if (!portfolio) throw new NotFoundError('portfolio');

      const [instrument] = await tx.select({ id: instruments.id }).from(instruments).where(eq(instruments.symbol, t.symbol));
      if (!instrument) throw new BadUserInputError(`symbol: unknown symbol ${JSON.stringify(t.symbol)}`, 'symbol');

      {
        const [first] = await tx
          .select()
          .from(trades)
          .where(and(eq(trades.portfolioId, t.portfolioId), eq(trades.idempotencyKey, t.idempotencyKey)));
        if (first) {
          if (first.requestDigest !== t.digest) {
            throw new BadUserInputError('idempotencyKey was already used for a different trade in this portfolio', 'idempotencyKey');
          }
          const [position] = await tx
            .select()
            .from(positions)
            .where(and(eq(positions.portfolioId, t.portfolioId), eq(positions.instrumentId, first.instrumentId)));
          return { trade: first, position: open(position), replayed: true };
        }
      }

      const [current] = await tx
        .select()
        .from(positions)
        .where(and(eq(positions.portfolioId, t.portfolioId), eq(positions.instrumentId, instrument.id)));
      const next = applyTrade(current ?? null, t.side, t.quantity, t.price, t.symbol);
      if (t.side === 'SELL') await checkSellInTime(tx, t, instrument.id);
      const [position] = await tx
        .insert(positions)
        .values({ portfolioId: t.portfolioId, instrumentId: instrument.id, ...next })
        .onConflictDoUpdate({
          target: [positions.portfolioId, positions.instrumentId],
          set: { ...next, updatedAt: sql`now()` },
        })
        .returning();
      const [trade] = await tx
        .insert(trades)
        .values({
          portfolioId: t.portfolioId,
          instrumentId: instrument.id,
          side: t.side,
          quantity: t.quantity,
          price: t.price,
          executedAt: t.executedAt ?? sql`now()`,
          idempotencyKey: t.idempotencyKey,
          requestDigest: t.digest,
        })
        .returning();
      return { trade, position: open(position), replayed: false };
    },
    t.idempotencyKey,
  );
}

/**
 * A sell dated in the past must not sell units bought after it: replayed in the order of their
 * `executedAt`, the position's trades must never hold less than nothing. So the units held at the
 * sell's date, and at every later trade, must cover it. (The current holding is checked by applyTrade.)
 */
async function checkSellInTime(tx: Db, t: CheckedTrade, instrumentId: number): Promise<void> {
  const at = t.executedAt?.toISOString() ?? null;
  const [row] = await rows<{ held: string; low: string | null; at: string }>(
    tx,
    sql`with moves as (
          select executed_at, id, case when side = 'BUY' then quantity else -quantity end as delta
          from trades where portfolio_id = ${t.portfolioId} and instrument_id = ${instrumentId}
        ), running as (
          select executed_at, sum(delta) over (order by executed_at, id) as held from moves
        ), sell as (select coalesce(${at}::timestamptz, now()) as at)
        select coalesce((select sum(delta) from moves, sell where executed_at <= sell.at), 0)::text as held,
               (select min(held) from running, sell where executed_at > sell.at)::text as low,
               to_json((select at from sell)) #>> '{}' as at`,
  );
  const held = new Decimal(row.held);
  const least = row.low === null ? held : Decimal.min(held, new Decimal(row.low));
  if (least.lt(t.quantity)) {
    const when = row.at.slice(0, 10);
    throw new BadUserInputError(
      `executedAt: a sell of ${formatDecimal(t.quantity)} ${t.symbol} dated ${when} needs units held from then on; ` +
        `the portfolio's trades hold as little as ${formatDecimal(least)} from that date`,
      'executedAt',
    );
  }
}

const open = (p: PositionRow | undefined): PositionRow | null => (p && new Decimal(p.quantity).gt(0) ? p : null);
