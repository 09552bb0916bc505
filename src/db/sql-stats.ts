import type { Deadline } from './deadline.js';

/** What one unit of work (a GraphQL request, a loader batch, a command) has sent to the database so far. */
export interface SqlStats {
  statements: number;
  /** When present, every statement's text and parameters are appended (e.g. to EXPLAIN them). */
  capture?: { query: string; params: unknown[] }[];
  /** The unit of work this one is part of (a loader batch within a request): counted there too. */
  parent?: SqlStats;
  /** The request's deadline: a wait for a connection gives up when it passes (see gate.ts). */
  deadline?: Deadline;
  /** Where the unit's statements stand in the line for a connection (see gate.ts); `system` when unset. */
  priority?: Priority;
  /** Set once the gate has dropped one of the unit's statements from its line (counted once per unit). */
  dropped?: boolean;
  /**
   * The longest the request's statements may wait in line for a connection, all their waits together
   * (set by admission from its priority; unset: until the deadline). Past it a waiting statement is
   * dropped (OVERLOADED, reason dropped): a read that waited that long is worth less than a fast 503.
   */
  patienceMs?: number;
  /**
   * How long the request has had a statement waiting in line so far, in ms (kept on the root unit):
   * wall-clock time during which at least one of its statements waited, so waits side by side count once.
   */
  waitedMs?: number;
  /** Statements of the request waiting in line now, and since when one has (root unit; see waitedMs). */
  waitingNow?: number;
  waitingSince?: number;
}

/**
 * Who goes first when statements wait for a database connection, most urgent first: the server's own
 * work (probes, migrations), writes (a trade must not wait behind reads), partners' trusted documents,
 * signed-in users, anonymous callers, and background work (sampled plans of slow statements). Under
 * overload the later ones are shed first (see src/admission/load.ts).
 */
export const PRIORITIES = ['system', 'write', 'partner', 'user', 'anonymous', 'background'] as const;
export type Priority = (typeof PRIORITIES)[number];

/** A priority's place in PRIORITIES: lower goes first. */
export const rankOf = (priority: Priority): number => PRIORITIES.indexOf(priority);

/** The priority a unit of work runs at (its own, or that of the request it is part of). */
export function priorityOf(unit: SqlStats | undefined): Priority {
  for (let stats = unit; stats; stats = stats.parent) if (stats.priority) return stats.priority;
  return 'system';
}

/** What is left of the request's patience for waiting in line, in ms (Infinity when it has none). */
export function patienceLeftOf(unit: SqlStats | undefined): number {
  for (let stats = unit; stats; stats = stats.parent) {
    if (stats.patienceMs === undefined) continue;
    const root = rootOf(stats);
    const ongoing = root.waitingNow ? performance.now() - root.waitingSince! : 0;
    return stats.patienceMs - (root.waitedMs ?? 0) - ongoing;
  }
  return Infinity;
}

/** Marks one of the request's statements as starting (`true`) or ending a wait in line, for waitedMs. */
export function noteWaiting(unit: SqlStats, starting: boolean): void {
  const root = rootOf(unit);
  const now = performance.now();
  if (starting) {
    if (!root.waitingNow) root.waitingSince = now;
    root.waitingNow = (root.waitingNow ?? 0) + 1;
  } else if (root.waitingNow) {
    root.waitingNow--;
    if (root.waitingNow === 0) root.waitedMs = (root.waitedMs ?? 0) + (now - root.waitingSince!);
  }
}

/** The outermost unit (the request) a unit is part of. */
export function rootOf(unit: SqlStats): SqlStats {
  let stats = unit;
  while (stats.parent) stats = stats.parent;
  return stats;
}

let total = 0;

/**
 * Counts one statement: in this process's total, and in `unit` and every unit it is part of. The
 * database handle a unit's statements go through carries it (see `scopeDb` in client.ts): no
 * AsyncLocalStorage, whose hooks every promise and socket write of the process would pay for.
 */
export function countStatement(unit: SqlStats | undefined, query: string, params: unknown): void {
  total++;
  for (let stats = unit; stats; stats = stats.parent) {
    stats.statements++;
    stats.capture?.push({ query, params: Array.isArray(params) ? params : [] });
  }
}

/** The deadline a unit of work runs under (its own, or the request's it is part of), if any. */
export function deadlineOf(unit: SqlStats | undefined): Deadline | undefined {
  for (let stats = unit; stats; stats = stats.parent) if (stats.deadline) return stats.deadline;
  return undefined;
}

/** Statements sent by this process since it started (all units of work together). */
export function totalStatements(): number {
  return total;
}
