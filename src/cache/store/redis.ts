import type { Redis } from 'ioredis';
import { luaScript } from '../redis-link.js';

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
// generation, see encodeInvalidation in invalidation.ts). Returns that generation, "<epoch>:<clock>".
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

/** What a request saw of the shared tier before it executed: its answer may be stored only if nothing changed since. */
export interface Seen {
  epoch: string;
  clock: string;
}

/** One answer read from the shared tier, with what the reader saw; `json` absent on a miss. */
export interface SharedRead extends Seen {
  json?: string;
  ttlMs?: number;
  tags: string[];
}

/**
 * The shared tier in one Redis, for one database's namespace: each call is one script, atomic in
 * Redis, on the connection it is given (RedisLink.run decides whether Redis is used at all).
 * `newEpoch` names the epoch to begin when Redis holds none (it restarted empty, or was flushed).
 */
export function createSharedTier(namespace: string | undefined, newEpoch: () => string) {
  const scope = namespace ? `${namespace}:` : '';
  const NS = `foliograph:${scope}`;
  const EPOCH_KEY = `${NS}epoch`;
  const channel = `foliograph:${scope}invalidate`;
  return {
    /** The channel invalidations travel on between instances of this namespace. */
    channel,

    async read(redis: Redis, key: string): Promise<SharedRead> {
      const [epoch, clock, json, ttlMs, ...tags] = (await READ(redis, [EPOCH_KEY], [NS, newEpoch(), key])) as [string, string, string?, number?, ...string[]];
      return { epoch, clock, json: json || undefined, ttlMs, tags };
    },

    /** Stores an answer unless one of its tags was invalidated after `seen` (or the epoch changed). */
    async write(redis: Redis, seen: Seen, key: string, json: string, ttlMs: number, tags: string[]): Promise<void> {
      await STORE(redis, [EPOCH_KEY], [NS, seen.epoch, seen.clock, key, json, Math.min(Math.ceil(ttlMs), ENTRY_MAX_TTL_MS), ...tags]);
    },

    /** Moves the tags' generations and publishes `message` (completed with the generation) in one step; returns the generation. */
    async invalidate(redis: Redis, message: string, tags: string[]): Promise<string> {
      return (await INVALIDATE(redis, [EPOCH_KEY], [NS, newEpoch(), channel, message, ...tags])) as string;
    },

    /** The tag's current generation, "<epoch>:<clock>". */
    async generation(redis: Redis, tag: string): Promise<string> {
      return (await GENERATION(redis, [EPOCH_KEY], [NS, newEpoch(), tag])) as string;
    },

    /** Drops the whole tier (a new epoch) and publishes `message`. */
    async dropAll(redis: Redis, message: string): Promise<void> {
      await NEW_EPOCH(redis, [EPOCH_KEY], [NS, newEpoch(), channel, message]);
    },
  };
}

export type SharedTier = ReturnType<typeof createSharedTier>;
