import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from 'drizzle-orm/logger';
import type { Deadline } from './deadline.js';

/** What one unit of work (a GraphQL request, a command) has sent to the database so far. */
export interface SqlStats {
  statements: number;
  /** When present, every statement's text and parameters are appended (e.g. to EXPLAIN them). */
  capture?: { query: string; params: unknown[] }[];
  /** The unit of work this one is part of (a loader batch within a request): counted there too. */
  parent?: SqlStats;
  /** The request's deadline: a wait for a connection gives up when it passes (see gate.ts). */
  deadline?: Deadline;
}

const current = new AsyncLocalStorage<SqlStats>();
let total = 0;

/** Runs `fn` with its own statement counter; everything it awaits is counted there. */
export function withSqlStats<T>(stats: SqlStats, fn: () => T): T {
  return current.run(stats, fn);
}

/**
 * Runs `fn` as a part of the current unit of work, capturing the statements it sends (a loader
 * batch's SQL, for the slow-SQL log); they still count for the whole unit.
 */
export function withStatementCapture<T>(fn: () => Promise<T>): Promise<{ result: T; statements: { query: string; params: unknown[] }[] }> {
  const part: SqlStats = { statements: 0, capture: [], parent: current.getStore() };
  return current.run(part, async () => ({ result: await fn(), statements: part.capture! }));
}

/** The deadline of the unit of work running now (a request's), if it has one. */
export function currentDeadline(): Deadline | undefined {
  for (let stats = current.getStore(); stats; stats = stats.parent) if (stats.deadline) return stats.deadline;
  return undefined;
}

/** Statements sent by this process since it started (all units of work together). */
export function totalStatements(): number {
  return total;
}

/**
 * Drizzle calls logQuery synchronously just before a statement goes to the driver, inside the
 * async context of whoever asked, so the request that caused a statement is the one counted.
 */
export const sqlStatsLogger: Logger = {
  logQuery(query, params) {
    total++;
    for (let stats = current.getStore(); stats; stats = stats.parent) {
      stats.statements++;
      stats.capture?.push({ query, params });
    }
  },
};
