import type { KeyValueCache, KeyValueCacheSetOptions } from '@apollo/utils.keyvaluecache';
import type { Admitted, Caller, IncomingGraphQL } from '../admission/index.js';
import type { CostBudget } from '../limits/budget.js';
import { luaScript, type RedisLink } from './redis-link.js';

export interface RedisApqOptions {
  /** The database's namespace (see cache/namespace.ts). */
  namespace: string;
  /** Most bytes (documents and their hashes) kept in all. */
  maxBytes: number;
  /** Most documents kept. */
  maxEntries: number;
  /** A larger document is run but not kept: its client keeps sending its text. */
  maxEntryBytes: number;
  /** How long a document nobody uses is kept. */
  ttlSeconds: number;
  /** Clock in milliseconds (tests move it). */
  now?: () => number;
}

// KEYS: documents (a hash), their last use (a sorted set), bytes held. Every change keeps the three
// in step in one atomic step, and documents leave least recently used first.
const DROP = `
local function drop(k)
  local size = redis.call('HSTRLEN', KEYS[1], k)
  if redis.call('HDEL', KEYS[1], k) == 1 then redis.call('DECRBY', KEYS[3], size + #k) end
  redis.call('ZREM', KEYS[2], k)
end
`;

// ARGV: hash, document, now ms, ttl ms, max bytes, max entries.
const SET = luaScript(`${DROP}
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
for _, k in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - ttl)) do drop(k) end
drop(ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCRBY', KEYS[3], #ARGV[1] + #ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
while redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[6]) or tonumber(redis.call('GET', KEYS[3]) or '0') > tonumber(ARGV[5]) do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not oldest then break end
  drop(oldest)
end
return 1
`);

// ARGV: hash, now ms, ttl ms. A document unused past its TTL is a miss (the next SET removes it).
const GET = luaScript(`
local document = redis.call('HGET', KEYS[1], ARGV[1])
if not document then return false end
if tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]) or '0') < tonumber(ARGV[2]) - tonumber(ARGV[3]) then return false end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return document
`);

const DELETE = luaScript(`${DROP}
local held = redis.call('HEXISTS', KEYS[1], ARGV[1])
drop(ARGV[1])
return held
`);

/**
 * Apollo's KeyValueCache over Redis, for the APQ store shared by instances: bounded by bytes, by
 * count and per document, so that registrations (any client may make them) cannot grow Redis without
 * end. A Redis that does not answer is a miss (the client then sends the text), never a failed request.
 */
export function createRedisApqStore(
  link: RedisLink,
  { namespace, maxBytes, maxEntries, maxEntryBytes, ttlSeconds, now = Date.now }: RedisApqOptions,
): KeyValueCache<string> {
  const keys = ['documents', 'used', 'bytes'].map((k) => `foliograph:${namespace}:apq:${k}`);
  const ttlMs = (options?: KeyValueCacheSetOptions) => 1000 * (options?.ttl || ttlSeconds);
  return {
    async get(hash) {
      const document = await link.run((redis) => GET(redis, keys, [hash, now(), 1000 * ttlSeconds])).catch(() => null);
      return typeof document === 'string' ? document : undefined;
    },
    async set(hash, document, options) {
      if (Buffer.byteLength(document) + hash.length > Math.min(maxEntryBytes, maxBytes)) return;
      await link.run((redis) => SET(redis, keys, [hash, document, now(), ttlMs(options), maxBytes, maxEntries])).catch(() => undefined);
    },
    async delete(hash) {
      return (await link.run((redis) => DELETE(redis, keys, [hash])).catch(() => 0)) === 1;
    },
  };
}

/** The prefix Apollo Server puts before a hash in its APQ store (its PrefixingKeyValueCache's `apq:`). */
const APQ_KEY_PREFIX = 'apq:';

export interface RegistrationChargeOptions {
  /** The APQ store Apollo registers documents in. */
  store: KeyValueCache<string>;
  budget: CostBudget;
  /** A registration's fixed cost; its document's length in bytes is added. */
  baseCost?: number;
  /** Told of each registration charged, and whether it was allowed. */
  onCharge?: (allowed: boolean) => void;
}

/** The request without its persistedQuery extension: its query runs, and Apollo registers nothing. */
function withoutRegistration(request: IncomingGraphQL): IncomingGraphQL {
  const { persistedQuery: _dropped, ...extensions } = request.params.extensions ?? {};
  const params = { ...request.params, extensions };
  if (request.method === 'POST') {
    return { ...request, params, body: request.body && typeof request.body === 'object' ? { ...(request.body as object), extensions } : request.body };
  }
  const search = new URLSearchParams(request.search);
  search.set('extensions', JSON.stringify(extensions));
  return { ...request, params, search: `?${search}` };
}

/**
 * Registrations of automatic persisted queries are paid for by whoever makes them: a query sent with
 * a hash that the store does not hold yet costs `baseCost` plus its length in bytes, charged to the
 * caller's budget, so no caller can fill the shared store (or churn others' documents out of it)
 * faster than its budget allows. Past the budget the query still runs (as any query would, if the
 * budget then allows it) but is not registered: its client keeps sending the text. Partners never
 * register (their documents are trusted ones), and a hash the store holds costs nothing more.
 */
export function createRegistrationCharge({ store, budget, baseCost = 1000, onCharge }: RegistrationChargeOptions) {
  return async (admitted: Admitted, caller: Caller): Promise<Admitted> => {
    const { params } = admitted.request;
    const hash = params.extensions?.persistedQuery?.sha256Hash;
    if (admitted.partner || typeof params.query !== 'string' || typeof hash !== 'string') return admitted;
    // Apollo keeps its documents under this prefix in the store it is given
    if ((await store.get(`${APQ_KEY_PREFIX}${hash}`).catch(() => undefined)) !== undefined) return admitted;
    const decision = await budget.spend(caller.budgetKey, baseCost + Buffer.byteLength(params.query));
    onCharge?.(decision.allowed);
    return decision.allowed ? admitted : { ...admitted, request: withoutRegistration(admitted.request) };
  };
}
