import { randomBytes } from 'node:crypto';
import type { Cache } from '@envelop/response-cache';
import type { ExecutionResult } from 'graphql';
import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { createGenerations } from './generations.js';
import { sessionOfTag, sessionTag, tagOfEntity, typeOfTag } from './tags.js';
import { luaScript, type RedisLink } from './redis-link.js';

export interface ResponseStoreOptions {
  /** Most answers kept in process. */
  maxEntries: number;
  /** Most bytes (of JSON) kept in process. */
  maxBytes: number;
  /** A second tier shared by instances, and the channel their invalidations travel on. */
  redis?: RedisLink;
  /** Keeps one database's answers apart from another's in a shared Redis (see namespace.ts). */
  namespace?: string;
  logger: Logger;
  metrics?: Metrics;
  /**
   * Most tags whose invalidation could not reach Redis, kept to be replayed when it answers again;
   * past it the whole shared tier is dropped instead (a new epoch).
   */
  maxUnconfirmed?: number;
}

/** Most tags whose last invalidation the local tier remembers one by one (see generations.ts), and most sessions whose generation it tracks. */
const TRACKED_TAGS = 100_000;

export interface ResponseStore {
  /**
   * The envelop Cache for one request. Its answers are tagged with the request's session (so a
   * caller's writes reach all their private answers, lists included), and an answer is not stored if
   * one of its tags was invalidated after the request began (it may already be stale). `costOf`
   * tells the operation's estimated cost, kept beside its answer for hits before parsing.
   */
  forRequest(session: string | null, costOf?: () => number | null): Cache;
  /**
   * The answer stored here under `key` for a request of `session` (null: a public answer), ready to be
   * written out before anything is parsed; null on a miss (Redis is not asked: the executor's path does).
   */
  peek(key: string, session: string | null): CachedAnswer | null;
  /**
   * Drops every answer tagged with one of these, here at once and (with Redis) on every instance.
   * Waits for Redis at most one command timeout, and not at all while Redis is skipped: what cannot
   * reach Redis is replayed when it answers again.
   */
  invalidate(tags: string[]): Promise<void>;
  /**
   * Brings this process's copies of a session's answers up to date with Redis before a request of
   * that session looks at them (its cached answers, or an identical request in flight): a write
   * acknowledged on any instance before this request was sent is applied here first, even if its
   * message has not arrived yet. One round trip; nothing without Redis or while it is skipped.
   */
  sync(session: string): Promise<void>;
  /**
   * Drops every answer this process holds, and keeps any request already running from storing its
   * own: for when invalidations may have been missed (the LISTEN connection was lost).
   */
  forgetLocal(): void;
  /** Calls `listener` for every invalidation, from this instance or another (e.g. for the hot-entity cache). */
  onInvalidate(listener: (tags: string[]) => void): void;
  /** Calls `listener` whenever invalidations may have been missed (Redis failed, or another instance says it did). */
  onReset(listener: () => void): void;
}


interface Entry {
  /** The answer as JSON (`{"data":…}`): what a hit before parsing writes out, and what envelop's own lookup parses. */
  json: string;
  tags: string[];
  bytes: number;
  /** The operation's estimated cost, charged to the budget of whoever it is served to (null: not known). */
  cost: number | null;
}

/** A cached answer as the HTTP layer writes it. */
export interface CachedAnswer {
  json: string;
  cost: number;
}

// A tag's generation outlives every entry that carries it (entries live at most ENTRY_MAX_TTL_MS),
// so an expired generation can never make an old entry look current again.
const GENERATION_TTL_MS = 3_600_000;
const ENTRY_MAX_TTL_MS = 1_800_000;

// The Redis tier, one database's namespace `ns` (`foliograph:<namespace>:`):
//   ns epoch              the current epoch E (a token): every other key carries it, so a new epoch
//                         drops the whole tier at once
//   ns E:clock            counts invalidations
//   ns E:gen:<tag>        the clock at the tag's last invalidation
//   ns E:rc:<key>         an answer: a hash of its result (r) and of its tags' generations when it
//                         was stored (g:<tag>); read only while every one is still current
// Scripts reach keys built from the epoch, which they read themselves: one Redis server, not a cluster.
// A missing epoch or clock (Redis restarted empty, flushed or evicted them) begins a new epoch.
const EPOCH = `
local ns = ARGV[1]
local function epoch()
  local e = redis.call('GET', KEYS[1])
  if e and redis.call('EXISTS', ns .. e .. ':clock') == 1 then return e end
  e = ARGV[2]
  redis.call('SET', KEYS[1], e)
  redis.call('SET', ns .. e .. ':clock', 0)
  return e
end
`;

