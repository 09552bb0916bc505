import { sql } from 'drizzle-orm';
import { rows, type Db } from '../../db/client.js';
import { array } from '../../loaders/batch.js';
import { HORIZONS } from './generate.js';
import { tradingDaysPerRow } from './series.js';

/**
 * Calibration watched where the forecasts are used. A stored forecast is scored once the price
 * `horizon_days` trading days after its as-of date has arrived (that many rows later on a daily
 * series, a twenty-first of that on a monthly one): its realised simple return is written beside it.
 * The live window is each model version's latest scored forecasts at each horizon, and from it come
 * the realised coverage of every stored interval and the shares of outcomes below and above the 95%
 * one — what `forecasts:backtest` says of the past, said of production.
 */

/** The levels whose central intervals are stored (generate.ts), in percent. */
export const CALIBRATION_LEVELS = [50, 80, 90, 95, 99] as const;

export interface ScoreResult {
  /** Forecasts that got their outcome in this run. */
  scored: number;
  /** Instruments whose forecasts were looked at. */
  instruments: number;
}

/**
 * Scores every forecast of these instruments (all instruments when absent) whose outcome has
 * arrived and that has none yet. Runs after prices are imported; running again changes nothing.
 */
export async function scoreForecasts(db: Db, instrumentIds?: readonly number[]): Promise<ScoreResult> {
  const ids =
    instrumentIds ??
    (await rows<{ instrument_id: number }>(db, sql`select distinct instrument_id from forecasts where realised_return is null order by 1`)).map(
      (r) => r.instrument_id,
    );
  let scored = 0;
  for (const id of ids) {
    const pending = await rows<{ id: string | number; as_of: string; horizon_days: number }>(
      db,
      sql`select id, as_of::text as as_of, horizon_days from forecasts where instrument_id = ${id} and realised_return is null`,
    );
    if (pending.length === 0) continue;
    const series = await rows<{ date: string; close: string }>(
      db,
      sql`select date::text as date, close::text as close from prices where instrument_id = ${id} order by date`,
    );
    const perRow = tradingDaysPerRow(series.map((p) => ({ date: p.date, close: 0 })));
    const rowOf = new Map(series.map((p, i) => [p.date, i]));
    const outcomes: { id: number; realised: number; date: string }[] = [];
    for (const f of pending) {
      const start = rowOf.get(f.as_of);
      const ahead = f.horizon_days / perRow;
      // a horizon shorter than one row of the series (a day on monthly closes) has no outcome to see
      if (start === undefined || !Number.isInteger(ahead) || start + ahead >= series.length) continue;
      const end = series[start + ahead];
      outcomes.push({ id: Number(f.id), realised: Number(end.close) / Number(series[start].close) - 1, date: end.date });
    }
    for (let i = 0; i < outcomes.length; i += 1000) {
      const chunk = outcomes.slice(i, i + 1000);
      await db.execute(
        sql`update forecasts f set realised_return = o.realised, outcome_date = o.outcome_date::date
            from unnest(${array(
              chunk.map((o) => o.id),
              'int8',
            )}, ${sql.param(chunk.map((o) => o.realised))}::float8[], ${array(
              chunk.map((o) => o.date),
              'text',
            )}) as o(id, realised, outcome_date)
            where f.id = o.id`,
      );
    }
    scored += outcomes.length;
  }
  return { scored, instruments: ids.length };
}

/**
 * Forgets the outcomes that a corrected close may have changed: those of forecasts made on or after
 * the earliest corrected date, and those measured at or after it. The next scoring run redoes them.
 */
export async function forgetOutcomesSince(db: Db, instrumentId: number, date: string): Promise<void> {
  await db.execute(
    sql`update forecasts set realised_return = null, outcome_date = null
        where instrument_id = ${instrumentId} and realised_return is not null and (as_of >= ${date}::date or outcome_date >= ${date}::date)`,
  );
}

