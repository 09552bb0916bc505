import { LRUCache } from 'lru-cache';
import type { Redis } from 'ioredis';
import { luaScript, type RedisLink } from '../cache/redis-link.js';

/**
 * Causal reads by WAL position. PostgreSQL names a position in its write-ahead log (an LSN) as two
 * hexadecimal halves, `16/B374D848`; a standby whose replay has passed a commit's position holds that
 * commit. So a writer's reads may go to a replica once its replay has passed the writer's last commit.
 */
export type Lsn = bigint;

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** An LSN as PostgreSQL writes it; null for anything else (at most 17 characters are looked at). */
export function parseLsn(text: string | null | undefined): Lsn | null {
  if (!text || text.length > 17) return null;
  const m = LSN_TEXT.exec(text);
  return m ? (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`) : null;
}

export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Sixteen hexadecimal digits: in Redis, positions compare as strings in the order they compare as numbers. */
const fixedWidth = (lsn: Lsn) => lsn.toString(16).padStart(16, '0');

/** A position past any WAL: recorded for a writer whose commit position could not be read, it keeps their reads on the primary. */
export const UNREACHABLE: Lsn = 0xffffffffffffffffn;

/** What Redis could not say: a writer's position may be newer than any this instance knows. */
export const UNKNOWN = 'unknown' as const;

export interface WritePositions {
  /** `userId`'s write committed at or before `lsn`: with Redis, every instance knows once this resolves (if Redis took it; else once it answers again). */
  record(userId: number, lsn: Lsn): Promise<void>;
  /** The newest commit position of the user's writes in the last `ttlMs`; UNKNOWN while Redis is down. */
  of(userId: number): Promise<Lsn | undefined | typeof UNKNOWN>;
}

// KEYS: the user's position. ARGV: a position (fixed width), its time to live in ms. Keeps the newer.
const RECORD = luaScript(`
local held = redis.call('GET', KEYS[1])
if not held or held < ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
`);

export interface WritePositionOptions {
  /** Shared by every instance on the same Redis; this process's memory without it. */
  redis?: RedisLink;
  /** The database's cache namespace (user 7 of one database is not user 7 of another). */
  namespace: string;
  /**
   * How long a position matters: past it every replica close enough to serve has replayed it
   * (READ_REPLICA_MAX_LAG_MS and a margin), so it is forgotten.
   */
  ttlMs: number;
}

// how many positions (the most recent) are written again before a recovered Redis is used
const REPLAYED_BEFORE_USE = 2_000;

/**
 * The commit positions of recent writers. This process's own writers are known at once, from memory;
 * with Redis every instance's are, at the cost of one GET for a signed-in caller's query. While Redis
 * cannot answer, a writer's position is UNKNOWN (their reads go to the primary). Once it answers
 * again, every position this process recorded in the last `ttlMs` is written to it again (the most
 * recent before it is used, the rest just after): those that could not reach it, and those a
 * restarted Redis lost.
 */
export function createWritePositions({ redis, namespace, ttlMs }: WritePositionOptions): WritePositions {
  const local = new LRUCache<number, Lsn>({ max: 100_000, ttl: ttlMs });
  const key = (userId: number) => `foliograph:${namespace}:lsn:${userId}`;
  const newer = (a: Lsn | undefined, b: Lsn | undefined) => (a === undefined ? b : b === undefined || a > b ? a : b);
  const write = (r: Redis, userId: number, lsn: Lsn) => RECORD(r, [key(userId)], [fixedWidth(lsn), ttlMs]);
  // The most recent writers before Redis is used again (a recovery step must finish within one
  // command timeout, and runs on the client it is given: the link's own `run` refuses until recovery
  // is done); any others just after.
  let rest: [number, Lsn][] = [];
  redis?.onRecover(async (r) => {
    const all = [...local.entries()];
    rest = all.slice(REPLAYED_BEFORE_USE);
    await Promise.all(all.slice(0, REPLAYED_BEFORE_USE).map(([userId, lsn]) => write(r, userId, lsn)));
  });
  redis?.onUp(() => {
    const later = rest;
    rest = [];
    void redis.run((r) => Promise.all(later.map(([userId, lsn]) => write(r, userId, lsn)))).catch(() => {});
  });
  return {
    async record(userId, lsn) {
      local.set(userId, newer(local.get(userId), lsn)!);
      // a failure opens the link's breaker: recovery writes it again
      await redis?.run((r) => write(r, userId, lsn)).catch(() => {});
    },
    async of(userId) {
      const mine = local.get(userId);
      if (!redis) return mine;
      try {
        const held = (await redis.run((r) => r.get(key(userId)))) as string | null;
        return newer(mine, held === null ? undefined : BigInt(`0x${held}`));
      } catch {
        return UNKNOWN;
      }
    },
  };
}
