import type { Logger } from './logger.js';
import type { BatchEvent } from '../loaders/batch.js';

export interface SlowSqlOptions {
  logger: Logger;
  /** The plan of a statement (EXPLAIN without running it). */
  explain: (query: string, params: unknown[]) => Promise<string[]>;
  /** A loader batch slower than this is logged with its loader name and statement text. */
  slowMs: number;
  /** A batch slower than this also has its plan logged, for a sample of them. */
  planMs: number;
  /** The share (0–1) of batches over `planMs` whose plan is logged. */
  planSample: number;
  /** Where sampling draws from; tests fix it. */
  random?: () => number;
}

/**
 * The slow-SQL log, auto_explain style: a slow loader batch is logged with its loader and statement
 * text (never its parameters, which hold user input; the plan's quoted literals are masked too); above a second threshold a sample of
 * them is EXPLAINed and the plan logged beside. At most one EXPLAIN runs at a time, so a storm of
 * slow statements cannot double the load on a database that is already struggling.
 */
export function createSlowSqlLog({ logger, explain, slowMs, planMs, planSample, random = Math.random }: SlowSqlOptions) {
  let explaining = false;
  return (requestId: string, event: BatchEvent): void => {
    if (event.ms < slowMs) return;
    const { loader, keys, rows, statements } = event;
    const ms = Math.round(event.ms * 10) / 10;
    logger.warn({ requestId, loader, keys, rows, ms, sql: statements.map((s) => s.query.slice(0, 2000)) }, 'slow sql');
    const [first] = statements;
    if (!first || event.ms < planMs || explaining || random() >= planSample) return;
    explaining = true;
    explain(first.query, first.params)
      // a plan shows the bound values as literals: quoted ones (symbols, emails) are masked
      .then((plan) => logger.warn({ requestId, loader, ms, plan: plan.map((line) => line.replace(/'(?:[^']|'')*'/g, "'…'")) }, 'slow sql plan'))
      .catch((e: unknown) => logger.debug({ err: e, loader }, 'could not explain a slow statement'))
      .finally(() => {
        explaining = false;
      });
  };
}
