import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { PoolGate } from '../db/gate.js';
import type { Admitted } from './admit.js';
import type { Caller } from './caller.js';
import type { Viewer } from './tokens.js';
import type { Priority } from '../db/sql-stats.js';
import type { ShedReason } from '../errors.js';

/**
 * Admission by the database's health and the work in flight: whether a request may start, decided
 * from what the pools' lines say now and what the request costs, by its priority (PRIORITIES). Under
 * overload the least urgent go first: anonymous ad-hoc queries are shed while signed-in users still
 * get in, users before partners' trusted documents, and writes only when writes alone fill the line
 * or the cost in flight is at its cap. Cache hits and probes never ask (they need no connection).
 *
 * The reasons, each counted in foliograph_shed_requests_total{reason, priority}:
 * - `db_wait`: the expected wait for a connection (the line ahead × the recent time a connection is
 *   held) is past what this priority tolerates (ADMISSION_TARGET_WAIT_MS × 1, 2, 4 for anonymous,
 *   users, partners; writes tolerate any);
 * - `db_queue`: DB_QUEUE_MAX statements already wait ahead of it (a line that long is not moving);
 * - `cost_in_flight`: the estimated cost of the operations running now, with this one's, would pass
 *   this priority's share of ADMISSION_MAX_COST_IN_FLIGHT (half for anonymous callers, all for writes);
 * - `event_loop` (with ADMISSION_MAX_EVENT_LOOP_DELAY_MS): the process's CPU is saturated, so every
 *   request admitted now waits behind the others for the event loop: the p99 of the loop's delay over
 *   the last quarter second is past what this priority tolerates (the setting × 1, 2, 4 for anonymous,
 *   users, partners; writes and probes are never shed for it);
 * - `dropped` (by the gate, not here): admitted, but it could no longer get a connection before its
 *   deadline, or no longer get one and run its statement (for the usual time a connection is held)
 *   before its patience has passed since it arrived (patienceMs: twice what admission tolerates for
 *   its priority), pushed back by more urgent work.
 * And `deadline`, not a shedding: the expected wait is within what the priority tolerates but past
 * the request's own remaining deadline, so it could not finish in time however idle the server: it is
 * answered DEADLINE_EXCEEDED (504) at once, as it would be later.
 */

export interface LoadControlOptions {
  /** The pools a request may use (the primary's and each replica's); the worst line decides. */
  pools: () => readonly PoolGate[];
  /** The expected wait for a connection an anonymous request still accepts, in ms; more urgent ones tolerate more. */
  targetWaitMs: number;
  /** DB_QUEUE_MAX: statements waiting ahead of a request at which it is refused. */
  queueMax: number;
  /** The most estimated cost running at once (a write may use all of it, an anonymous query half). */
  maxCostInFlight: number;
  /** The event loop's recent delay in ms (see eventLoopDelay); absent: taken as 0. */
  loopDelayMs?: () => number;
  /** The most event loop delay an anonymous request tolerates (ADMISSION_MAX_EVENT_LOOP_DELAY_MS); absent: not a reason to shed. */
  maxEventLoopDelayMs?: number;
}

export interface LoadControl {
  /** Why a request of `priority` with `remainingMs` to its deadline (and `cost`, once priced) must not start now, or null. */
  refusal(priority: Priority, remainingMs: number, cost?: number): ShedReason | 'deadline' | null;
  /**
   * How long after its arrival a request of `priority` may still wait in line for a connection: its
   * statement is dropped once it could not run within that. Twice what admission tolerates (writes:
   * until their deadline).
   */
  patienceMs(priority: Priority): number | undefined;
  /**
   * When a request whose handler began at `handlerStart` (performance.now()) reached the process, as
   * far as its patience goes: one event loop delay earlier, the time it waited in the socket for a
   * busy loop to read it (and about what its answer will wait to be written).
   */
  arrivalOf(handlerStart: number): number;
  /** Counts `cost` as in flight until the returned release is called (idempotent). */
  hold(cost: number): () => void;
  /** The estimated cost of the operations admitted and not yet answered. */
  readonly costInFlight: number;
}