// KEYS: epoch. ARGV: ns, a new epoch if needed, key. Returns {epoch, clock[, result, pttl, tags...]}:
// the clock is what the request saw before it executed; an entry with a tag invalidated since it was
// stored is deleted and not returned.
const READ = luaScript(`${EPOCH}
local e = epoch()
local clock = redis.call('GET', ns .. e .. ':clock')
local k = ns .. e .. ':rc:' .. ARGV[3]
local fields = redis.call('HGETALL', k)
local result = nil
local out = {e, clock, '', 0}
for i = 1, #fields, 2 do
  if fields[i] == 'r' then
    result = fields[i + 1]
  else
    local tag = string.sub(fields[i], 3)
    if (redis.call('GET', ns .. e .. ':gen:' .. tag) or '0') ~= fields[i + 1] then
      redis.call('DEL', k)
      return {e, clock}
    end
    out[#out + 1] = tag
  end
end
if not result then return {e, clock} end
out[3] = result
out[4] = redis.call('PTTL', k)
return out
`);

// KEYS: epoch. ARGV: ns, epoch seen, clock seen, key, result, ttl ms, tags... Stores the answer with
// its tags' generations, unless the epoch changed or a tag was invalidated after the request read the
// clock (the answer may predate that write). Returns 1 when stored.
const STORE = luaScript(`
local ns, e, seen = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('GET', KEYS[1]) ~= e or redis.call('EXISTS', ns .. e .. ':clock') == 0 then return 0 end
local fields = {'r', ARGV[5]}
for i = 7, #ARGV do
  local g = redis.call('GET', ns .. e .. ':gen:' .. ARGV[i]) or '0'
  if tonumber(g) > seen then return 0 end
  fields[#fields + 1] = 'g:' .. ARGV[i]
  fields[#fields + 1] = g
end
local k = ns .. e .. ':rc:' .. ARGV[4]
redis.call('DEL', k)
for i = 1, #fields, 400 do redis.call('HSET', k, unpack(fields, i, math.min(i + 399, #fields))) end
redis.call('PEXPIRE', k, ARGV[6])
return 1
`);

// KEYS: epoch. ARGV: ns, a new epoch if needed, channel, message, tags... One atomic step: the clock
// first, every tag's generation to it, then the message to the other instances (completed with the
// generation, see encodeInvalidation). Returns that generation, "<epoch>:<clock>".
const INVALIDATE = luaScript(`${EPOCH}
local e = epoch()
local c = redis.call('INCR', ns .. e .. ':clock')
for i = 5, #ARGV do
  redis.call('SET', ns .. e .. ':gen:' .. ARGV[i], c, 'PX', ${GENERATION_TTL_MS})
end
local at = e .. ':' .. c
redis.call('PUBLISH', ARGV[3], ARGV[4] .. at .. '"}')
return at
`);

// KEYS: epoch. ARGV: ns, a new epoch if needed, tag. Returns "<epoch>:<generation>" of the tag.
const GENERATION = luaScript(`${EPOCH}
local e = epoch()
return e .. ':' .. (redis.call('GET', ns .. e .. ':gen:' .. ARGV[3]) or '0')
`);

// KEYS: epoch. ARGV: ns, the new epoch, channel, message. Drops the whole tier at once (its old keys
// expire by themselves) and tells the other instances to drop their private answers.
const NEW_EPOCH = luaScript(`
local ns = ARGV[1]
local old = redis.call('GET', KEYS[1])
if old then redis.call('PEXPIRE', ns .. old .. ':clock', ${GENERATION_TTL_MS}) end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', ns .. ARGV[2] .. ':clock', 0)
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`);

/**
 * What travels on the invalidation channel: tags to drop, with the generation ("<epoch>:<clock>")
 * the invalidation gave them, or a reset (drop every private answer).
 */
type Message = { from: string; tags: string[]; at: string } | { from: string; reset: true };
const encodeReset = (from: string) => JSON.stringify({ from, reset: true });
/** The message of an invalidation but its generation, which the INVALIDATE script appends (and closes). */
const encodeInvalidation = (from: string, tags: string[]) => `${JSON.stringify({ from, tags }).slice(0, -1)},"at":"`;
function decode(text: string): Message | null {
  try {
    const m = JSON.parse(text) as Partial<{ from: unknown; tags: unknown; reset: unknown; at: unknown }>;
    if (typeof m.from !== 'string') return null;
    if (m.reset === true) return { from: m.from, reset: true };
    if (Array.isArray(m.tags) && typeof m.at === 'string') return { from: m.from, tags: m.tags.filter((t): t is string => typeof t === 'string'), at: m.at };
  } catch {
    /* not ours */
  }
  return null;
}

