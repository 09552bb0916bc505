import { describe, expect, it } from 'vitest';
import { createLoadControl, eventLoopDelay, priorityOfOperation, priorityOfRequest } from '../src/admission/load.js';
import type { Admitted } from '../src/admission/admit.js';
import type { Caller } from '../src/admission/caller.js';
import { createPoolGate } from '../src/db/gate.js';
import type { Priority } from '../src/db/sql-stats.js';
import { overload } from './helpers/overload.js';

// Admission by the database's health (src/admission/load.ts) over real pool gates whose permits the
// test holds: which priority is refused first, and why.

describe('admission by database health and cost', () => {
  const ALL: Priority[] = ['write', 'partner', 'user', 'anonymous'];

  it('sheds by expected wait: anonymous callers past the target, users past twice it, partners past four times, writes only past their deadline', async () => {
    // each permit held 100 ms: three statements ahead of a newcomer on one connection mean 400 ms
    const gate = createPoolGate(1, { initialHoldMs: 100 });
    const load = createLoadControl({ pools: () => [gate], targetWaitMs: 150, queueMax: 100, maxCostInFlight: 1000 });
    expect(ALL.map((p) => load.refusal(p, 10_000))).toEqual([null, null, null, null]);
    const release = overload(gate, 3, 'anonymous');
    await Promise.resolve();
    expect(ALL.map((p) => gate.expectedWaitMs(p))).toEqual([100, 100, 100, 400]);
    expect(ALL.map((p) => load.refusal(p, 10_000))).toEqual([null, null, null, 'db_wait']);
    // the same line, but signed-in users' statements in it: users and anonymous callers wait behind them
    const more = overload(gate, 2, 'user');
    await Promise.resolve();
    expect(ALL.map((p) => load.refusal(p, 10_000))).toEqual([null, null, 'db_wait', 'db_wait']);
    // a write is never shed for its wait; one that could not get a connection before its deadline is told so
    expect(load.refusal('write', 50)).toBe('deadline');
    expect(load.refusal('user', 50)).toBe('db_wait');
    await Promise.all([release(), more()]);
    expect(ALL.map((p) => load.refusal(p, 10_000))).toEqual([null, null, null, null]);
  });

  it('sheds by the line ahead of each priority (DB_QUEUE_MAX), so a line of reads does not hold up writes', async () => {
    const gate = createPoolGate(2);
    const load = createLoadControl({ pools: () => [gate], targetWaitMs: 1000, queueMax: 3, maxCostInFlight: 1000 });
    const reads = overload(gate, 3, 'user');
    await Promise.resolve();
    expect(ALL.map((p) => load.refusal(p, 10_000))).toEqual([null, null, 'db_queue', 'db_queue']);
    await reads();
    const writes = overload(gate, 3, 'write');
    await Promise.resolve();
    expect(ALL.map((p) => load.refusal(p, 10_000))).toEqual(['db_queue', 'db_queue', 'db_queue', 'db_queue']);
    await writes();
  });

  it('looks at the worst of the pools a request may use (the primary and each replica)', async () => {
    const primary = createPoolGate(1);
    const replica = createPoolGate(1);
    const load = createLoadControl({ pools: () => [primary, replica], targetWaitMs: 1000, queueMax: 2, maxCostInFlight: 1000 });
    const release = overload(replica, 2, 'anonymous');
    await Promise.resolve();
    expect(load.refusal('anonymous', 10_000)).toBe('db_queue');
    await release();
    expect(load.refusal('anonymous', 10_000)).toBeNull();
  });

  it('caps the estimated cost in flight, each priority to its share: half for anonymous callers, three quarters for users, all for writes', () => {
    const gate = createPoolGate(1);
    const load = createLoadControl({ pools: () => [gate], targetWaitMs: 1000, queueMax: 100, maxCostInFlight: 1000 });
    // alone, any operation starts (MAX_COST bounds a single one)
    expect(load.refusal('anonymous', 10_000, 5000)).toBeNull();
    const release = load.hold(400);
    expect(load.costInFlight).toBe(400);
    expect(ALL.map((p) => load.refusal(p, 10_000, 200))).toEqual([null, null, null, 'cost_in_flight']);
    expect(ALL.map((p) => load.refusal(p, 10_000, 400))).toEqual([null, null, 'cost_in_flight', 'cost_in_flight']);
    expect(ALL.map((p) => load.refusal(p, 10_000, 601))).toEqual(['cost_in_flight', 'cost_in_flight', 'cost_in_flight', 'cost_in_flight']);
    release();
    release();
    expect(load.costInFlight).toBe(0);
  });

  it("sheds by the event loop's delay, when asked: anonymous callers past the setting, users past twice it, partners past four times, writes never", () => {
    const gate = createPoolGate(1);
    let delay = 0;
    const load = createLoadControl({
      pools: () => [gate],
      targetWaitMs: 1000,
      queueMax: 100,
      maxCostInFlight: 1000,
      loopDelayMs: () => delay,
      maxEventLoopDelayMs: 50,
    });
    expect(ALL.map((p) => load.refusal(p, 10_000))).toEqual([null, null, null, null]);
    delay = 60;
    expect(ALL.map((p) => load.refusal(p, 10_000))).toEqual([null, null, null, 'event_loop']);
    delay = 150;
    expect(ALL.map((p) => load.refusal(p, 10_000))).toEqual([null, null, 'event_loop', 'event_loop']);
    delay = 5000;
    expect(ALL.map((p) => load.refusal(p, 10_000))).toEqual([null, 'event_loop', 'event_loop', 'event_loop']);
    expect(load.refusal('system', 10_000)).toBeNull();
  });

  it("dates a request's arrival one event loop delay before its handler ran, and without the setting sheds nothing for it", () => {
    let delay = 0;
    const load = createLoadControl({ pools: () => [createPoolGate(1)], targetWaitMs: 1000, queueMax: 100, maxCostInFlight: 1000, loopDelayMs: () => delay });
    expect(load.arrivalOf(5000)).toBe(5000);
    delay = 300;
    expect(load.arrivalOf(5000)).toBe(4700);
    expect(ALL.map((p) => load.refusal(p, 10_000))).toEqual([null, null, null, null]);
  });

  it('reads the event loop delay of the process: a block shows in the window it falls in', async () => {
    const loop = eventLoopDelay(500);
    loop.start();
    try {
      await new Promise((r) => setTimeout(r, 50));
      const until = performance.now() + 300;
      while (performance.now() < until) {
        // the event loop is blocked
      }
      let seen = loop.delayMs();
      for (let i = 0; i < 150 && seen < 200; i++) {
        await new Promise((r) => setTimeout(r, 20));
        seen = Math.max(seen, loop.delayMs());
      }
      expect(seen).toBeGreaterThanOrEqual(200);
    } finally {
      loop.stop();
    }
  });

  it('ranks a request by what it claims before parsing, and an operation by what it is', () => {
    const anonymous: Caller = { viewer: { kind: 'anonymous' }, partner: null, budgetKey: 'ip:1' };
    const user: Caller = { viewer: { kind: 'user', userId: 1 }, partner: null, budgetKey: 'user:1' };
    const partner = { id: 1, name: 'p' } as Caller['partner'];
    const adHoc = (query: string): Admitted => ({ request: { method: 'POST', body: {}, search: '', params: { query } }, partner: null });
    expect(priorityOfRequest(adHoc('{ instruments { totalCount } }'), anonymous)).toBe('anonymous');
    expect(priorityOfRequest(adHoc('{ viewer { id } }'), user)).toBe('user');
    expect(priorityOfRequest(adHoc('mutation { recordTrade }'), anonymous)).toBe('write');
    // an automatic persisted query sent by its hash alone may be a mutation: only its parsed type ranks it lower
    expect(
      priorityOfRequest(
        { request: { method: 'POST', body: {}, search: '', params: { extensions: { persistedQuery: { sha256Hash: 'ab' } } } }, partner: null },
        user,
      ),
    ).toBe('write');
    const trusted = (type: string): Admitted => ({ ...adHoc(''), partner, document: { sha256: 'x', name: 'n', type, body: '' } });
    expect(priorityOfRequest(trusted('query'), { ...user, partner })).toBe('partner');
    expect(priorityOfRequest(trusted('mutation'), { ...user, partner })).toBe('write');
    // once parsed, a document that only mentioned the word is what it is
    expect(priorityOfOperation('query', { partner: null, viewer: { kind: 'anonymous' } })).toBe('anonymous');
    expect(priorityOfOperation('mutation', { partner: null, viewer: { kind: 'anonymous' } })).toBe('write');
    expect(priorityOfOperation('query', { partner, viewer: { kind: 'user', userId: 1 } })).toBe('partner');
  });
});
