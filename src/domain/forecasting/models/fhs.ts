import { z } from 'zod';
import { ewmaLambda, ewmaVariance } from './ewma.js';
import type { Fitted, ForecastModel, HorizonDistribution } from './model.js';

/**
 * Filtered historical simulation (Barone-Adesi, Giannopoulos and Vosper, 1999): today's volatility
 * from the EWMA recursion, the shape of the distribution from history. Each past return is divided by
 * the volatility EWMA forecast for it the row before, zᵢ = rᵢ/σᵢ; these standardised returns have
 * no volatility clustering left but keep the fat tails and the skew that a normal model throws away.
 *
 * Over h rows the log return is σₜ₊₁√h times a draw from the standardised h-row blocks of history,
 * (rⱼ + … + rⱼ₊ₕ₋₁)/(σⱼ√h) for every start j (overlapping: one block per row, not one per h rows):
 * consecutive returns keep what lies between them — autocorrelation, volatility that rises after a
 * fall (the leverage effect) and decays after a storm — which rescaled single days would lose.
 * Horizons of a fraction of a row (1 trading day of a monthly series) scale the one-row blocks by √h;
 * between whole rows the blocks of the whole part are scaled the same way.
 *
 * Quantiles interpolate the sorted blocks at rank p(n + 1) (Hyndman and Fan's type 6): a new draw
 * from the same distribution falls below the i-th of n sorted values with probability i/(n + 1), so
 * these are the ranks a prediction interval needs. Past the sample's extremes they stay at the extremes.
 *
 * Too little history for a shape (fewer than `minBlocks` blocks, or fewer than `minIndependentBlocks`
 * non-overlapping spans of the horizon: a monthly series of a few years, or 63 days on two years of
 * daily closes) and the log return is the ewma model's normal, exactly: the empirical 0.5% quantile
 * of 60 values is the sample's minimum, and the blocks of 63 days over two years are a few crises
 * seen many times. So fhs forecasts wherever ewma does, and differs from it only where history can say more.
 */
export const fhsParameters = z
  .object({
    lambdaDaily: z.number().gt(0).lt(1).default(0.94),
    lambdaMonthly: z.number().gt(0).lt(1).default(0.97),
    /** Fewest returns to forecast from (as ewma). */
    minReturns: z.number().int().min(3).default(20),
    /** Fewest blocks to take quantiles from: 250 puts more than one block in each 0.5% tail of the 99% interval. */
    minBlocks: z.number().int().min(20).default(250),
    /** Fewest non-overlapping spans of the horizon in that history (blocks ÷ rows): overlapping blocks of a long horizon repeat one another. */
    minIndependentBlocks: z.number().int().min(1).default(40),
    /** History the blocks come from, in trading days; 0 for all of it. */
    windowTradingDays: z.number().int().min(0).default(0),
  })
  .strict();

export type FhsParameters = z.infer<typeof fhsParameters>;

/** The sorted standardised blocks of one length, kept current with the walk. */
interface Blocks {
  /** Blocks that start before this row have been added. */
  added: number;
  /** Blocks that start before this row have been dropped from the window again. */
  dropped: number;
  sorted: number[];
}

/**
 * The EWMA filter and the block distributions over the first `seen` returns of a series: what one fit
 * leaves for the next, longer prefix, so that a walk forward pays one row per step instead of all of them.
 */
interface Walk {
  kind: 'fhs-walk';
  /** The decay and window it was built with: another fit's context starts afresh. */
  key: string;
  seen: number;
  /** returns[seen − 1], to recognise the same series. */
  last: number;
  seedRows: number;
  /** σ² of row `seen`. */
  variance: number;
  /** cumulative[i] = r₀ + … + rᵢ₋₁. */
  cumulative: number[];
  /** sigma[i]: the volatility forecast for rᵢ from r₀ … rᵢ₋₁ (0 before the seed's end). */
  sigma: number[];
  windowRows: number;
  byLength: Map<number, Blocks>;
}

function newWalk(key: string, lambda: number, windowRows: number): Walk {
  // the seed of ewmaVariance, so that σₜ₊₁ is the ewma model's own
  const seedRows = Math.max(3, Math.round(1 / (1 - lambda)));
  return { kind: 'fhs-walk', key, seen: 0, last: NaN, seedRows, variance: 0, cumulative: [0], sigma: [], windowRows, byLength: new Map() };
}

/** Takes in returns[seen … n − 1]: the EWMA recursion of ewma.ts, remembering each row's forecast. */
function advance(walk: Walk, returns: readonly number[], n: number, lambda: number): void {
  for (let i = walk.seen; i < n; i++) {
    const r = returns[i];
    walk.cumulative.push(walk.cumulative[i] + r);
    if (i < walk.seedRows) {
      walk.sigma.push(0);
      walk.variance += (r * r) / walk.seedRows;
    } else {
      walk.sigma.push(Math.sqrt(walk.variance));
      walk.variance = lambda * walk.variance + (1 - lambda) * r * r;
    }
  }
  walk.seen = n;
  walk.last = returns[n - 1];
}

