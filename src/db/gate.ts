/**
 * The database pool's front door: at most `permits` statements (or transactions) of this process
 * run at once, the rest wait here. The driver has a queue of its own, but it is invisible; this one
 * is counted, so the metrics show connections in use, statements waiting and how long they waited,
 * and admission (src/admission/load.ts) can shed new requests (a fast 503) from what the line says
 * instead of letting it grow until every request times out.
 *
 * The line is ordered by priority (see PRIORITIES: writes before partners before signed-in users
 * before anonymous callers), then by arrival. A statement whose request cannot get a connection
 * before its deadline (the line ahead of it × the recent time a permit is held) is not queued: it is
 * refused OVERLOADED at once, and one pushed back that far by more urgent work is dropped from the
 * line the same way (`dropped`). A wait gives up when its request's deadline passes (a write that
 * waited too long must not run after its client was told it failed), and when the database is down
 * nobody waits at all (DATABASE_UNAVAILABLE at once).
 */
import { DatabaseUnavailableError, OverloadedError } from '../errors.js';
import { inSpan } from '../observability/tracing.js';
import { isConnectionError, type Availability } from './availability.js';
import { countStatement, deadlineOf, patienceLeftOf, PRIORITIES, priorityOf, rankOf, rootOf, type Priority, type SqlStats } from './sql-stats.js';

/**
 * One statement: a span (under the loader batch or mutation that sent it) around its wait for a
 * connection and its run. The span carries the statement's text, never its parameters.
 */
function traced<T>(gate: PoolGate, text: string, run: () => Promise<T>, unit?: SqlStats): Promise<T> {
  const kind = statementKind(text);
  return inSpan(`sql ${kind}`, { 'db.system': 'postgresql', 'db.operation.name': kind, 'db.query.text': text.slice(0, 2000) }, () => gate.run(run, kind, unit));
}

/** What a permit was held for: a statement by its first keyword, or a whole transaction. */
export type StatementKind = 'select' | 'insert' | 'update' | 'delete' | 'transaction' | 'other';

