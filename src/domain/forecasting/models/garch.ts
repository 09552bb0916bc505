import { z } from 'zod';
import type { ForecastModel } from './model.js';

/**
 * GARCH(1,1) with a constant mean, fitted by Gaussian maximum likelihood:
 *
 *   rₜ = μ + εₜ,   σ²ₜ = ω + αε²ₜ₋₁ + βσ²ₜ₋₁,   ω = v̄(1 − α − β)
 *
 * over a trailing window of returns. The mean μ and the unconditional variance v̄ are the window's
 * sample mean and variance (variance targeting), and α, β maximise the likelihood under α, β ≥ 0 and
 * α + β < 1, by Nelder–Mead on an unconstrained reparametrisation. Unlike EWMA, the forecast
 * variance reverts to v̄ as the horizon grows: over k rows the log return is normal with mean kμ and
 * variance kv̄ + (σ²ₜ₊₁ − v̄)(1 − (α+β)ᵏ)/(1 − α − β), so a calm or a stormy spell counts for less the
 * further ahead one looks.
 */
export const garchParameters = z
  .object({
    /** The fitting window: five years, in trading days (60 rows of a monthly series). */
    windowTradingDays: z.number().int().min(20).default(1260),
    /** Fewest returns to fit on: two years of trading days, and never fewer than 60 rows. */
    minTradingDays: z.number().int().min(10).default(504),
    /** Likelihood evaluations allowed per fit. */
    maxEvaluations: z.number().int().min(10).default(400),
  })
  .strict();

export type GarchParameters = z.infer<typeof garchParameters>;

export interface GarchFit {
  mu: number;
  /** Unconditional variance of a row's return. */
  longRunVariance: number;
  alpha: number;
  beta: number;
  /** σ² of the row after the window's last. */
  nextVariance: number;
}

const MAX_PERSISTENCE = 0.9999;
const logistic = (x: number) => 1 / (1 + Math.exp(-x));
const logit = (p: number) => Math.log(p / (1 - p));

/** α and β from the optimiser's unconstrained coordinates. */
function unpack([x, y]: readonly number[]): { alpha: number; beta: number } {
  const persistence = MAX_PERSISTENCE * logistic(x);
  const alpha = persistence * logistic(y);
  return { alpha, beta: persistence - alpha };
}

function pack(alpha: number, beta: number): number[] {
  const persistence = Math.min(alpha + beta, MAX_PERSISTENCE * 0.999);
  return [logit(Math.max(persistence, 1e-6) / MAX_PERSISTENCE), logit(Math.min(Math.max(alpha / Math.max(persistence, 1e-6), 1e-6), 1 - 1e-6))];
}

/** Filters the variance through the residuals; returns −log-likelihood (up to constants) and σ² of the next row. */
function filter(residuals: Float64Array, longRunVariance: number, alpha: number, beta: number): { nll: number; next: number } {
  const omega = longRunVariance * (1 - alpha - beta);
  let variance = longRunVariance;
  let nll = 0;
  for (let i = 0; i < residuals.length; i++) {
    const e2 = residuals[i] * residuals[i];
    nll += Math.log(variance) + e2 / variance;
    variance = omega + alpha * e2 + beta * variance;
  }
  return { nll, next: variance };
}

