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
