import type { PositionRow } from '../db/schema.js';
import { Decimal, formatDecimal } from './decimal.js';

export interface ValuationResult {
  marketValue: string;
  costBasis: string;
  unrealizedPnl: string;
  asOf: string | null;
  unpricedPositions: number;
}

export interface PricePoint {
  date: string;
  close: string;
}

/** quantity × close, exact, rounded half-even to 8 places. */
export function marketValue(quantity: string, close: string): string {
  return formatDecimal(new Decimal(quantity).times(close));
}

/** quantity × close − what the units cost (the exact cost basis, not the rounded average). */
export function unrealizedPnl(quantity: string, costBasis: string, close: string): string {
  return formatDecimal(new Decimal(quantity).times(close).minus(costBasis));
}

/**
 * Values open positions at their latest prices. Sums are exact; only the results are rounded. A
 * valuation is as fresh as its stalest price, so asOf is the oldest latest-price date used.
 */
export function valuePositions(positions: PositionRow[], latest: (PricePoint | null)[]): ValuationResult {
  let value = new Decimal(0);
  let cost = new Decimal(0);
  let asOf: string | null = null;
  let unpriced = 0;
  positions.forEach((p, i) => {
    const price = latest[i];
    if (!price) {
      unpriced++;
      return;
    }
    value = value.plus(new Decimal(p.quantity).times(price.close));
    cost = cost.plus(p.costBasis);
    if (asOf === null || price.date < asOf) asOf = price.date;
  });
  return {
    marketValue: formatDecimal(value),
    costBasis: formatDecimal(cost),
    unrealizedPnl: formatDecimal(value.minus(cost)),
    asOf,
    unpricedPositions: unpriced,
  };
}