export function statementKind(text: string): StatementKind {
  const word = /^\s*\(?\s*(\w+)/.exec(text)?.[1]?.toLowerCase();
  // a WITH … is counted as a select: our CTE statements read (writes use insert/update directly)
  if (word === 'with') return 'select';
  return word === 'select' || word === 'insert' || word === 'update' || word === 'delete' ? word : 'other';
}

export interface PoolGate {
  /**
   * Runs `fn` once a permit is free, holding it until `fn` settles; `kind` labels its duration. The
   * statement waits at the priority of `unit` (the request or batch that sends it), gives up at its
   * deadline, and is refused (OVERLOADED, reason `dropped`) when it could not get a permit before it.
   */
  run<T>(fn: () => Promise<T>, kind?: StatementKind, unit?: SqlStats): Promise<T>;
  /** Most statements running at once (DB_POOL_MAX). */
  readonly permits: number;
  /** Statements or transactions running now. */
  readonly active: number;
  /** Statements waiting for a permit now. */
  readonly waiting: number;
  /** Statements waiting now that a new one of `priority` would wait behind (those of its priority or more urgent). */
  waitingAhead(priority: Priority): number;
  /**
   * How long a new statement of `priority` would wait for a permit, in milliseconds: the line ahead of
   * it times the recent time a permit is held, shared among the permits (0 while one is free).
   */
  expectedWaitMs(priority: Priority): number;
  /** The recent mean time a permit is held, in milliseconds (an exponentially weighted mean of the last ~20). */
  readonly holdMs: number;
  /** When a statement last succeeded (`performance.now()`; 0 before the first). */
  readonly lastSuccess: number;
  /** Calls `listener` with every wait for a permit, in seconds (0 when one was free); returns an unsubscribe. */
  onWait(listener: (seconds: number) => void): () => void;
  /** Calls `listener` with how long each permit was held (the statement's or transaction's time). */
  onDone(listener: (kind: StatementKind, seconds: number) => void): () => void;
  /** Calls `listener` once per request (root unit) when one of its statements is dropped from the line. */
  onDrop(listener: (priority: Priority) => void): () => void;
}

/** The database's own unavailability, as a coded error a client can act on (503, Retry-After). */
function unavailable(cause?: unknown): DatabaseUnavailableError {
  const error = new DatabaseUnavailableError();
  if (cause !== undefined) Object.defineProperty(error, 'cause', { value: cause, enumerable: false });
  return error;
}

/**
 * Why a waiting statement leaves the line. Once the request's write has begun (a mutation of several
 * root fields, one of them committed), the answer must not say "503, retry": it says which field was
 * dropped, and the response keeps its status.
 */
const dropped = (rank: number, unit: SqlStats | undefined) => new OverloadedError('dropped', PRIORITIES[rank], { wholeRequest: !deadlineOf(unit)?.writing });

interface Waiter {
  rank: number;
  unit: SqlStats | undefined;
  grant(): void;
  refuse(reason: unknown): void;
}

// weight of the newest permit hold in the running mean: about the last 20 count
const HOLD_WEIGHT = 0.05;
// one permit in this many goes to a less urgent waiter when one waits (see release)
const FAIR_EVERY = 4;

export interface PoolGateOptions {
  availability?: Availability;
  /** How long a permit is taken to be held until the first statement has finished (default 0: nobody is dropped before then). */
  initialHoldMs?: number;
}

export function createPoolGate(permits: number, options: PoolGateOptions = {}): PoolGate {
  const { availability } = options;
  let active = 0;
  let lastSuccess = 0;
  let holdMs = options.initialHoldMs ?? 0;
  let held = 0;
  // waiters in the order they are served: by rank, then arrival
  const queue: Waiter[] = [];
  // waiters by rank, so that "how many are ahead of a newcomer of this rank" costs no walk
  const byRank = PRIORITIES.map(() => 0);
  const listeners = new Set<(seconds: number) => void>();
  const doneListeners = new Set<(kind: StatementKind, seconds: number) => void>();
  const dropListeners = new Set<(priority: Priority) => void>();
  const report = (seconds: number) => {
    for (const listener of listeners) listener(seconds);
  };
  const ahead = (rank: number) => {
    let n = 0;
    for (let r = 0; r <= rank; r++) n += byRank[r];
    return n;
  };
  /**
   * The wait of a statement of `rank` with `position` statements in line before it. One permit in
   * FAIR_EVERY goes to the first waiter less urgent than the head: a waiter behind the head's kind
   * is that many permits from the front for each such waiter before it, if that is sooner.
   */
  const waitAt = (rank: number, position: number) => {
    if (active < permits) return 0;
    let turns = position;
    const headRank = queue[0]?.rank;
    if (headRank !== undefined && rank > headRank) turns = Math.min(position, FAIR_EVERY * (position - byRank[headRank] + 1));
    return ((turns + 1) * holdMs) / permits;
  };
  const leave = (waiter: Waiter) => {
    const at = queue.indexOf(waiter);
    if (at < 0) return false;
    queue.splice(at, 1);
    byRank[waiter.rank]--;
    return true;
  };
  let grants = 0;
  const release = () => {
    if (queue.length === 0) {
      active--;
      return;
    }
    // The permit passes straight to the next in line, so a newcomer cannot overtake it: the most
    // urgent first, except that every FAIR_EVERY-th permit goes to the first of a less urgent kind,
    // so that a flood of writes slows reads down instead of starving them.
    let at = 0;
    if (++grants % FAIR_EVERY === 0) {
      const lesser = queue.findIndex((w) => w.rank > queue[0].rank);
      if (lesser > 0) at = lesser;
    }
    const [next] = queue.splice(at, 1);
    byRank[next.rank]--;
    next.grant();
  };
  /** Counts a drop once per request, for the metrics. */
  const noteDrop = (rank: number, unit: SqlStats | undefined) => {
    const root = unit && rootOf(unit);
    if (!root || root.dropped) return;
    root.dropped = true;
    for (const listener of dropListeners) listener(PRIORITIES[rank]);
  };
  /**
   * How long the statement of `unit` may still wait: until its deadline, and while it could still run
   * (for the usual time a permit is held) within its request's patience.
   */
  const patienceFor = (unit: SqlStats | undefined) => patienceLeftOf(unit) - holdMs;
  const mayWaitMs = (unit: SqlStats | undefined) => Math.min(deadlineOf(unit)?.remainingMs() ?? Infinity, patienceFor(unit));
  /** Whether the statement of `unit`, `position` statements from the front, can no longer get a permit in the time it may wait. */
  const hopeless = (rank: number, unit: SqlStats | undefined, position: number) => waitAt(rank, position) > mayWaitMs(unit);
  // when the database goes down, nobody in the line would get anywhere: answer them all at once
  availability?.onDown(() => {
    byRank.fill(0);
    for (const waiter of queue.splice(0)) waiter.refuse(unavailable());
  });

  /** Waits in line for a permit at the unit's priority; gives up (leaving the line) at its deadline. */
  function waitInLine(unit: SqlStats | undefined): Promise<void> {
    const rank = rankOf(priorityOf(unit));
    const position = ahead(rank);
    if (hopeless(rank, unit, position)) {
      noteDrop(rank, unit);
      return Promise.reject(dropped(rank, unit));
    }
    const signal = deadlineOf(unit)?.signal;
    const patience = patienceFor(unit);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        leave(waiter);
        clearTimeout(timer);
        reject(signal!.reason);
      };
      // past the request's patience, the statement leaves the line (OVERLOADED, reason dropped)
      const timer =
        patience === Infinity
          ? undefined
          : setTimeout(() => {
              if (!leave(waiter)) return;
              noteDrop(rank, unit);
              waiter.refuse(dropped(rank, unit));
            }, patience);
      const waiter: Waiter = {
        rank,
        unit,
        grant() {
          signal?.removeEventListener('abort', onAbort);
          clearTimeout(timer);
          resolve();
        },
        refuse(reason) {
          signal?.removeEventListener('abort', onAbort);
          clearTimeout(timer);
          reject(reason);
        },
      };
      queue.splice(position, 0, waiter);
      byRank[rank]++;
      signal?.addEventListener('abort', onAbort, { once: true });
      // everyone behind moved back one place: those who can no longer get a permit in time leave now
      for (let i = position + 1; i < queue.length; i++) {
        const behind = queue[i];
        if (hopeless(behind.rank, behind.unit, i)) {
          leave(behind);
          noteDrop(behind.rank, behind.unit);
          behind.refuse(dropped(behind.rank, behind.unit));
          i--;
        }
      }
    });
  }

  return {
    permits,
    get active() {
      return active;
    },
    get waiting() {
      return queue.length;
    },
    waitingAhead: (priority) => ahead(rankOf(priority)),
    expectedWaitMs: (priority) => waitAt(rankOf(priority), ahead(rankOf(priority))),
    get holdMs() {
      return holdMs;
    },
    get lastSuccess() {
      return lastSuccess;
    },
    onWait(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onDone(listener) {
      doneListeners.add(listener);
      return () => doneListeners.delete(listener);
    },
    onDrop(listener) {
      dropListeners.add(listener);
      return () => dropListeners.delete(listener);
    },
    async run<T>(fn: () => Promise<T>, kind: StatementKind = 'other', unit?: SqlStats): Promise<T> {
      if (availability?.down) throw unavailable();
      deadlineOf(unit)?.signal.throwIfAborted();
      if (active < permits) {
        active++;
        report(0);
      } else {
        const queued = performance.now();
        await waitInLine(unit);
        report((performance.now() - queued) / 1000);
      }
      const started = performance.now();
      try {
        if (availability?.down) throw unavailable();
        const result = await fn();
        lastSuccess = performance.now();
        return result;
      } catch (e) {
        if (!isConnectionError(e)) throw e;
        availability?.failed(e);
        throw unavailable(e);
      } finally {
        release();
        const ms = performance.now() - started;
        // the first hold replaces the prior; then each moves the mean by HOLD_WEIGHT of its difference
        holdMs = held++ === 0 ? ms : holdMs + HOLD_WEIGHT * (ms - holdMs);
        for (const listener of doneListeners) listener(kind, ms / 1000);
      }
    },
  };
}

