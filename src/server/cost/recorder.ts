import { sql } from 'drizzle-orm';
import { rows, type Db } from '../../db/client.js';
import type { SqlStats } from '../../db/sql-stats.js';
import type { CostInfo, WorkStats } from '../../graphql/context.js';
import { array } from '../../loaders/batch.js';

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
  /** Adds one successful operation: its estimate, and the rows, statements and SQL time it really took. */
  record(operationName: string | null, cost: CostInfo, sqlStats: SqlStats, work: WorkStats): void;
  /** Writes what was recorded since the last flush (one statement), and forgets it. */
  flush(): Promise<void>;
  /** Flushes on an interval until stopped; stop flushes once more. */
  start(intervalMs?: number): void;
  stop(): Promise<void>;
}

/**
 * Sums in memory, written to cost_observations on an interval: a busy server adds one upsert every
 * 30 s, not one per request.
 */
export function createCostRecorder(db: Db): CostRecorder {
  let pending = new Map<string, Sums>();
  let timer: NodeJS.Timeout | undefined;
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
    record(operationName, cost, sqlStats, work) {
      add('operation', operationName ?? '(anonymous)', { estimated: cost.estimated, actual: work.rows, statements: sqlStats.statements, sqlMs: work.loaderMs });
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
  const found = await rows<{ kind: string; name: string; samples: string | number; estimated_sum: number; actual_sum: number; sql_statements_sum: string | number; sql_ms_sum: number }>(
    db,
    sql`select kind, name, samples, estimated_sum, actual_sum, sql_statements_sum, sql_ms_sum from cost_observations where samples >= ${minSamples}`,
  );
  return found
    .map((r) => {
      const n = Number(r.samples);
      const estimated = r.estimated_sum / n;
      const actual = r.actual_sum / n;
      return { kind: r.kind, name: r.name, samples: n, estimated, actual, ratio: (actual + 1) / (estimated + 1), sqlStatements: Number(r.sql_statements_sum) / n, sqlMs: r.sql_ms_sum / n };
    })
    .sort((a, b) => Math.abs(Math.log(b.ratio)) - Math.abs(Math.log(a.ratio)));
}
