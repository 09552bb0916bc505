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
   * How long after the request arrived (`arrivedAt`) its answer may still depend on a wait in line
   * for a connection (set by admission from its priority; unset: until the deadline). A statement
   * leaves the line (OVERLOADED, reason dropped) once it could not get a connection and run in that
   * time: a read answered later than that is worth less to its user than a fast 503.
   */
  patienceMs?: number;
  /** When the request arrived (performance.now()), from which its patience runs. */
  arrivedAt?: number;
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

/** What is left of the request's patience, in ms (Infinity when it has none). */
export function patienceLeftOf(unit: SqlStats | undefined): number {
  for (let stats = unit; stats; stats = stats.parent) {
    if (stats.patienceMs === undefined) continue;
    return stats.arrivedAt === undefined ? stats.patienceMs : stats.patienceMs - (performance.now() - stats.arrivedAt);
  }
  return Infinity;
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
