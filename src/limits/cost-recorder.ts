import { sql } from 'drizzle-orm';
import { rows, type Db } from '../db/client.js';
import type { SqlStats } from '../db/sql-stats.js';
import type { CostInfo, WorkStats } from '../graphql/context.js';
import { array } from '../loaders/batch.js';
import { createBoundedSet } from '../observability/bounded.js';

/** Which list field each list loader serves: its rows per key are that field's real list size. */
export const LOADER_FIELDS: Record<string, string> = {
  portfolioPage: 'User.portfolios',
  openPositions: 'Portfolio.positions',
  tradePage: 'Portfolio.trades',
  priceRange: 'Instrument.prices',
  forecastList: 'Instrument.forecasts',
};
// Query.portfolios pages the same list as User.portfolios.
const SAME_FIELD: Record<string, string> = { 'Query.portfolios': 'User.portfolios' };

interface Sums {
  samples: number;
  estimated: number;
  actual: number;
  statements: number;
  sqlMs: number;
}

export interface CostRecorder {
  /**
   * Adds one successful operation: its estimate, and the rows, statements and SQL time it really took.
   * `trusted`: it ran a published trusted document, whose name operators chose (always kept apart).
   */
  record(operationName: string | null, cost: CostInfo & { estimated: number }, sqlStats: SqlStats, work: WorkStats, trusted?: boolean): void;
  /** Writes what was recorded since the last flush (one statement), and forgets it. */
  flush(): Promise<void>;
  /** Flushes on an interval until stopped; stop flushes once more. */
  start(intervalMs?: number): void;
  stop(): Promise<void>;
}

export interface CostRecorderOptions {
  /** Most operation names (other than trusted documents') kept apart at once in this process; the rest are summed as "(other)". */
  maxOperations?: number;
  /** Most operation rows cost_observations keeps; the least recently seen beyond are deleted. */
  maxStoredOperations?: number;
  /** Operation rows not seen for this long are deleted. */
  keepDays?: number;
}

/** Operation names are clients' words: cut to this many characters before they are kept anywhere. */
export const OPERATION_NAME_MAX = 100;
const OTHER = '(other)';
// how often the flush also prunes the table
const PRUNE_EVERY_MS = 10 * 60_000;

/**
 * Sums in memory, written to cost_observations on an interval: a busy server adds one upsert every
 * 30 s, not one per request. Operation names come from clients, so what is kept of them is bounded:
 * names are cut to 100 characters; trusted documents' names (published by operators) are always
 * kept apart, other names only while fewer than `maxOperations` are (a name unused for a day leaves);
 * and the table keeps at most `maxStoredOperations` operation rows, none older than `keepDays`.
 */
