/**
 * The database pool's front door: at most `permits` statements (or transactions) of this process
 * run at once, the rest wait here in arrival order. The driver has a queue of its own, but it is
 * invisible; this one is counted, so the metrics show connections in use, statements waiting and
 * how long they waited, and the server can shed new requests (a fast 503) when the line is long
 * instead of letting it grow until every request times out. A wait gives up when its request's
 * deadline passes (a write that waited too long must not run after its client was told it failed),
 * and when the database is down nobody waits at all (DATABASE_UNAVAILABLE at once).
 */
import { DatabaseUnavailableError } from '../errors.js';
import { inSpan } from '../observability/tracing.js';
import { isConnectionError, type Availability } from './availability.js';
import { countStatement, deadlineOf, type SqlStats } from './sql-stats.js';

/**
 * One statement: a span (under the loader batch or mutation that sent it) around its wait for a
 * connection and its run. The span carries the statement's text, never its parameters.
 */
function traced<T>(gate: PoolGate, text: string, run: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const kind = statementKind(text);
  return inSpan(`sql ${kind}`, { 'db.system': 'postgresql', 'db.operation.name': kind, 'db.query.text': text.slice(0, 2000) }, () =>
    gate.run(run, kind, signal),
  );
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
   * Runs `fn` once a permit is free, holding it until `fn` settles; `kind` labels its duration. A wait
   * gives up when `signal` aborts (the request's deadline).
   */
  run<T>(fn: () => Promise<T>, kind?: StatementKind, signal?: AbortSignal): Promise<T>;
  /** Most statements running at once (DB_POOL_MAX). */
  readonly permits: number;
  /** Statements or transactions running now. */
  readonly active: number;
  /** Statements waiting for a permit now. */
  readonly waiting: number;
  /** When a statement last succeeded (`performance.now()`; 0 before the first). */
  readonly lastSuccess: number;
  /** Calls `listener` with every wait for a permit, in seconds (0 when one was free); returns an unsubscribe. */
  onWait(listener: (seconds: number) => void): () => void;
  /** Calls `listener` with how long each permit was held (the statement's or transaction's time). */
  onDone(listener: (kind: StatementKind, seconds: number) => void): () => void;
}

/** The database's own unavailability, as a coded error a client can act on (503, Retry-After). */
function unavailable(cause?: unknown): DatabaseUnavailableError {
  const error = new DatabaseUnavailableError();
  if (cause !== undefined) Object.defineProperty(error, 'cause', { value: cause, enumerable: false });
  return error;
}

interface Waiter {
  grant(): void;
  refuse(reason: unknown): void;
}

export function createPoolGate(permits: number, options: { availability?: Availability } = {}): PoolGate {
  const { availability } = options;
  let active = 0;
  let lastSuccess = 0;
  const queue: Waiter[] = [];
  const listeners = new Set<(seconds: number) => void>();
  const doneListeners = new Set<(kind: StatementKind, seconds: number) => void>();
  const report = (seconds: number) => {
    for (const listener of listeners) listener(seconds);
  };
  const release = () => {
    const next = queue.shift();
    // the permit passes straight to the next in line, so a newcomer cannot overtake it
    if (next) next.grant();
    else active--;
  };
  // when the database goes down, nobody in the line would get anywhere: answer them all at once
  availability?.onDown(() => {
    for (const waiter of queue.splice(0)) waiter.refuse(unavailable());
  });

  /** Waits in line for a permit; gives up (leaving the line) when `signal` aborts. */
  function waitInLine(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const at = queue.indexOf(waiter);
        if (at >= 0) queue.splice(at, 1);
        reject(signal!.reason);
      };
      const waiter: Waiter = {
        grant() {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        refuse(reason) {
          signal?.removeEventListener('abort', onAbort);
          reject(reason);
        },
      };
      queue.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
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
    async run<T>(fn: () => Promise<T>, kind: StatementKind = 'other', signal?: AbortSignal): Promise<T> {
      if (availability?.down) throw unavailable();
      signal?.throwIfAborted();
      if (active < permits) {
        active++;
        report(0);
      } else {
        const queued = performance.now();
        await waitInLine(signal);
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
        const seconds = (performance.now() - started) / 1000;
        for (const listener of doneListeners) listener(kind, seconds);
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
          countStatement(unit, text, params);
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
              return traced(gate, text, async () => await query, deadlineOf(unit)?.signal).then(onFulfilled, onRejected);
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
            deadlineOf(unit)?.signal,
          );
      }
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
}

/** The same for PGlite, whose one connection drizzle uses through `query` and `transaction`. */
export function gatePgliteClient<C extends object>(client: C, gate: PoolGate, unit?: SqlStats): C {
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === 'query' || property === 'transaction') {
        const method = Reflect.get(target, property, receiver) as (...a: unknown[]) => Promise<unknown>;
        const signal = () => deadlineOf(unit)?.signal;
        return (...args: unknown[]) => {
          if (property === 'transaction')
            return gate.run(() => method.apply(target, countingCallbacks(args, unit, countingPgliteClient)), 'transaction', signal());
          countStatement(unit, String(args[0]), args[1]);
          return traced(gate, String(args[0]), () => method.apply(target, args), signal());
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