/** Minimises f over R² by Nelder–Mead from `start`. */
function nelderMead(f: (x: number[]) => number, start: number[], maxEvaluations: number, step = 0.5): number[] {
  const n = start.length;
  let simplex = [start, ...start.map((_, i) => start.map((v, j) => (i === j ? v + step : v)))].map((x) => ({ x, f: f(x) }));
  let evaluations = simplex.length;
  const combine = (a: number[], b: number[], t: number) => a.map((v, i) => v + t * (b[i] - v));
  while (evaluations < maxEvaluations) {
    simplex.sort((a, b) => a.f - b.f);
    const best = simplex[0];
    const worst = simplex[n];
    if (Math.abs(worst.f - best.f) <= 1e-10 * (Math.abs(best.f) + 1e-12)) break;
    const centroid = start.map((_, i) => simplex.slice(0, n).reduce((s, p) => s + p.x[i], 0) / n);
    const reflected = combine(centroid, worst.x, -1);
    const fr = f(reflected);
    evaluations++;
    if (fr < best.f) {
      const expanded = combine(centroid, worst.x, -2);
      const fe = f(expanded);
      evaluations++;
      simplex[n] = fe < fr ? { x: expanded, f: fe } : { x: reflected, f: fr };
    } else if (fr < simplex[n - 1].f) {
      simplex[n] = { x: reflected, f: fr };
    } else {
      const contracted = fr < worst.f ? combine(centroid, reflected, 0.5) : combine(centroid, worst.x, 0.5);
      const fc = f(contracted);
      evaluations++;
      if (fc < Math.min(fr, worst.f)) {
        simplex[n] = { x: contracted, f: fc };
      } else {
        simplex = simplex.map((p, i) => (i === 0 ? p : { x: combine(best.x, p.x, 0.5), f: NaN }));
        for (const p of simplex.slice(1)) p.f = f(p.x);
        evaluations += n;
      }
    }
  }
  simplex.sort((a, b) => a.f - b.f);
  return simplex[0].x;
}

/** Fits GARCH(1,1) to the returns (all of them: trim to the window first), starting from `start` when given. */
export function fitGarch(returns: readonly number[], maxEvaluations: number, start?: { alpha: number; beta: number }): GarchFit | null {
  const n = returns.length;
  if (n < 3) return null;
  let mu = 0;
  for (const r of returns) mu += r;
  mu /= n;
  const residuals = new Float64Array(n);
  let longRunVariance = 0;
  for (let i = 0; i < n; i++) {
    residuals[i] = returns[i] - mu;
    longRunVariance += residuals[i] * residuals[i];
  }
  longRunVariance /= n - 1;
  if (!(longRunVariance > 0)) return { mu, longRunVariance: 0, alpha: 0, beta: 0, nextVariance: 0 };
  const objective = (x: number[]) => {
    const { alpha, beta } = unpack(x);
    const { nll } = filter(residuals, longRunVariance, alpha, beta);
    return Number.isFinite(nll) ? nll : Number.MAX_VALUE;
  };
  const from = start ?? { alpha: 0.08, beta: 0.9 };
  const { alpha, beta } = unpack(nelderMead(objective, pack(from.alpha, from.beta), maxEvaluations, start ? 0.2 : 0.8));
  return { mu, longRunVariance, alpha, beta, nextVariance: filter(residuals, longRunVariance, alpha, beta).next };
}

/** Variance of the sum of the next `rows` returns (fractional rows by the same formula). */
export function garchHorizonVariance(fit: GarchFit, rows: number): number {
  const persistence = fit.alpha + fit.beta;
  const excess = fit.nextVariance - fit.longRunVariance;
  const decay = persistence > 0 ? (1 - persistence ** rows) / (1 - persistence) : Math.min(rows, 1);
  return Math.max(0, rows * fit.longRunVariance + excess * decay);
}

export const GARCH: ForecastModel<GarchParameters> = {
  name: 'garch',
  version: '1',
  summary: 'GARCH(1,1) by Gaussian maximum likelihood over 5 years, constant mean, variance reverting over the horizon',
  parameters: garchParameters,
  fit(returns, { params, tradingDaysPerRow, warm }) {
    const minRows = Math.max(60, Math.ceil(params.minTradingDays / tradingDaysPerRow));
    const windowRows = Math.max(minRows, Math.ceil(params.windowTradingDays / tradingDaysPerRow));
    if (returns.length < minRows) return null;
    const window = returns.length > windowRows ? returns.slice(-windowRows) : returns;
    const previous = warm?.state as GarchFit | undefined;
    const fit = fitGarch(window, params.maxEvaluations, previous && { alpha: previous.alpha, beta: previous.beta });
    if (!fit) return null;
    if (warm) warm.state = fit;
    return { horizon: (rows) => ({ mean: fit.mu * rows, sd: Math.sqrt(garchHorizonVariance(fit, rows)) }) };
  },
};
