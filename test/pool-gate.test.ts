import { describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createAvailability, isConnectionError } from '../src/db/availability.js';
import { createDeadline } from '../src/db/deadline.js';
import { createPoolGate, statementKind } from '../src/db/gate.js';
import type { Priority, SqlStats } from '../src/db/sql-stats.js';
import { CodedError, ErrorCode } from '../src/errors.js';
import { scopeDb } from '../src/db/client.js';
import { loader } from '../src/loaders/batch.js';
import { createMetrics } from '../src/observability/metrics.js';
import { createTestDatabase } from './helpers/db.js';

/** A promise and the function that settles it: a statement the test holds open. */
function held() {
  let release!: () => void;
  const done = new Promise<void>((resolve) => (release = resolve));
  return { done, release };
}

describe('the pool gate', () => {
  it('runs at most its permits at once, the rest in arrival order, and reports every wait', async () => {
    const gate = createPoolGate(2);
    const waits: number[] = [];
    gate.onWait((s) => waits.push(s));
    const holds = [held(), held(), held(), held()];
    const order: number[] = [];
    const runs = holds.map((h, i) =>
      gate.run(async () => {
        order.push(i);
        await h.done;
      }),
    );
    await Promise.resolve();
    expect([gate.active, gate.waiting]).toEqual([2, 2]);
    expect(order).toEqual([0, 1]);
    holds[1].release();
    await runs[1];
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([0, 1, 2]);
    expect([gate.active, gate.waiting]).toEqual([2, 1]);
    for (const h of holds) h.release();
    await Promise.all(runs);
    expect([gate.active, gate.waiting]).toEqual([0, 0]);
    expect(waits).toHaveLength(4);
    expect(waits.filter((w) => w === 0)).toHaveLength(2);
  });

  it('releases its permit when the work fails', async () => {
    const gate = createPoolGate(1);
    await expect(gate.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(gate.active).toBe(0);
    await expect(gate.run(async () => 'ok')).resolves.toBe('ok');
  });

  it('remembers when work last succeeded (a failure does not count): proof enough that the database answers', async () => {
    const gate = createPoolGate(1);
    expect(gate.lastSuccess).toBe(0);
    await expect(gate.run(() => Promise.reject(new Error('connection refused')))).rejects.toThrow();
    expect(gate.lastSuccess).toBe(0);
    const before = performance.now();
    await gate.run(async () => 1);
    expect(gate.lastSuccess).toBeGreaterThanOrEqual(before);
  });

  it('feeds the pool metrics: connections in use and waiting, and the wait histogram', async () => {
    const gate = createPoolGate(1);
    const metrics = createMetrics({ defaultMetrics: false, pool: gate, idleConnections: async () => 3 });
    const h = [held(), held()];
    const runs = h.map((x) => gate.run(() => x.done));
    await Promise.resolve();
    const during = await metrics.registry.metrics();
    expect(during).toContain('foliograph_db_pool_connections{state="in_use"} 1');
    expect(during).toContain('foliograph_db_pool_connections{state="waiting"} 1');
    expect(during).toContain('foliograph_db_pool_connections{state="idle"} 3');
    expect(during).toContain('foliograph_db_pool_max 1');
    h[0].release();
    h[1].release();
    await Promise.all(runs);
    const after = await metrics.registry.metrics();
    expect(after).toContain('foliograph_db_pool_wait_seconds_count 2');
    expect(Number(/foliograph_db_pool_wait_seconds_sum (\S+)/.exec(after)?.[1])).toBeGreaterThan(0);
  });

  it('names a statement by its first keyword, with a bounded set of kinds', () => {
    expect(
      [
        'select 1',
        '  WITH x as (select 1) select * from x',
        'insert into t values (1)',
        'UPDATE t set a = 1',
        'delete from t',
        '(select 1)',
        'explain select 1',
        'vacuum',
      ].map(statementKind),
    ).toEqual(['select', 'select', 'insert', 'update', 'delete', 'select', 'other', 'other']);
  });

  it('times statements by kind and transactions as a whole in the SQL duration histogram', async () => {
    const database = await createTestDatabase();
    try {
      const metrics = createMetrics({ defaultMetrics: false, pool: database.pool });
      await database.db.execute(sql`select 1`);
      await database.db.transaction(async (t) => {
        await t.execute(sql`select 2`);
      });
      const text = await metrics.registry.metrics();
      expect(text).toContain('foliograph_sql_duration_seconds_count{kind="select"} 1');
      expect(text).toContain('foliograph_sql_duration_seconds_count{kind="transaction"} 1');
    } finally {
      await database.destroy();
    }
  });

  it("hands a loader the gate's own coded refusal, not Drizzle's wrapper around it (its code, status and Retry-After reach the client)", async () => {
    const database = await createTestDatabase({ poolMax: 1 });
    const hold = held();
    const first = database.pool.run(() => hold.done);
    try {
      const request: SqlStats = { statements: 0, priority: 'user', deadline: createDeadline(30) };
      const probe = loader(
        'probe',
        (db) => async (keys: readonly number[]) => {
          await db.execute(sql`select 1`);
          return [...keys];
        },
        { db: scopeDb(database.db, request) },
      );
      const refusal = await probe.load(1).catch((e: unknown) => e);
      expect(refusal).toBeInstanceOf(CodedError);
      expect(refusal).toMatchObject({ extensions: { code: ErrorCode.DEADLINE_EXCEEDED, http: { status: 504 } } });
    } finally {
      hold.release();
      await first;
      await database.destroy();
    }
  });

  it('stands in front of the database: statements beyond the pool wait in its line, transactions hold a permit', async () => {
    const database = await createTestDatabase({ poolMax: 1 });
    const tx = held();
    try {
      const gate = database.pool;
      const waits: number[] = [];
      gate.onWait((s) => waits.push(s));
      const inTx = held();
      const transaction = database.db.transaction(async (t) => {
        await t.execute(sql`select 1`);
        inTx.release();
        await tx.done;
      });
      await inTx.done;
      expect(gate.active).toBe(1);
      // drizzle's queries are lazy: awaiting (then) sends them
      const statement = Promise.resolve(database.db.execute(sql`select 2 as two`));
      await new Promise((r) => setTimeout(r, 20));
      expect(gate.waiting).toBe(1);
      tx.release();
      await transaction;
      await statement;
      expect([gate.active, gate.waiting]).toEqual([0, 0]);
      expect(waits.length).toBe(2);
      expect(waits[1]).toBeGreaterThan(0);
    } finally {
      tx.release();
      await database.destroy();
    }
  });

  it("gives up a wait in line when the request's deadline passes, leaving the line", async () => {
    const gate = createPoolGate(1);
    const hold = held();
    const first = gate.run(() => hold.done);
    const deadline = createDeadline(20);
    let ran = false;
    const waiting = gate.run(
      async () => {
        ran = true;
      },
      'select',
      { statements: 0, deadline },
    );
    await Promise.resolve();
    expect(gate.waiting).toBe(1);
    await expect(waiting).rejects.toMatchObject({ extensions: { code: ErrorCode.DEADLINE_EXCEEDED } });
    expect(gate.waiting).toBe(0);
    hold.release();
    await first;
    // the work that gave up never runs, even once the permit is free
    await new Promise((r) => setTimeout(r, 10));
    expect(ran).toBe(false);
    expect([gate.active, gate.waiting]).toEqual([0, 0]);
    // and a request whose deadline has already passed does not queue at all
    await expect(gate.run(async () => 1, 'select', { statements: 0, deadline })).rejects.toMatchObject({
      extensions: { code: ErrorCode.DEADLINE_EXCEEDED },
    });
  });

  it('turns a lost connection into DATABASE_UNAVAILABLE, checks the database, and while it is down refuses at once, the line included', async () => {
    let reachable = true;
    const states: string[] = [];
    const availability = createAvailability({
      probe: async () => {
        if (!reachable) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      },
      probeIntervalMs: 10,
      onChange: (state) => states.push(state),
    });
    const gate = createPoolGate(1, { availability });
    const refused = Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED' });

    // a lost connection with the database still there: checked, and back up at once
    await expect(gate.run(() => Promise.reject(refused))).rejects.toMatchObject({ extensions: { code: ErrorCode.DATABASE_UNAVAILABLE, retryAfter: 1 } });
    await new Promise((r) => setTimeout(r, 5));
    expect(availability.state).toBe('up');

    // the database gone: the statement holding the permit fails, the one in line is answered at once
    reachable = false;
    const hold = held();
    const first = gate.run(() => hold.done.then(() => Promise.reject(refused)));
    const queued = gate.run(async () => 'never');
    hold.release();
    await expect(first).rejects.toMatchObject({ extensions: { code: ErrorCode.DATABASE_UNAVAILABLE } });
    await expect(queued).rejects.toMatchObject({ extensions: { code: ErrorCode.DATABASE_UNAVAILABLE } });
    expect(availability.down).toBe(true);
    let ran = false;
    await expect(
      gate.run(async () => {
        ran = true;
      }),
    ).rejects.toMatchObject({ extensions: { code: ErrorCode.DATABASE_UNAVAILABLE } });
    expect(ran).toBe(false);

    // it answers again: the probe notices within its interval, and work runs
    reachable = true;
    for (let i = 0; i < 100 && availability.down; i++) await new Promise((r) => setTimeout(r, 5));
    expect(availability.state).toBe('up');
    await expect(gate.run(async () => 'ok')).resolves.toBe('ok');
    expect(states).toEqual(['checking', 'up', 'checking', 'down', 'up']);
    availability.stop();
  });

  it('tells connection failures (socket errors, postgres.js codes, shutdown SQLSTATEs, wrapped by Drizzle) from other errors', () => {
    const coded = (code: string) => Object.assign(new Error(code), { code });
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'CONNECTION_CLOSED', 'CONNECT_TIMEOUT', '57P01', '57P03', '08006', '53300'])
      expect(isConnectionError(coded(code))).toBe(true);
    expect(isConnectionError(new Error('wrapped', { cause: coded('ECONNRESET') }))).toBe(true);
    for (const code of ['23505', '40001', '57014', '22P02']) expect(isConnectionError(coded(code))).toBe(false);
    expect(isConnectionError(new Error('plain'))).toBe(false);
    expect(isConnectionError(null)).toBe(false);
  });
});

