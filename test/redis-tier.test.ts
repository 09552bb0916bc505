import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisLink, type RedisLink } from '../src/cache/redis-link.js';
import { createResponseStore, type ResponseStore } from '../src/cache/store/tiers.js';
import { createLogger } from '../src/observability/logger.js';
import { createRedisApqStore } from '../src/cache/apq.js';
import { hasRedisServer, startPrivateRedis, type PrivateRedis } from './helpers/redis.js';

// The Redis steps of the response cache and the APQ store, on a Redis of this file's own (port 6392)
// that the tests hang and kill. Each "instance" is a store over a link of its own, as two servers
// would have. What must hold: an answer read before an invalidation of one of its tags is never
// stored; an entry stored before one is never read; an invalidation that cannot reach Redis is
// replayed before Redis is used again (or the whole tier is dropped); and APQ stays within its bounds.

const logger = createLogger('silent');
const run = randomBytes(4).toString('hex');
const answer = (v: string) => ({ data: { v } });
const entity = (typename: string, id: number) => ({ typename, id });

describe.skipIf(!hasRedisServer)('the Redis tier of the response cache', () => {
  let redis: PrivateRedis;
  let inspect: Redis;
  const links: RedisLink[] = [];
  const namespace = `tier-${run}`;

  async function instance(options: { maxUnconfirmed?: number } = {}): Promise<{ store: ResponseStore; link: RedisLink }> {
    const link = createRedisLink({ url: redis.url, commandTimeoutMs: 100, probeIntervalMs: 50, logger });
    links.push(link);
    expect(await link.whenUp(5000)).toBe(true);
    return { link, store: createResponseStore({ maxEntries: 100, maxBytes: 1_000_000, redis: link, namespace, logger, ...options }) };
  }
  /** Read as a new instance would: nothing of its own in memory, so only Redis can answer. */
  async function readFromRedis(session: string | null, key: string) {
    const { store } = await instance();
    return store.forRequest(session).get(key);
  }
  /** One request's miss, then its store of `result` tagged with `entities` (and its session). */
  async function write(store: ResponseStore, session: string | null, key: string, result: object, entities: { typename: string; id: number }[]) {
    const request = store.forRequest(session);
    expect(await request.get(key)).toBeNull();
    await request.set(key, result, entities, 60_000);
  }
  /** Hangs Redis and lets `link` find out (a command times out and opens its breaker). */
  async function hang(store: ResponseStore, link: RedisLink) {
    redis.pause();
    expect(await store.forRequest(null).get(`probe-${randomBytes(3).toString('hex')}`)).toBeNull();
    expect(link.up).toBe(false);
  }

  beforeAll(async () => {
    redis = await startPrivateRedis(6392);
    inspect = redis.inspect();
  });
  afterAll(async () => {
    redis?.resume();
    await Promise.all(links.map((l) => l.close()));
    await redis?.stop();
  });

  it('refuses to store an answer read before an invalidation of one of its tags, public ones too', async () => {
    const [a, b] = [await instance(), await instance()];
    const early = b.store.forRequest(null);
    expect(await early.get('quote')).toBeNull();
    // a price changes (through the other instance) while the early request executes
    await a.store.invalidate(['Instrument:1']);
    await early.set('quote', answer('old price'), [entity('Instrument', 1)], 60_000);
    expect(await readFromRedis(null, 'quote')).toBeNull();

    // a request that began after the invalidation stores its answer for everyone
    await write((await instance()).store, null, 'quote', answer('new price'), [entity('Instrument', 1)]);
    expect(await readFromRedis(null, 'quote')).toEqual(answer('new price'));
  });

  it('rejects on read, and deletes, an entry stored before an invalidation of any of its tags', async () => {
    const [a, b] = [await instance(), await instance()];
    await write(b.store, 'user:1', 'dashboard', answer('before the trade'), [entity('Portfolio', 5), entity('Instrument', 2)]);
    expect(await readFromRedis('user:1', 'dashboard')).toEqual(answer('before the trade'));
    expect(await inspect.keys(`foliograph:${namespace}:*:rc:dashboard`)).toHaveLength(1);

    await a.store.invalidate(['Portfolio:5']);
    expect(await readFromRedis('user:1', 'dashboard')).toBeNull();
    expect(await inspect.keys(`foliograph:${namespace}:*:rc:dashboard`)).toEqual([]);
  });

  it("never lets the writer's own instance copy the old Redis entry back while its invalidation is on its way", async () => {
    const [a, b] = [await instance(), await instance()];
    await write(b.store, 'user:2', 'portfolios', answer('before'), [entity('Portfolio', 6)]);
    // the write's invalidation starts; a read of the same answer on the same instance right after it
    const invalidating = a.store.invalidate(['Session:user:2']);
    const during = a.store.forRequest('user:2').get('portfolios');
    await invalidating;
    expect(await during).toBeNull();
    // nor was the old answer kept in the writer's memory, nor is it in Redis
    expect(await a.store.forRequest('user:2').get('portfolios')).toBeNull();
    expect(await readFromRedis('user:2', 'portfolios')).toBeNull();
  });

  it("applies another instance's acknowledged write to this one's copies at sync, before its message need arrive", async () => {
    const [a, b] = [await instance(), await instance()];
    await b.store.sync('user:5');
    await write(b.store, 'user:5', 'positions', answer('before'), [entity('Portfolio', 50)]);
    await b.store.sync('user:5');
    expect(await b.store.forRequest('user:5').get('positions')).toEqual(answer('before'));
    await a.store.invalidate(['Session:user:5']);
    await b.store.sync('user:5');
    expect(await b.store.forRequest('user:5').get('positions')).toBeNull();
    // another session's copies are left alone
    await write(b.store, 'user:6', 'their positions', answer('theirs'), [entity('Portfolio', 60)]);
    await a.store.invalidate(['Session:user:5']);
    await b.store.sync('user:6');
    expect(await b.store.forRequest('user:6').get('their positions')).toEqual(answer('theirs'));
  });

  it('replays, once Redis answers again, an invalidation that could not reach it', async () => {
    const [a, b] = [await instance(), await instance()];
    await write(b.store, null, 'seven', answer('7 before'), [entity('Instrument', 7)]);
    await write(b.store, null, 'eight', answer('8'), [entity('Instrument', 8)]);
    await hang(a.store, a.link);
    // skipped at once while the breaker is open: nothing reaches the hung Redis
    await a.store.invalidate(['Instrument:7']);
    redis.resume();
    expect(await a.link.whenUp(5000)).toBe(true);
    expect(await readFromRedis(null, 'seven')).toBeNull();
    // exactly: the other answers are still shared
    expect(await readFromRedis(null, 'eight')).toEqual(answer('8'));
  });

  it('drops the whole shared tier (a new epoch) when more invalidations missed Redis than it replays, and tells the others', async () => {
    const a = await instance({ maxUnconfirmed: 1 });
    const b = await instance();
    await write(b.store, null, 'nine', answer('9'), [entity('Instrument', 9)]);
    await write(b.store, 'user:3', 'mine', answer('private'), [entity('Portfolio', 9)]);
    const epoch = await inspect.get(`foliograph:${namespace}:epoch`);
    await hang(a.store, a.link);
    await a.store.invalidate(['Portfolio:100']);
    await a.store.invalidate(['Portfolio:101']);
    redis.resume();
    expect(await a.link.whenUp(5000)).toBe(true);
    expect(await inspect.get(`foliograph:${namespace}:epoch`)).not.toBe(epoch);
    // nothing of the old tier is read, whatever its tags
    expect(await readFromRedis(null, 'nine')).toBeNull();
    expect(await readFromRedis('user:3', 'mine')).toBeNull();
    // and the other instance no longer answers the private answer from its memory, whether its reset
    // message has arrived yet or not (a signed-in request syncs its session first, as here)
    expect(await b.link.whenUp(5000)).toBe(true);
    await b.store.sync('user:3');
    expect(await b.store.forRequest('user:3').get('mine')).toBeNull();
  });

  it('while Redis is skipped, keeps private answers out of memory (their writes cannot be heard) and public ones in', async () => {
    const { store, link } = await instance();
    await write(store, 'user:4', 'private', answer('p'), [entity('Portfolio', 40)]);
    await write(store, null, 'public', answer('q'), [entity('Instrument', 40)]);
    expect(await store.forRequest('user:4').get('private')).toEqual(answer('p'));
    await hang(store, link);
    try {
      expect(await store.forRequest('user:4').get('private')).toBeNull();
      expect(await store.forRequest(null).get('public')).toEqual(answer('q'));
      // an answer computed now is not kept either
      await store.forRequest('user:4').set('other', answer('o'), [], 60_000);
      expect(await store.forRequest('user:4').get('other')).toBeNull();
    } finally {
      redis.resume();
    }
    expect(await link.whenUp(5000)).toBe(true);
  });

  it('begins a new epoch when Redis comes back empty, and serves again', async () => {
    const { store, link } = await instance();
    await redis.kill();
    await redis.restart();
    expect(await link.whenUp(5000)).toBe(true);
    await write(store, null, 'after restart', answer('r'), [entity('Instrument', 50)]);
    expect(await readFromRedis(null, 'after restart')).toEqual(answer('r'));
    expect(await inspect.get(`foliograph:${namespace}:epoch`)).toBeTruthy();
  });
});

