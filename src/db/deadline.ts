import { DeadlineExceededError } from '../errors.js';

/**
 * A request's deadline, as everything below the HTTP layer sees it: the signal that aborts at the
 * deadline, and the time left. Waits for a database connection give up when it aborts, loaders send
 * no further batch, and a transaction gives PostgreSQL no more than the time left for its statements
 * and rolls back instead of committing once it has passed.
 */
export interface Deadline {
  readonly signal: AbortSignal;
  /** The whole budget, in milliseconds (for messages). */
  readonly ms: number;
  /** Milliseconds until the deadline; 0 or less once it has passed. */
  remainingMs(): number;
  /**
   * Called when a write's transaction begins: from then on the HTTP layer must not answer on its own
   * at the deadline, but wait for the write's own (truthful) outcome.
   */
  holdForWrite(): void;
  /** Whether a write has begun (see holdForWrite). */
  readonly writing: boolean;
}

/**
 * A deadline `ms` from now; `cancel()` stops its timer once the request is answered. The signal and
 * its timer are made when first asked for: a request answered from the cache never needs them.
 */
export function createDeadline(ms: number): Deadline & { cancel(): void } {
  const at = performance.now() + ms;
  let controller: AbortController | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let cancelled = false;
  let writing = false;
  return {
    get signal() {
      if (!controller) {
        const made = (controller = new AbortController());
        const left = at - performance.now();
        if (left <= 0) made.abort(new DeadlineExceededError(ms));
        else if (!cancelled) timer = setTimeout(() => made.abort(new DeadlineExceededError(ms)), left);
      }
      return controller.signal;
    },
    ms,
    remainingMs: () => at - performance.now(),
    holdForWrite() {
      writing = true;
    },
    get writing() {
      return writing;
    },
    cancel: () => {
      cancelled = true;
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}

/** `promise`, or a rejection once `ms` have passed (a check on a connection that went silent must still end). */
export function within<T>(ms: number, promise: PromiseLike<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
