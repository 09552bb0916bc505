import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisLink, type RedisLink } from '../src/cache/redis-link.js';
import { createWritePositions, UNKNOWN, type WritePositions } from '../src/db/causal.js';
import { createLogger } from '../src/observability/logger.js';
import { hasRedisServer, startPrivateRedis, type PrivateRedis } from './helpers/redis.js';
import { until } from './helpers/until.js';

// Writers' commit positions shared through a Redis of this file's own (port 6396), which the test
// kills and starts again empty: two "instances", each a link and a store of its own, as two servers
// would have. What must hold: while Redis is away no instance claims to know a writer's position,
// and once it is back (empty) every position recorded meanwhile or before is there again.

describe.runIf(hasRedisServer)('write positions in Redis', () => {
  let redis: PrivateRedis;
  let links: RedisLink[];
  let a: WritePositions;
  let b: WritePositions;

  beforeAll(async () => {
    redis = await startPrivateRedis(6396);
    const logger = createLogger('silent');
    links = [0, 1].map(() => createRedisLink({ url: redis.url, commandTimeoutMs: 200, probeIntervalMs: 20, logger }));
    for (const link of links) expect(await link.whenUp(5000)).toBe(true);
    [a, b] = links.map((link) => createWritePositions({ redis: link, namespace: 'positions-test', ttlMs: 60_000 }));
  });
  afterAll(async () => {
    for (const link of links ?? []) await link.close();
    await redis?.stop();
  });

  it('tells every instance the newest position of a writer, whichever recorded it and in whatever order', async () => {
    await a.record(1, 0x200n);
    expect(await b.of(1)).toBe(0x200n);
    await b.record(1, 0x1ffn);
    expect(await a.of(1)).toBe(0x200n);
    // positions across the 32-bit halves compare as numbers
    await b.record(1, 0x1_0000_0000n);
    expect(await a.of(1)).toBe(0x1_0000_0000n);
    expect(await a.of(2)).toBeUndefined();
  });

  it('says UNKNOWN while Redis is away, and once it is back (empty) holds again what was recorded before and meanwhile', async () => {
    await a.record(3, 0x300n);
    await redis.kill();
    await until(
      async () => links.every((link) => !link.up),
      (down) => down,
    );
    expect(await b.of(3)).toBe(UNKNOWN);
    // recorded while Redis is away: known here at once, to the other instance once Redis is back
    await a.record(4, 0x400n);
    expect(await a.of(4)).toBe(UNKNOWN);
    await redis.restart();
    for (const link of links) expect(await link.whenUp(5000)).toBe(true);
    // the restarted Redis lost everything; the recovery wrote back what instance a recorded
    expect(await b.of(3)).toBe(0x300n);
    expect(await b.of(4)).toBe(0x400n);
    expect(await b.of(1)).toBe(0x1_0000_0000n);
  });
});