export function createCostRecorder(db: Db, options: CostRecorderOptions = {}): CostRecorder {
  const { maxOperations = 200, maxStoredOperations = 2000, keepDays = 30 } = options;
  let pending = new Map<string, Sums>();
  let timer: NodeJS.Timeout | undefined;
  let prunedAt = 0;
  const names = createBoundedSet({ max: maxOperations, idleMs: 24 * 3_600_000 });
  const nameOf = (operationName: string | null, trusted: boolean) => {
    const name = (operationName ?? '(anonymous)').slice(0, OPERATION_NAME_MAX);
    return trusted || names.admit(name) ? name : OTHER;
  };
  const add = (kind: string, name: string, s: Omit<Sums, 'samples'>) => {
    const key = `${kind}\u0000${name}`;
    const sums = pending.get(key) ?? { samples: 0, estimated: 0, actual: 0, statements: 0, sqlMs: 0 };
    sums.samples++;
    sums.estimated += s.estimated;
    sums.actual += s.actual;
    sums.statements += s.statements;
    sums.sqlMs += s.sqlMs;
    pending.set(key, sums);
  };

  const recorder: CostRecorder = {
    record(operationName, cost, sqlStats, work, trusted = false) {
      add('operation', nameOf(operationName, trusted), { estimated: cost.estimated, actual: work.rows, statements: sqlStats.statements, sqlMs: work.loaderMs });
      // per list field: the size the estimate assumed (the slicing argument) against rows per parent
      const assumed = new Map<string, number[]>();
      for (const s of cost.slices) {
        const field = SAME_FIELD[s.coordinate] ?? s.coordinate;
        assumed.set(field, [...(assumed.get(field) ?? []), s.value]);
      }
      for (const [loader, stats] of Object.entries(work.byLoader)) {
        const field = LOADER_FIELDS[loader];
        const sizes = field ? assumed.get(field) : undefined;
        if (!field || !sizes || stats.keys === 0) continue;
        const estimated = sizes.reduce((a, b) => a + b, 0) / sizes.length;
        add('field', field, { estimated, actual: stats.rows / stats.keys, statements: stats.batches, sqlMs: 0 });
      }
    },
    async flush() {
      if (pending.size === 0) return;
      const batch = [...pending.entries()];
      pending = new Map();
      const kinds = batch.map(([k]) => k.split('\u0000')[0]);
      const names = batch.map(([k]) => k.split('\u0000')[1]);
      const col = (f: (s: Sums) => number) => batch.map(([, s]) => f(s));
      await rows(
        db,
        sql`insert into cost_observations as c (kind, name, samples, estimated_sum, actual_sum, sql_statements_sum, sql_ms_sum)
            select * from unnest(${array(kinds, 'text')}, ${array(names, 'text')}, ${sql.param(col((s) => s.samples))}::int8[],
                                 ${sql.param(col((s) => s.estimated))}::float8[], ${sql.param(col((s) => s.actual))}::float8[],
                                 ${sql.param(col((s) => s.statements))}::int8[], ${sql.param(col((s) => s.sqlMs))}::float8[])
            on conflict (kind, name) do update set
              samples = c.samples + excluded.samples,
              estimated_sum = c.estimated_sum + excluded.estimated_sum,
              actual_sum = c.actual_sum + excluded.actual_sum,
              sql_statements_sum = c.sql_statements_sum + excluded.sql_statements_sum,
              sql_ms_sum = c.sql_ms_sum + excluded.sql_ms_sum,
              updated_at = now()`,
      );
      if (performance.now() - prunedAt < PRUNE_EVERY_MS && prunedAt > 0) return;
      prunedAt = performance.now();
      await rows(
        db,
        sql`delete from cost_observations c
            where c.kind = 'operation'
              and (c.updated_at < now() - make_interval(days => ${keepDays})
                   or c.name not in (select name from cost_observations where kind = 'operation' order by updated_at desc, name limit ${maxStoredOperations}))`,
      );
    },
    start(intervalMs = 30_000) {
      timer = setInterval(() => void recorder.flush().catch(() => {}), intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      await recorder.flush().catch(() => {});
    },
  };
  return recorder;
}

export interface CostReportRow {
  kind: string;
  name: string;
  samples: number;
  estimated: number;
  actual: number;
  /** actual ÷ estimated: far from 1 means the weights mislead. */
  ratio: number;
  sqlStatements: number;
  sqlMs: number;
}

/** Means per operation and field, the furthest from their estimate first (by |log(actual/estimated)|). */
export async function costReport(db: Db, minSamples = 1): Promise<CostReportRow[]> {
  const found = await rows<{
    kind: string;
    name: string;
    samples: string | number;
    estimated_sum: number;
    actual_sum: number;
    sql_statements_sum: string | number;
    sql_ms_sum: number;
  }>(db, sql`select kind, name, samples, estimated_sum, actual_sum, sql_statements_sum, sql_ms_sum from cost_observations where samples >= ${minSamples}`);
  return found
    .map((r) => {
      const n = Number(r.samples);
      const estimated = r.estimated_sum / n;
      const actual = r.actual_sum / n;
      return {
        kind: r.kind,
        name: r.name,
        samples: n,
        estimated,
        actual,
        ratio: (actual + 1) / (estimated + 1),
        sqlStatements: Number(r.sql_statements_sum) / n,
        sqlMs: r.sql_ms_sum / n,
      };
    })
    .sort((a, b) => Math.abs(Math.log(b.ratio)) - Math.abs(Math.log(a.ratio)));
}