/**
 * Two tiers of whole answers: an LRU in process, and (with a RedisLink) one shared by instances.
 *
 * Guarantees, on every instance: an answer is never kept by a request that began before one of its
 * tags was invalidated (generations, here and in Redis), an invalidation is one atomic step in Redis
 * that bumps the tags' generations before anyone is told, and no stale answer outlives a Redis
 * failure: while Redis is skipped, private answers neither come from nor go to this process's memory
 * (other instances' writes cannot be heard), invalidations that could not reach Redis are replayed
 * before it is used again, or past `maxUnconfirmed` the whole shared tier is dropped (a new epoch).
 */
export function createResponseStore(options: ResponseStoreOptions): ResponseStore {
  const scope = options.namespace ? `${options.namespace}:` : '';
  const CHANNEL = `foliograph:${scope}invalidate`;
  const NS = `foliograph:${scope}`;
  const EPOCH_KEY = `${NS}epoch`;
  const { logger, metrics, redis: link } = options;
  const maxUnconfirmed = options.maxUnconfirmed ?? 10_000;
  const origin = randomBytes(4).toString('hex');
  let epochs = 0;
  const newEpoch = () => `${origin}${(++epochs).toString(36)}`;
  const byTag = new Map<string, Set<string>>();
  const generations = createGenerations(TRACKED_TAGS);
  const listeners: ((tags: string[]) => void)[] = [];
  const resetListeners: (() => void)[] = [];
  /** The generation ("<epoch>:<clock>") of each session's tag that this process's copies reflect. */
  const synced = new LRUCache<string, string>({ max: TRACKED_TAGS });
  /** Tags whose invalidation did not reach Redis, replayed when it answers again. */
  const unconfirmed = new Set<string>();
  let overflowed = false;

  const local = new LRUCache<string, Entry>({
    max: options.maxEntries,
    maxSize: options.maxBytes,
    sizeCalculation: (e) => Math.max(1, e.bytes),
    ttlAutopurge: false,
    dispose: (entry, key, reason) => {
      for (const tag of entry.tags) {
        const keys = byTag.get(tag);
        keys?.delete(key);
        if (keys?.size === 0) byTag.delete(tag);
      }
      if (reason === 'evict') metrics?.cacheEvictions.inc();
    },
  });

  function dropLocal(tags: string[]) {
    generations.invalidate(tags);
    for (const tag of tags) {
      for (const key of [...(byTag.get(tag) ?? [])]) local.delete(key);
      byTag.delete(tag);
      metrics?.cacheInvalidations.inc({ type: typeOfTag(tag) });
    }
    for (const listener of listeners) listener(tags);
  }

  /** Every private answer here, and every answer still being computed, may have missed a write. */
  function dropLocalPrivate() {
    generations.invalidateAll();
    synced.clear();
    for (const [tag, keys] of [...byTag]) if (sessionOfTag(tag) !== null) for (const key of [...keys]) local.delete(key);
    for (const listener of resetListeners) listener();
  }

  function keep(key: string, entry: Entry, ttlMs: number) {
    local.set(key, entry, { ttl: ttlMs });
    if (!local.has(key)) return; // too big for the byte bound
    for (const tag of entry.tags) {
      let keys = byTag.get(tag);
      if (!keys) byTag.set(tag, (keys = new Set()));
      keys.add(key);
    }
  }

  function remember(tags: string[]) {
    if (overflowed) return;
    for (const tag of tags) unconfirmed.add(tag);
    if (unconfirmed.size > maxUnconfirmed) {
      overflowed = true;
      unconfirmed.clear();
    }
  }

  async function sendInvalidation(redis: Redis, tags: string[]) {
    for (let i = 0; i < tags.length; i += 500) {
      const batch = tags.slice(i, i + 500);
      const at = (await INVALIDATE(redis, [EPOCH_KEY], [NS, newEpoch(), CHANNEL, encodeInvalidation(origin, batch), ...batch])) as string;
      noteSynced(batch, at);
    }
  }

  /** This process's copies of these sessions reflect generation `at` (they were dropped for it). */
  function noteSynced(tags: string[], at: string) {
    for (const tag of tags) if (sessionOfTag(tag) !== null) synced.set(tag, at);
  }

  /** Replays the invalidations that missed Redis, or, past the bound, drops the whole shared tier. */
  async function catchUp(redis: Redis) {
    if (overflowed) {
      await NEW_EPOCH(redis, [EPOCH_KEY], [NS, newEpoch(), CHANNEL, encodeReset(origin)]);
      logger.warn({ maxUnconfirmed }, 'response cache: more invalidations missed Redis than can be replayed: the shared tier was dropped whole');
      overflowed = false;
      unconfirmed.clear();
    }
    const missed = [...unconfirmed];
    await sendInvalidation(redis, missed);
    for (const tag of missed) unconfirmed.delete(tag);
  }

  if (link) {
    link.subscribe(CHANNEL, (text) => {
      const message = decode(text);
      if (!message || message.from === origin) return;
      if ('reset' in message) return dropLocalPrivate();
      dropLocal(message.tags);
      noteSynced(message.tags, message.at);
    });
    link.onDown(dropLocalPrivate);
    link.onRecover(async (redis) => {
      await catchUp(redis);
      // answers begun while Redis was skipped may have missed other instances' writes
      dropLocalPrivate();
    });
    // what was missed during the recovery itself
    link.onUp(() => {
      if (overflowed || unconfirmed.size) void link.run(catchUp).catch(() => {});
    });
  }

  /** While Redis is skipped, this process cannot hear other instances' writes to a session. */
  const localUsableFor = (session: string | null) => session === null || !link || link.up;

  const store: ResponseStore = {
    forRequest(session, costOf = () => null) {
      const tag = session ? sessionTag(session) : null;
      const since = generations.now();
      const localUsable = () => localUsableFor(session);
      let seen: { epoch: string; clock: string } | null = null;
      return {
        async get(key) {
          if (localUsable()) {
            const hit = local.get(key);
            if (hit) {
              metrics?.cacheRequests.inc({ result: 'hit', tier: 'local' });
              return JSON.parse(hit.json) as ExecutionResult;
            }
          }
          if (!link?.up) {
            metrics?.cacheRequests.inc({ result: 'miss', tier: 'local' });
            return null;
          }
          try {
            const reply = (await link.run((redis) => READ(redis, [EPOCH_KEY], [NS, newEpoch(), key]))) as [string, string, string?, number?, ...string[]];
            const [epoch, clock, json, ttl, ...tags] = reply;
            seen = { epoch, clock };
            // An invalidation this process made or heard since the request began may be newer than the
            // entry (its READ can have reached Redis first). One begun before the READ was sent is
            // already applied: Redis applies one connection's commands in the order they were sent, and
            // the replay of invalidations that missed Redis is sent before any read once it is back.
            if (json && typeof ttl === 'number' && ttl > 0 && generations.unchangedSince(tags, since)) {
              metrics?.cacheRequests.inc({ result: 'hit', tier: 'redis' });
              if (localUsable()) keep(key, { json, tags, bytes: json.length, cost: costOf() }, ttl);
              return JSON.parse(json) as ExecutionResult;
            }
          } catch {
            /* the link opened its breaker and logs; a miss */
          }
          metrics?.cacheRequests.inc({ result: 'miss', tier: 'redis' });
          return null;
        },

        async set(key, result, entities, ttl) {
          const tags = [...new Set([...[...entities].map(tagOfEntity), ...(tag ? [tag] : [])])];
          // a write to one of its entities since the request began: the answer may predate it
          if (!generations.unchangedSince(tags, since)) return;
          const json = JSON.stringify(result);
          if (localUsable()) keep(key, { json, tags, bytes: json.length, cost: costOf() }, ttl);
          if (!link?.up || !seen) return;
          const { epoch, clock } = seen;
          await link.run((redis) => STORE(redis, [EPOCH_KEY], [NS, epoch, clock, key, json, Math.min(Math.ceil(ttl), ENTRY_MAX_TTL_MS), ...tags])).catch(() => {});
        },

        invalidate: (entities) => store.invalidate([...entities].map(tagOfEntity)),
      };
    },

    peek(key, session) {
      if (!localUsableFor(session)) return null;
      const hit = local.get(key);
      if (!hit || hit.cost === null) return null;
      metrics?.cacheRequests.inc({ result: 'hit', tier: 'local' });
      return { json: hit.json, cost: hit.cost };
    },

    async sync(session) {
      if (!link?.up) return;
      const tag = sessionTag(session);
      try {
        const current = (await link.run((redis) => GENERATION(redis, [EPOCH_KEY], [NS, newEpoch(), tag]))) as string;
        const known = synced.get(tag);
        if (known === current) return;
        // a write this process has not heard of yet, or one it cannot rule out (it remembers nothing
        // of the session): its copies go, and requests of it still running keep nothing
        if (known !== undefined || byTag.has(tag)) dropLocal([tag]);
        else generations.invalidate([tag]);
        synced.set(tag, current);
      } catch {
        /* the link opened its breaker: private copies are not used until it closes */
      }
    },

    async invalidate(given) {
      const tags = [...new Set(given)];
      if (tags.length === 0) return;
      dropLocal(tags);
      if (!link) return;
      if (!link.up) {
        remember(tags);
        return;
      }
      try {
        await link.run((redis) => sendInvalidation(redis, tags));
      } catch {
        // the breaker is open now: the recovery replays these before Redis is used again
        remember(tags);
      }
    },

    onInvalidate(listener) {
      listeners.push(listener);
    },

    forgetLocal() {
      generations.invalidateAll();
      synced.clear();
      local.clear();
      for (const listener of resetListeners) listener();
    },

    onReset(listener) {
      resetListeners.push(listener);
    },
  };
  return store;
}