describe('the pool gate under overload', () => {
  const unit = (priority: Priority, deadlineMs?: number): SqlStats => ({
    statements: 0,
    priority,
    ...(deadlineMs === undefined ? {} : { deadline: createDeadline(deadlineMs) }),
  });

  it('serves its line by priority, then by arrival (writes, partners, users, anonymous callers, background work), every fourth permit to a less urgent waiter', async () => {
    const gate = createPoolGate(1);
    const hold = held();
    const first = gate.run(() => hold.done);
    const order: string[] = [];
    const queued = (['anonymous', 'user', 'background', 'write', 'anonymous', 'partner', 'write'] as const).map((priority, i) =>
      gate.run(async () => void order.push(`${priority}${i}`), 'select', unit(priority)),
    );
    await Promise.resolve();
    expect(gate.waiting).toBe(7);
    expect([gate.waitingAhead('write'), gate.waitingAhead('partner'), gate.waitingAhead('user'), gate.waitingAhead('anonymous')]).toEqual([2, 3, 4, 6]);
    hold.release();
    await Promise.all([first, ...queued]);
    // the fourth permit goes to the first waiter less urgent than the head of the line
    expect(order).toEqual(['write3', 'write6', 'partner5', 'anonymous0', 'user1', 'anonymous4', 'background2']);
  });

  it('expects the wait from the line ahead and the time a permit is held, and refuses at once what could not start before its deadline', async () => {
    // a permit is taken to be held 100 ms: the second in line behind the held one would wait 200 ms
    const gate = createPoolGate(1, { initialHoldMs: 100 });
    const drops: string[] = [];
    gate.onDrop((p) => drops.push(p));
    expect(gate.expectedWaitMs('anonymous')).toBe(0);
    const hold = held();
    const first = gate.run(() => hold.done);
    expect(gate.expectedWaitMs('anonymous')).toBe(100);
    let ran = 0;
    const work = async () => void ran++;
    const patient = gate.run(work, 'select', unit('anonymous', 150));
    expect(gate.expectedWaitMs('anonymous')).toBe(200);
    expect(gate.expectedWaitMs('write')).toBe(100);
    const hopeless = unit('anonymous', 150);
    await expect(gate.run(work, 'select', hopeless)).rejects.toMatchObject({
      extensions: { code: ErrorCode.OVERLOADED, reason: 'dropped', priority: 'anonymous' },
    });
    expect(gate.waiting).toBe(1);
    // a write goes ahead of the patient one, who can then no longer start in time: it leaves the line at once
    const write = gate.run(work, 'transaction', unit('write', 10_000));
    await expect(patient).rejects.toMatchObject({ extensions: { code: ErrorCode.OVERLOADED, reason: 'dropped' } });
    expect(gate.waiting).toBe(1);
    hold.release();
    await Promise.all([first, write]);
    // only the write ran; each request's drop was counted once, by its priority
    expect(ran).toBe(1);
    expect(drops).toEqual(['anonymous', 'anonymous']);
    expect(hopeless.dropped).toBe(true);
  });

  it('drops a statement from the line once its request could no longer be answered within its patience from its arrival', async () => {
    const gate = createPoolGate(1);
    const drops: string[] = [];
    gate.onDrop((p) => drops.push(p));
    const hold = held();
    const first = gate.run(() => hold.done);
    // 40 ms of patience, all gone since the request arrived 50 ms ago (its earlier statements, its parsing)
    const request: SqlStats = { statements: 0, priority: 'user', deadline: createDeadline(10_000), patienceMs: 40, arrivedAt: performance.now() - 50 };
    const batch = { statements: 0, parent: request };
    const late = gate.run(async () => 1, 'select', batch);
    // it never joins the line (counted from its first wait, it would wait its 40 ms)
    expect(gate.waiting).toBe(0);
    await expect(late).rejects.toMatchObject({ extensions: { code: ErrorCode.OVERLOADED, reason: 'dropped' } });
    expect(drops).toEqual(['user']);
    // a write has no patience but its deadline: it waits
    const write = gate.run(async () => 'written', 'transaction', unit('write', 10_000));
    await new Promise((r) => setTimeout(r, 60));
    expect(gate.waiting).toBe(1);
    hold.release();
    await expect(write).resolves.toBe('written');
    await first;
  });

  it('counts the time its statement will hold the connection against the patience: one that could only finish late is dropped at once', async () => {
    const gate = createPoolGate(1, { initialHoldMs: 100 });
    const hold = held();
    const first = gate.run(() => hold.done);
    const arrivedAt = performance.now();
    // next in line, it gets the permit in about 100 ms and holds it about 100 ms: 200 ms from now
    const late = gate.run(async () => 'late', 'select', { statements: 0, priority: 'user', patienceMs: 150, arrivedAt });
    // dropped before it joins the line (its wait alone, 100 ms, would fit the 150)
    expect(gate.waiting).toBe(0);
    await expect(late).rejects.toMatchObject({ extensions: { code: ErrorCode.OVERLOADED, reason: 'dropped', priority: 'user' } });
    const inTime = gate.run(async () => 'in time', 'select', { statements: 0, priority: 'user', patienceMs: 10_000, arrivedAt });
    expect(gate.waiting).toBe(1);
    hold.release();
    await expect(inTime).resolves.toBe('in time');
    await first;
  });

  it("expects a less urgent waiter's wait from its fair turns: a user behind 30 writes waits about four permits, not thirty", async () => {
    const gate = createPoolGate(1, { initialHoldMs: 100 });
    const hold = held();
    const first = gate.run(() => hold.done);
    const writes = Array.from({ length: 30 }, () => gate.run(async () => {}, 'transaction', unit('write')));
    expect(gate.expectedWaitMs('write')).toBe(3100);
    // every fourth permit goes to the first less urgent waiter: a newcomer user is the fourth in turn
    expect(gate.expectedWaitMs('user')).toBe(500);
    const user = gate.run(async () => {}, 'select', unit('user'));
    // the second user behind it waits for two fair turns
    expect(gate.expectedWaitMs('user')).toBe(900);
    hold.release();
    await Promise.all([first, ...writes, user]);
  });

  it('answers a statement dropped after its request began a write without a 503 for the whole response (a part may be applied)', async () => {
    const gate = createPoolGate(1, { initialHoldMs: 1000 });
    const hold = held();
    const first = gate.run(() => hold.done);
    const deadline = createDeadline(500);
    const before = await gate.run(async () => 1, 'transaction', { statements: 0, priority: 'write', deadline }).catch((e: unknown) => e);
    expect(before).toMatchObject({ extensions: { code: ErrorCode.OVERLOADED, reason: 'dropped', http: { status: 503 } } });
    deadline.holdForWrite();
    const after = (await gate.run(async () => 1, 'transaction', { statements: 0, priority: 'write', deadline }).catch((e: unknown) => e)) as CodedError;
    expect(after.extensions).toMatchObject({ code: ErrorCode.OVERLOADED, reason: 'dropped' });
    expect(after.extensions.http).toBeUndefined();
    hold.release();
    await first;
  });

  it('counts a request once however many of its statements are dropped', async () => {
    const gate = createPoolGate(1, { initialHoldMs: 1000 });
    const drops: string[] = [];
    gate.onDrop((p) => drops.push(p));
    const hold = held();
    const first = gate.run(() => hold.done);
    const request = unit('user', 500);
    const batches = [
      { statements: 0, parent: request },
      { statements: 0, parent: request },
    ];
    const results = await Promise.allSettled(batches.map((b) => gate.run(async () => 1, 'select', b)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(drops).toEqual(['user']);
    hold.release();
    await first;
  });
});
