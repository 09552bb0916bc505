import { seededRandom } from '../../src/tools/random.js';

// Building blocks of synthetic price series for the forecasting tests: calendars and normal draws.

const DAY = 86_400_000;

/** Weekdays only (Monday to Friday), `n` of them, starting 2020-01-06: a real daily trading calendar. */
export function weekdayDates(n: number): string[] {
  const out: string[] = [];
  for (let t = Date.UTC(2020, 0, 6); out.length < n; t += DAY) {
    const d = new Date(t).getUTCDay();
    if (d !== 0 && d !== 6) out.push(new Date(t).toISOString().slice(0, 10));
  }
  return out;
}

/** ISO dates of the first day of `n` consecutive months starting with January 2000. */
export function monthlyDates(n: number): string[] {
  return Array.from({ length: n }, (_, i) => new Date(Date.UTC(2000, i, 1)).toISOString().slice(0, 10));
}

/** Standard normal draws by Box–Muller over a seeded uniform generator. */
export function normals(seed: number): () => number {
  const uniform = seededRandom(seed);
  return () => {
    const u1 = 1 - uniform(); // (0, 1]: log(u1) is finite
    const u2 = uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  };
}