export interface LiveCalibration {
  model: string;
  version: string;
  active: boolean;
  horizonDays: number;
  /** Scored forecasts in the window. */
  outcomes: number;
  from: string;
  to: string;
  /** Share of outcomes inside each central interval, by level in percent (levels a forecast did not store are left out of that level's share). */
  coverage: Record<string, number>;
  /** Shares of outcomes below the lower and above the upper bound of the 95% interval. */
  belowLower95: number;
  aboveUpper95: number;
  /** Winkler's interval score at 95%, as the backtest computes it. */
  intervalScore95: number;
  meanWidth95: number;
  /** Mean of realised − expected return. */
  meanError: number;
}

/**
 * Each model version's calibration over its latest `window` scored forecasts at each horizon. One
 * statement: per version and horizon, an index walk (forecasts_scored_idx) over at most `window` rows.
 */
export async function liveCalibration(db: Db, window: number): Promise<LiveCalibration[]> {
  const inside = (level: number) =>
    sql.raw(
      level === 95
        ? `avg(case when realised_return between lower95 and upper95 then 1.0 else 0.0 end)`
        : `avg(case when lower${level} is null then null when realised_return between lower${level} and upper${level} then 1.0 else 0.0 end)`,
    );
  const found = await rows<Record<string, string | number | boolean | null>>(
    db,
    sql`select m.name, m.version, m.active, h.horizon_days, w.*
        from forecast_models m
        cross join unnest(${array(HORIZONS, 'int')}) as h(horizon_days)
        cross join lateral (
          select count(*)::int as outcomes, min(outcome_date)::text as from_date, max(outcome_date)::text as to_date,
                 ${inside(50)} as c50, ${inside(80)} as c80, ${inside(90)} as c90, ${inside(95)} as c95, ${inside(99)} as c99,
                 avg(case when realised_return < lower95 then 1.0 else 0.0 end) as below95,
                 avg(case when realised_return > upper95 then 1.0 else 0.0 end) as above95,
                 avg(upper95 - lower95 + 40 * (greatest(0, lower95 - realised_return) + greatest(0, realised_return - upper95))) as score95,
                 avg(upper95 - lower95) as width95,
                 avg(realised_return - expected_return) as mean_error
          from (select * from forecasts f
                where f.model_id = m.id and f.horizon_days = h.horizon_days and f.realised_return is not null
                order by f.outcome_date desc, f.id desc limit ${window}) as latest
        ) as w
        where w.outcomes > 0
        order by m.name, m.id, h.horizon_days`,
  );
  const num = (v: unknown) => (v === null || v === undefined ? NaN : Number(v));
  return found.map((r) => ({
    model: String(r.name),
    version: String(r.version),
    active: Boolean(r.active),
    horizonDays: Number(r.horizon_days),
    outcomes: Number(r.outcomes),
    from: String(r.from_date),
    to: String(r.to_date),
    coverage: Object.fromEntries(CALIBRATION_LEVELS.flatMap((l) => (r[`c${l}`] === null ? [] : [[String(l), round(num(r[`c${l}`]))]]))),
    belowLower95: round(num(r.below95)),
    aboveUpper95: round(num(r.above95)),
    intervalScore95: round(num(r.score95)),
    meanWidth95: round(num(r.width95)),
    meanError: round(num(r.mean_error)),
  }));
}

const round = (x: number) => (Number.isFinite(x) ? Math.round(x * 1e6) / 1e6 : x);

/**
 * liveCalibration for /metrics: read at most once per `ttlMs` however often Prometheus (or several)
 * scrape, and by one statement at a time: while a read is in flight (a saturated pool, a slow
 * database) every caller gets that one. A failed read is not remembered.
 */
export function calibrationReader(db: Db, window: number, ttlMs = 30_000): () => Promise<LiveCalibration[]> {
  let last: { at: number; value: Promise<LiveCalibration[]>; settled: boolean } | undefined;
  return () => {
    if (last && (!last.settled || performance.now() - last.at < ttlMs)) return last.value;
    const entry = { at: performance.now(), value: liveCalibration(db, window), settled: false };
    last = entry;
    entry.value.then(
      () => {
        entry.settled = true;
      },
      () => {
        entry.settled = true;
        if (last === entry) last = undefined;
      },
    );
    return entry.value;
  };
}