/** The standardised block of `rows` returns starting at row j; NaN where the forecast volatility was 0. */
function block(walk: Walk, j: number, rows: number): number {
  const s = walk.sigma[j];
  return s > 0 ? (walk.cumulative[j + rows] - walk.cumulative[j]) / (s * Math.sqrt(rows)) : NaN;
}

function insertSorted(sorted: number[], x: number): void {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  sorted.splice(lo, 0, x);
}

function removeSorted(sorted: number[], x: number): void {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  if (sorted[lo] === x) sorted.splice(lo, 1);
}

/** The sorted blocks of `rows` returns that lie wholly inside the walk's window, brought up to date. */
function blocksOf(walk: Walk, rows: number): number[] {
  let blocks = walk.byLength.get(rows);
  if (!blocks) {
    blocks = { added: walk.seedRows, dropped: walk.seedRows, sorted: [] };
    walk.byLength.set(rows, blocks);
  }
  const end = walk.seen - rows + 1; // blocks start before this row
  const start = walk.windowRows > 0 ? Math.max(walk.seedRows, walk.seen - walk.windowRows) : walk.seedRows;
  const { sorted } = blocks;
  for (; blocks.dropped < Math.min(start, blocks.added); blocks.dropped++) {
    const x = block(walk, blocks.dropped, rows);
    if (!Number.isNaN(x)) removeSorted(sorted, x);
  }
  blocks.dropped = Math.max(blocks.dropped, start);
  const from = Math.max(blocks.added, start);
  const many = end - from > 64; // catching up (a first fit): append and sort once
  for (let j = from; j < end; j++) {
    const x = block(walk, j, rows);
    if (Number.isNaN(x)) continue;
    if (many) sorted.push(x);
    else insertSorted(sorted, x);
  }
  if (many) sorted.sort((a, b) => a - b);
  blocks.added = Math.max(blocks.added, end);
  return sorted;
}

/** The empirical quantile at rank p(n + 1), linear between ranks, the extremes beyond them. */
export function empiricalQuantile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  const rank = p * (n + 1);
  if (rank <= 1) return sorted[0];
  if (rank >= n) return sorted[n - 1];
  const i = Math.floor(rank);
  return sorted[i - 1] + (rank - i) * (sorted[i] - sorted[i - 1]);
}

/** The log return over `rows` rows: `scale` times a draw from the sorted standardised blocks. */
function distribution(sorted: Float64Array, scale: number): HorizonDistribution {
  if (sorted.length === 0) return { mean: 0, sd: 0, quantile: () => 0, expectedReturn: 0 };
  let sum = 0;
  let sumSq = 0;
  let growth = 0;
  for (const x of sorted) {
    sum += x;
    sumSq += x * x;
    growth += Math.exp(scale * x);
  }
  const n = sorted.length;
  const mean = sum / n;
  const variance = n > 1 ? Math.max(0, (sumSq - n * mean * mean) / (n - 1)) : 0;
  return {
    mean: scale * mean,
    sd: scale * Math.sqrt(variance),
    quantile: (p) => scale * empiricalQuantile(sorted, p),
    expectedReturn: growth / n - 1,
  };
}

export const FHS: ForecastModel<FhsParameters> = {
  name: 'fhs',
  version: '1',
  summary:
    'filtered historical simulation: EWMA volatility (as ewma) times the empirical quantiles of standardised h-row blocks of all history; the ewma normal where history is too short',
  parameters: fhsParameters,
  fit(returns, { params, tradingDaysPerRow, warm }) {
    if (returns.length < params.minReturns) return null;
    const lambda = ewmaLambda(params, tradingDaysPerRow);
    const windowRows = params.windowTradingDays > 0 ? Math.max(params.minBlocks, Math.ceil(params.windowTradingDays / tradingDaysPerRow)) : 0;
    const key = `${lambda}/${windowRows}`;
    const n = returns.length;
    const carried = warm?.state as Partial<Walk> | undefined;
    // a walk from a longer prefix, or from another series, would see rows this fit must not
    const reusable = carried?.kind === 'fhs-walk' && carried.key === key && carried.seen! <= n && returns[carried.seen! - 1] === carried.last;
    let walk = reusable ? (carried as Walk) : newWalk(key, lambda, windowRows);
    advance(walk, returns, n, lambda);
    if (warm) warm.state = walk;
    const fitted: Fitted = {
      horizon(rows) {
        // a later fit may have moved the shared walk on: this fit then rebuilds its own from its prefix
        if (walk.seen !== n) {
          walk = newWalk(key, lambda, windowRows);
          advance(walk, returns, n, lambda);
        }
        // fewer returns than the seed: ewma seeds from all of them
        const variance = n >= walk.seedRows ? walk.variance : ewmaVariance(returns, lambda);
        const whole = Math.max(1, Math.floor(rows + 1e-9));
        const usable = n - walk.seedRows - whole + 1;
        if (usable < params.minBlocks || usable / whole < params.minIndependentBlocks) return { mean: 0, sd: Math.sqrt(variance * rows) };
        const sorted = Float64Array.from(blocksOf(walk, whole));
        if (sorted.length < params.minBlocks) return { mean: 0, sd: Math.sqrt(variance * rows) };
        return distribution(sorted, Math.sqrt(variance * rows));
      },
    };
    return fitted;
  },
};
