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
