import { describe, expect, it } from 'vitest';
import { createGenerations } from '../src/cache/generations.js';
import { createHotCache } from '../src/cache/hot.js';
import type { InstrumentRow } from '../src/db/schema.js';

// The local tiers' guard against a read that began before an invalidation storing what it read:
// bounded marks of the last invalidation per tag, and the hot-entity cache that uses them.

describe('generations', () => {
  it('refuses what a request read before an invalidation of one of its tags, and only that', () => {
    const g = createGenerations();
    const before = g.now();
    g.invalidate(['Instrument:1']);
    expect(g.unchangedSince(['Instrument:1'], before)).toBe(false);
    expect(g.unchangedSince(['Instrument:2', 'Session:user:1'], before)).toBe(true);
    expect(g.unchangedSince(['Instrument:1'], g.now())).toBe(true);
    const beforeAll = g.now();
    g.invalidateAll();
    expect(g.unchangedSince(['anything'], beforeAll)).toBe(false);
    expect(g.unchangedSince(['anything'], g.now())).toBe(true);
  });

  it('stays within its bound of tags, and a forgotten tag refuses rather than admits', () => {
    const g = createGenerations(1000);
    const before = g.now();
    for (let user = 0; user < 200_000; user++) g.invalidate([`Session:user:${user}`]);
    expect(g.size).toBe(1000);
    // session 0 was forgotten long ago: a request that began before its invalidation still may not store
    expect(g.unchangedSince(['Session:user:0'], before)).toBe(false);
    // one that began after every invalidation may, remembered tag or not
    expect(g.unchangedSince(['Session:user:0', 'Session:user:199999'], g.now())).toBe(true);
  });
});

describe('hot-entity cache', () => {
  const row = (id: number, name: string) => ({ id, symbol: `S${id}`, name }) as InstrumentRow;

  it('keeps nothing a batch read before an invalidation of its instrument, and keeps it when read after', async () => {
    const hot = createHotCache({ ttlMs: 60_000 });
    let name = 'before';
    let release: () => void = () => {};
    let calls = 0;
    const byId = hot.instrumentsById(async (ids) => {
      calls++;
      const answer = ids.map((id) => row(id, name));
      await new Promise<void>((r) => (release = r));
      return answer;
    });
    // a batch reads the old row; the instrument changes (and is invalidated) before the batch ends
    const slow = byId([1]);
    name = 'after';
    hot.invalidate(['Instrument:1']);
    release();
    expect((await slow)[0]?.name).toBe('before');
    // so the next request asks the database again, and that answer is kept
    const next = byId([1]);
    release();
    expect((await next)[0]?.name).toBe('after');
    expect(calls).toBe(2);
    expect((await byId([1]))[0]?.name).toBe('after');
    expect(calls).toBe(2);
  });
});
