/**
 * Whether the database can be reached, learnt from the statements themselves. A statement that fails
 * for a connection reason (refused, reset, closed, a server shutting down or starting up) starts a
 * probe at once; if the probe fails too, the database is `down`: waits for a connection end at once
 * with DATABASE_UNAVAILABLE (a fast 503 instead of every request hanging until its deadline), and the
 * probe runs again every `probeIntervalMs` until the database answers. /readyz follows the same state,
 * so it comes back within one probe interval of the database.
 */

// Node's socket errors and postgres.js's own connection errors.
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
]);

// SQLSTATEs that say the server cannot serve this connection: class 08 (connection exception),
// admin_shutdown (also what pg_terminate_backend sends), crash_shutdown, cannot_connect_now, and
// too_many_connections.
const UNAVAILABLE_STATES = /^(08...|57P01|57P02|57P03|53300)$/;

/** The codes of `error` and of what it wraps (Drizzle wraps driver errors in `cause`), outermost first. */
function codesOf(error: unknown): string[] {
  const codes: string[] = [];
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
    e = (e as { cause?: unknown }).cause;
  }
  return codes;
}

/** True when `error` says the database could not be reached. */
export function isConnectionError(error: unknown): boolean {
  return codesOf(error).some((code) => CONNECTION_CODES.has(code) || UNAVAILABLE_STATES.test(code));
}

/** True when PostgreSQL cancelled the statement (statement_timeout, or a cancel request). */
export function isStatementCancelled(error: unknown): boolean {
  return codesOf(error).includes('57014');
}

export type AvailabilityState = 'up' | 'checking' | 'down';

export interface AvailabilityOptions {
  /** Runs one cheap statement on a connection of its own; rejects when the database cannot answer. */
  probe: () => Promise<void>;
  /** How often the probe runs while the database is down. */
  probeIntervalMs?: number;
  /** Told of every change of state, and the state before it (metrics, logs). */
  onChange?: (state: AvailabilityState, previous: AvailabilityState, cause?: unknown) => void;
}

export interface Availability {
  readonly state: AvailabilityState;
  /** True while the database is known to be unreachable: do not even wait for a connection. */
  readonly down: boolean;
  /** A statement failed for a connection reason: check the database now. */
  failed(cause: unknown): void;
  /** Runs the probe once (a connection of its own, so it never waits behind requests); rejects when the database cannot answer. */
  check(): Promise<void>;
  /** Calls `listener` once each time the database goes down (the pool gate empties its line then). */
  onDown(listener: () => void): () => void;
  stop(): void;
}

export function createAvailability({ probe, probeIntervalMs = 250, onChange }: AvailabilityOptions): Availability {
  let state: AvailabilityState = 'up';
  let probing = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const downListeners = new Set<() => void>();

  const set = (next: AvailabilityState, cause?: unknown) => {
    if (next === state) return;
    const previous = state;
    state = next;
    onChange?.(next, previous, cause);
    if (next === 'down') for (const listener of downListeners) listener();
  };

  async function check() {
    if (probing || stopped) return;
    probing = true;
    try {
      await probe();
      set('up');
    } catch (e) {
      set('down', e);
      timer = setTimeout(() => void check(), probeIntervalMs);
      timer.unref();
    } finally {
      probing = false;
    }
  }

  return {
    get state() {
      return state;
    },
    get down() {
      return state === 'down';
    },
    failed(cause) {
      if (state === 'up') set('checking', cause);
      if (state !== 'down') void check();
    },
    async check() {
      try {
        await probe();
      } catch (e) {
        if (isConnectionError(e)) this.failed(e);
        throw e;
      }
    },
    onDown(listener) {
      downListeners.add(listener);
      return () => downListeners.delete(listener);
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