describe.skipIf(!hasRedisServer)('the APQ store in Redis', () => {
  let redis: PrivateRedis;
  let link: RedisLink;
  let inspect: Redis;
  let stores = 0;
  const bounds = { maxBytes: 1_000_000, maxEntries: 1000, maxEntryBytes: 10_000, ttlSeconds: 60 };
  const hash = (i: number) => String(i).padStart(64, '0');
  const document = (bytes: number) => `{ ${'x'.repeat(Math.max(0, bytes - 4))} }`;
  const make = (options: Partial<typeof bounds> & { now?: () => number } = {}) => {
    const namespace = `apq-${run}-${++stores}`;
    return { namespace, apq: createRedisApqStore(link, { namespace, ...bounds, ...options }) };
  };

  beforeAll(async () => {
    redis = await startPrivateRedis(6393);
    inspect = redis.inspect();
    link = createRedisLink({ url: redis.url, commandTimeoutMs: 100, logger });
    expect(await link.whenUp(5000)).toBe(true);
  });
  afterAll(async () => {
    await link?.close();
    await redis?.stop();
  });

  it('keeps at most APQ_MAX_ENTRIES documents, the least recently used leaving first', async () => {
    // a clock that ticks at every call: uses within one millisecond would tie
    let t = 0;
    const { apq, namespace } = make({ maxEntries: 3, now: () => ++t });
    for (let i = 1; i <= 3; i++) await apq.set(hash(i), document(50));
    expect(await apq.get(hash(1))).toBe(document(50)); // used: now the most recent
    await apq.set(hash(4), document(50));
    await apq.set(hash(5), document(50));
    expect(await apq.get(hash(2))).toBeUndefined();
    expect(await apq.get(hash(3))).toBeUndefined();
    for (const i of [1, 4, 5]) expect(await apq.get(hash(i))).toBe(document(50));
    expect(await inspect.hlen(`foliograph:${namespace}:apq:documents`)).toBe(3);
    expect(await inspect.zcard(`foliograph:${namespace}:apq:used`)).toBe(3);
  });

  it('keeps at most APQ_MAX_BYTES in all, and no document over APQ_MAX_ENTRY_BYTES', async () => {
    const { apq, namespace } = make({ maxBytes: 1000, maxEntryBytes: 400 });
    await apq.set(hash(1), document(500)); // over the per-document bound: not kept
    expect(await apq.get(hash(1))).toBeUndefined();
    for (let i = 2; i <= 11; i++) await apq.set(hash(i), document(200));
    const held = Number(await inspect.get(`foliograph:${namespace}:apq:bytes`));
    expect(held).toBeLessThanOrEqual(1000);
    // each document and its hash: 264 bytes, so three fit
    expect(await inspect.hlen(`foliograph:${namespace}:apq:documents`)).toBe(3);
    expect(await apq.get(hash(11))).toBe(document(200));
    expect(await apq.get(hash(2))).toBeUndefined();
  });

  it('forgets a document unused for its TTL, and keeps one database apart from another', async () => {
    let t = 1_000_000;
    const { apq } = make({ now: () => t });
    await apq.set(hash(1), document(10), { ttl: 60 });
    t += 59_000;
    expect(await apq.get(hash(1))).toBe(document(10));
    t += 61_000;
    expect(await apq.get(hash(1))).toBeUndefined();

    const other = make().apq;
    await apq.set(hash(2), document(10));
    expect(await other.get(hash(2))).toBeUndefined();
  });

  it('is a miss, at once, while Redis is hung', async () => {
    const { apq } = make();
    await apq.set(hash(1), document(10));
    redis.pause();
    try {
      expect(await apq.get(hash(1))).toBeUndefined(); // times out, opens the breaker
      expect(link.up).toBe(false);
      expect(await apq.get(hash(1))).toBeUndefined(); // skipped
      await apq.set(hash(2), document(10));
    } finally {
      redis.resume();
    }
    expect(await link.whenUp(5000)).toBe(true);
    expect(await apq.get(hash(1))).toBe(document(10));
  });
});