/** Wraps the client a driver hands a transaction's callback (and a savepoint's) so that its statements are counted too. */
function countingCallbacks(args: unknown[], unit: SqlStats | undefined, wrap: (client: object, unit: SqlStats | undefined) => object): unknown[] {
  return args.map((a) =>
    typeof a === 'function' ? (client: object, ...rest: unknown[]) => (a as (...x: unknown[]) => unknown)(wrap(client, unit), ...rest) : a,
  );
}

/** A postgres.js transaction's client: statements counted in `unit`, no gate (the transaction holds its permit). */
function countingPostgresClient<C extends object>(client: C, unit: SqlStats | undefined): C {
  return new Proxy(client, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      if (property === 'unsafe') {
        return (text: string, ...rest: unknown[]) => {
          countStatement(unit, text, rest[0]);
          return (value as (...a: unknown[]) => unknown).call(target, text, ...rest);
        };
      }
      if (property === 'savepoint')
        return (...args: unknown[]) => (value as (...a: unknown[]) => unknown).apply(target, countingCallbacks(args, unit, countingPostgresClient));
      return value;
    },
  });
}

/**
 * A postgres.js client whose statements and transactions go through the gate. Drizzle sends every
 * statement with `unsafe(text, params)` (awaited, sometimes after `.values()`) and every transaction
 * with `begin`; statements inside a transaction use the transaction's own client and its permit.
 * `prepare` says which texts go as prepared statements (see prepare.ts).
 */
