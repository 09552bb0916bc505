import { LRUCache } from 'lru-cache';
import { luaScript, type RedisLink } from '../cache/redis-link.js';

/** The answer of a budget to one operation's cost. */
export interface BudgetDecision {
  allowed: boolean;
  /** Cost still available in the rolling minute after this operation (0 when refused). */
  remaining: number;
  limit: number;
  /** When refused: whole seconds until this cost would fit. */
  retryAfterSeconds: number;
}

/** Each caller's budget of estimated cost per rolling minute. */
export interface CostBudget {
  spend(caller: string, cost: number): Promise<BudgetDecision>;
  close(): Promise<void>;
}

export interface BudgetOptions {
  /** Cost each caller may spend per rolling minute. */
  costPerMinute: number;
  /** Clock in milliseconds (tests move it). */
  now?: () => number;
}

const WINDOW_MS = 60_000;

/**
 * The rolling minute is approximated from two fixed minutes, as most rate limiters do: what the
 * previous minute spent counts in proportion to how much of it still lies within the last 60 s.
 */
export function usedInWindow(previous: number, current: number, elapsedFraction: number): number {
  return previous * (1 - elapsedFraction) + current;
}

/** Seconds until `cost` fits under `limit`, as the previous minute's share fades and minutes roll over. */
export function secondsUntilFits(previous: number, current: number, elapsedFraction: number, cost: number, limit: number): number {
  let seconds: number;
  if (current + cost <= limit && previous > 0) {
    // within this minute, once enough of the previous minute has slid out
    const fraction = 1 - (limit - current - cost) / previous;
    seconds = (fraction - elapsedFraction) * 60;
  } else {
    // next minute: this minute becomes "previous" and fades in turn
    const fraction = current > 0 ? Math.max(0, 1 - (limit - cost) / current) : 0;
    seconds = (1 - elapsedFraction) * 60 + fraction * 60;
  }
  return Math.min(120, Math.max(1, Math.ceil(seconds)));
}

function decide(previous: number, current: number, fraction: number, cost: number, limit: number): BudgetDecision {
  const used = usedInWindow(previous, current, fraction);
  if (used + cost > limit) return { allowed: false, remaining: 0, limit, retryAfterSeconds: secondsUntilFits(previous, current, fraction, cost, limit) };
  return { allowed: true, remaining: Math.max(0, Math.floor(limit - used - cost)), limit, retryAfterSeconds: 0 };
}

/** One process's budgets, in an LRU bounded by callers, so a flood of new addresses cannot grow it. */
export function createMemoryBudget({ costPerMinute, now = Date.now }: BudgetOptions): CostBudget {
  const windows = new LRUCache<string, { minute: number; current: number; previous: number }>({ max: 100_000, ttl: 2 * WINDOW_MS });
  return {
    async spend(caller, cost) {
      const t = now();
      const minute = Math.floor(t / WINDOW_MS);
      let w = windows.get(caller);
      if (!w || w.minute < minute - 1) w = { minute, current: 0, previous: 0 };
      else if (w.minute === minute - 1) w = { minute, current: 0, previous: w.current };
      const decision = decide(w.previous, w.current, (t % WINDOW_MS) / WINDOW_MS, cost, costPerMinute);
      if (decision.allowed) w.current += cost;
      windows.set(caller, w);
      return decision;
    },
    async close() {},
  };
}

// Check and spend in one step on the Redis server, so instances sharing a budget cannot both pass
// on the same remaining cost. KEYS: this minute, the previous one. ARGV: cost, limit, fraction.
const SPEND = luaScript(`
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
local used = previous * (1 - tonumber(ARGV[3])) + current
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then
  return {0, tostring(previous), tostring(current)}
end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], 180000)
return {1, tostring(previous), tostring(current)}
`);

/**
 * Budgets shared by every instance through Redis, under the database's namespace (user 7 of staging
 * is not user 7 of production). If Redis cannot answer within its command timeout, or is being
 * skipped, the operation is allowed: a budget protects the database, it must not take the API down.
 */
export function createRedisBudget(link: RedisLink, { costPerMinute, now = Date.now, namespace }: BudgetOptions & { namespace: string }): CostBudget {
  const prefix = `foliograph:${namespace}:budget:`;
  return {
    async spend(caller, cost) {
      const t = now();
      const minute = Math.floor(t / WINDOW_MS);
      const fraction = (t % WINDOW_MS) / WINDOW_MS;
      try {
        const [ok, previous, current] = (await link.run((redis) =>
          SPEND(redis, [`${prefix}${caller}:${minute}`, `${prefix}${caller}:${minute - 1}`], [Math.ceil(cost), costPerMinute, fraction]),
        )) as [number, string, string];
        const decision = decide(Number(previous), Number(current), fraction, cost, costPerMinute);
        return ok === 1 ? { ...decision, allowed: true } : { ...decision, allowed: false, remaining: 0 };
      } catch {
        // the link logs Redis's failures (rate-limited), not each operation it lets through
        return { allowed: true, remaining: costPerMinute, limit: costPerMinute, retryAfterSeconds: 0 };
      }
    },
    async close() {},
  };
}
