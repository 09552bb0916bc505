import { describe, expect, it } from 'vitest';
import { createDeadline } from '../src/db/deadline.js';
import { createPreparePolicy } from '../src/db/prepare.js';
import { documentHash } from '../src/cache/keys.js';
import { createHash } from 'node:crypto';

describe('which statements go prepared', () => {
  it('prepares a text from its third run on, and keeps preparing it', () => {
    const prepare = createPreparePolicy();
    expect([prepare('select 1'), prepare('select 1'), prepare('select 1'), prepare('select 1')]).toEqual([false, false, true, true]);
    expect(prepare('select 2')).toBe(false);
  });

  it('prepares at most maxPrepared texts: texts that vary stay unprepared', () => {
    const prepare = createPreparePolicy({ minRuns: 1, maxPrepared: 3 });
    const texts = Array.from({ length: 10 }, (_, i) => `select ${i}`);
    expect(texts.map(prepare)).toEqual([true, true, true, false, false, false, false, false, false, false]);
    expect(prepare('select 0')).toBe(true);
  });

  it('counts runs of a bounded number of texts: a flood of one-off texts never prepares any', () => {
    const prepare = createPreparePolicy({ minRuns: 2, maxCounted: 10 });
    prepare('select hot');
    for (let i = 0; i < 100; i++) prepare(`select ${i}`);
    // forgotten among the flood: counting starts again
    expect(prepare('select hot')).toBe(false);
    expect(prepare('select hot')).toBe(true);
  });
});

describe('a deadline made lazily', () => {
  it('aborts its signal when first asked for after the deadline passed, and tells the time left', async () => {
    const deadline = createDeadline(20);
    expect(deadline.remainingMs()).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 30));
    expect(deadline.remainingMs()).toBeLessThanOrEqual(0);
    expect(deadline.signal.aborted).toBe(true);
    expect((deadline.signal.reason as { extensions?: { code?: string } }).extensions?.code).toBe('DEADLINE_EXCEEDED');
  });

  it('aborts a signal asked for before the deadline, when it comes; cancel stops it', async () => {
    const running = createDeadline(20);
    const aborted = new Promise((resolve) => running.signal.addEventListener('abort', resolve, { once: true }));
    await aborted;
    expect(running.signal.aborted).toBe(true);
    const answered = createDeadline(20);
    const signal = answered.signal;
    answered.cancel();
    await new Promise((r) => setTimeout(r, 30));
    expect(signal.aborted).toBe(false);
  });
});

describe('document hashes', () => {
  it('are the SHA-256 of the text, remembered or not', () => {
    for (const text of ['{ a }', '{ a }', `{ ${'b '.repeat(10_000)}}`]) expect(documentHash(text)).toBe(createHash('sha256').update(text).digest('hex'));
  });
});

describe.skipIf(!process.env.DATABASE_URL)('on PostgreSQL, a statement run again and again', () => {
  it('is sent as a prepared statement and planned once (generic plan), not planned afresh on every run', async () => {
    const { openGatedPostgres, rows } = await import('../src/db/client.js');
    const { sql } = await import('drizzle-orm');
    // one connection: pg_prepared_statements shows the session's own statements
    const pg = openGatedPostgres(process.env.DATABASE_URL!, { max: 1, applicationName: 'prepare-test', planCacheMode: 'force_generic_plan' });
    try {
      const ids = (n: number) => sql`select g from generate_series(1, 100) g where g = any(${`{${n},${n + 1}}`}::int[])`;
      for (let i = 1; i <= 8; i++) expect(await rows<{ g: number }>(pg.db, ids(i))).toHaveLength(2);
      const [setting] = await rows<{ plan_cache_mode: string }>(pg.db, sql`show plan_cache_mode`);
      expect(setting.plan_cache_mode).toBe('force_generic_plan');
      const prepared = await rows<{ statement: string; generic_plans: string; custom_plans: string }>(
        pg.db,
        sql`select statement, generic_plans::text, custom_plans::text from pg_prepared_statements where statement like '%generate_series(1, 100)%'`,
      );
      // prepared from its third run on; every run after planned by the one generic plan
      expect(prepared).toHaveLength(1);
      expect(Number(prepared[0].custom_plans)).toBe(0);
      expect(Number(prepared[0].generic_plans)).toBeGreaterThanOrEqual(5);
    } finally {
      await pg.close();
    }
  });
});