// how much longer than an anonymous caller each priority waits for a connection before it is shed
const PATIENCE: Record<Priority, number> = { system: Infinity, write: Infinity, partner: 4, user: 2, anonymous: 1, background: 1 };
// each priority's share of the cost in flight
const COST_SHARE: Record<Priority, number> = { system: 1, write: 1, partner: 0.9, user: 0.75, anonymous: 0.5, background: 0.5 };

export function createLoadControl(options: LoadControlOptions): LoadControl {
  const { pools, targetWaitMs, queueMax, maxCostInFlight, loopDelayMs = () => 0, maxEventLoopDelayMs } = options;
  let costInFlight = 0;
  return {
    refusal(priority, remainingMs, cost = 0) {
      let wait = 0;
      let ahead = 0;
      for (const pool of pools()) {
        wait = Math.max(wait, pool.expectedWaitMs(priority));
        ahead = Math.max(ahead, pool.waitingAhead(priority));
      }
      if (ahead >= queueMax) return 'db_queue';
      if (wait > targetWaitMs * PATIENCE[priority]) return 'db_wait';
      if (wait > remainingMs) return 'deadline';
      if (maxEventLoopDelayMs !== undefined && loopDelayMs() > maxEventLoopDelayMs * PATIENCE[priority]) return 'event_loop';
      // an operation alone is never refused for its cost here: MAX_COST bounds that
      if (costInFlight > 0 && costInFlight + cost > maxCostInFlight * COST_SHARE[priority]) return 'cost_in_flight';
      return null;
    },
    patienceMs(priority) {
      const patience = PATIENCE[priority];
      return patience === Infinity ? undefined : 2 * targetWaitMs * patience;
    },
    arrivalOf(handlerStart) {
      return handlerStart - loopDelayMs();
    },
    hold(cost) {
      costInFlight += cost;
      let held = true;
      return () => {
        if (!held) return;
        held = false;
        costInFlight -= cost;
      };
    },
    get costInFlight() {
      return costInFlight;
    },
  };
}

/**
 * A request's priority before its document is parsed (to shed it before parsing costs anything):
 * what it claims. An ad-hoc document that mentions `mutation`, or one sent by its hash alone, is
 * taken for a write here; once parsed, priorityOfOperation says what it is, and admission asks again.
 */
export function priorityOfRequest(admitted: Admitted, caller: Caller): Priority {
  if (admitted.document) return admitted.document.type === 'mutation' ? 'write' : 'partner';
  const query = admitted.request.params.query;
  // without its text (an automatic persisted query sent by hash) it may be a write: it is not shed before parsing
  if (typeof query !== 'string' || query.includes('mutation')) return 'write';
  if (caller.partner) return 'partner';
  return caller.viewer.kind === 'user' ? 'user' : 'anonymous';
}

/** A parsed operation's priority: writes first, then partners, signed-in users, anonymous callers. */
export function priorityOfOperation(type: 'query' | 'mutation' | 'subscription', context: { partner: unknown; viewer: Viewer }): Priority {
  if (type === 'mutation') return 'write';
  if (context.partner) return 'partner';
  return context.viewer.kind === 'user' ? 'user' : 'anonymous';
}

/**
 * The event loop's delay as admission reads it: the p99 over the last window (250 ms), sampled every
 * 10 ms. One loop per process; `stop` ends it.
 */
export function eventLoopDelay(windowMs = 250): { delayMs(): number; start(): void; stop(): void } {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  let last = 0;
  let timer: NodeJS.Timeout | undefined;
  return {
    delayMs: () => last,
    start() {
      histogram.enable();
      timer = setInterval(() => {
        last = histogram.count ? histogram.percentile(99) / 1e6 : 0;
        histogram.reset();
      }, windowMs);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
      histogram.disable();
    },
  };
}