export function gatePostgresClient<C extends object>(client: C, gate: PoolGate, prepare: (text: string) => boolean = () => false, unit?: SqlStats): C {
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === 'unsafe') {
        return (text: string, params?: unknown, options?: object) => {
          // postgres.js queries are lazy: nothing is sent until the query is awaited
          const query = (target as unknown as { unsafe: (...a: unknown[]) => PromiseLike<unknown> & { values(): unknown } }).unsafe(text, params, {
            ...options,
            prepare: prepare(text),
          });
          const gated = {
            values() {
              query.values();
              return gated;
            },
            then<R1, R2>(onFulfilled?: (value: unknown) => R1 | PromiseLike<R1>, onRejected?: (reason: unknown) => R2 | PromiseLike<R2>) {
              // counted once it has a connection: a statement the gate refused was never sent (and a
              // replica's refused read, run again on the primary, counts once: see failoverPostgresClient)
              return traced(
                gate,
                text,
                async () => {
                  countStatement(unit, text, params);
                  return await query;
                },
                unit,
              ).then(onFulfilled, onRejected);
            },
          };
          return gated;
        };
      }
      if (property === 'begin') {
        return (...args: unknown[]) =>
          gate.run(
            () => (target as unknown as { begin: (...a: unknown[]) => Promise<unknown> }).begin(...countingCallbacks(args, unit, countingPostgresClient)),
            'transaction',
            unit,
          );
      }
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
}

/**
 * A read replica's gated client that falls back to the primary: a statement the replica cannot run
 * for a connection reason (DATABASE_UNAVAILABLE from its gate: the connection failed, or the replica
 * is already known down) runs once more on the primary's gated client, and `onFail` hears of it, so
 * that a replica dying costs no query. Transactions (`begin`) stay on the replica: a query's reads
 * never need one there.
 */
export function failoverPostgresClient<C extends object>(replica: C, primary: C, onFail: (cause: unknown) => void): C {
  type Lazy = PromiseLike<unknown> & { values(): unknown };
  const unsafeOf = (client: C) => (client as unknown as { unsafe: (...a: unknown[]) => Lazy }).unsafe;
  return new Proxy(replica, {
    get(target, property, receiver) {
      if (property !== 'unsafe') return Reflect.get(target, property, receiver) as unknown;
      return (...args: unknown[]) => {
        const first = unsafeOf(target)(...args);
        let values = false;
        const attempt = {
          values() {
            values = true;
            first.values();
            return attempt;
          },
          then<R1, R2>(onFulfilled?: (value: unknown) => R1 | PromiseLike<R1>, onRejected?: (reason: unknown) => R2 | PromiseLike<R2>) {
            const run = async () => {
              try {
                return await first;
              } catch (e) {
                if (!(e instanceof DatabaseUnavailableError)) throw e;
                onFail(e);
                const again = unsafeOf(primary)(...args);
                if (values) again.values();
                return await again;
              }
            };
            return run().then(onFulfilled, onRejected);
          },
        };
        return attempt;
      };
    },
  });
}

/** The same for PGlite, whose one connection drizzle uses through `query` and `transaction`. */
export function gatePgliteClient<C extends object>(client: C, gate: PoolGate, unit?: SqlStats): C {
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === 'query' || property === 'transaction') {
        const method = Reflect.get(target, property, receiver) as (...a: unknown[]) => Promise<unknown>;
        return (...args: unknown[]) => {
          if (property === 'transaction') return gate.run(() => method.apply(target, countingCallbacks(args, unit, countingPgliteClient)), 'transaction', unit);
          return traced(
            gate,
            String(args[0]),
            () => {
              countStatement(unit, String(args[0]), args[1]);
              return method.apply(target, args);
            },
            unit,
          );
        };
      }
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
}

/** A PGlite transaction's client: statements counted in `unit`, no gate (the transaction holds the connection). */
function countingPgliteClient<C extends object>(client: C, unit: SqlStats | undefined): C {
  return new Proxy(client, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (property !== 'query' || typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        countStatement(unit, String(args[0]), args[1]);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}
