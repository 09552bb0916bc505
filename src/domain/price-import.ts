import { sql } from 'drizzle-orm';
import { rows, type Db } from '../db/client.js';
import { array } from '../loaders/batch.js';
import { notifyInvalidation } from '../cache/invalidation.js';
import { instrumentTag } from '../cache/tags.js';
import { generateForecasts } from './forecasting/generate.js';
import type { ImportRow } from './forecasting/price-csv.js';
import { forgetOutcomesSince, scoreForecasts } from './forecasting/scoring.js';

/**
 * New closes arriving: `npm run prices:import` (and whatever else feeds prices) goes through here.
 * One transaction takes the whole file or none of it: unknown symbols and dates already held with
 * another close (unless correcting) are refused with their lines. Whatever it changed, every server
 * hears of when it commits (NOTIFY of the instruments' tags: their cached answers and hot entities
 * go), and then the instruments' forecasts are made as of the new dates and the forecasts whose
 * outcome has now arrived are scored.
 */

export class PriceImportError extends Error {
  constructor(readonly problems: string[]) {
    super(`nothing imported:\n${summarise(problems)}`);
  }
}

/** At most 20 problems listed, then how many more. */
export function summarise(problems: readonly string[]): string {
  const shown = problems.slice(0, 20).map((p) => `  ${p}`);
  if (problems.length > 20) shown.push(`  … and ${problems.length - 20} more`);
  return shown.join('\n');
}

export interface ImportedInstrument {
  id: number;
  symbol: string;
  /** Dates that were new. */
  inserted: string[];
  /** Dates held with another close that `correct` replaced. */
  corrected: string[];
  /** Dates held with the same close: left as they were. */
  unchanged: number;
}

export interface PriceImportResult {
  rows: number;
  inserted: number;
  corrected: number;
  unchanged: number;
  instruments: ImportedInstrument[];
}

const CHUNK = 10_000;

/** Writes the rows in one transaction (see above); throws PriceImportError, having changed nothing, when any is refused. */
export async function writePrices(db: Db, input: readonly ImportRow[], options: { correct?: boolean } = {}): Promise<PriceImportResult> {
  return db.transaction(async (tx) => {
    const symbols = [...new Set(input.map((r) => r.symbol))];
    // the instruments' rows, locked in id order: imports of the same instruments take turns
    const known = await rows<{ id: number; symbol: string }>(
      tx,
      sql`select id, upper(symbol) as symbol from instruments where upper(symbol) = any(${array(symbols, 'text')}) order by id for update`,
    );
    const idOf = new Map(known.map((k) => [k.symbol, k.id]));
    const problems: string[] = [];
    for (const symbol of symbols) {
      if (idOf.has(symbol)) continue;
      const lines = input.filter((r) => r.symbol === symbol).map((r) => r.line);
      problems.push(
        `line ${lines[0]}: no instrument has the symbol ${symbol} (${lines.length} row(s), lines ${lines.slice(0, 5).join(', ')}${lines.length > 5 ? ', …' : ''})`,
      );
    }
    if (problems.length) throw new PriceImportError(problems);

    const held = new Map<string, { close: string; same: boolean }>();
    for (let i = 0; i < input.length; i += CHUNK) {
      const chunk = input.slice(i, i + CHUNK);
      const found = await rows<{ instrument_id: number; date: string; close: string; same: boolean }>(
        tx,
        sql`select p.instrument_id, p.date::text as date, p.close::text as close, p.close = u.close::numeric as same
            from unnest(${array(
              chunk.map((r) => idOf.get(r.symbol)!),
              'int',
            )}, ${array(
              chunk.map((r) => r.date),
              'text',
            )}, ${array(
              chunk.map((r) => r.close),
              'text',
            )}) as u(instrument_id, date, close)
            join prices p on p.instrument_id = u.instrument_id and p.date = u.date::date`,
      );
      for (const f of found) held.set(`${f.instrument_id} ${f.date}`, { close: f.close, same: f.same });
    }
    const fresh: ImportRow[] = [];
    const corrections: ImportRow[] = [];
    let unchanged = 0;
    for (const r of input) {
      const existing = held.get(`${idOf.get(r.symbol)} ${r.date}`);
      if (!existing) fresh.push(r);
      else if (existing.same) unchanged++;
      else if (options.correct) corrections.push(r);
      else
        problems.push(
          `line ${r.line}: ${r.symbol} ${r.date} is held with close ${trimDecimal(existing.close)}, the file says ${r.close} (--correct replaces it)`,
        );
    }
    if (problems.length) throw new PriceImportError(problems);

    for (let i = 0; i < fresh.length; i += CHUNK) {
      const chunk = fresh.slice(i, i + CHUNK);
      await tx.execute(
        sql`insert into prices (instrument_id, date, close)
            select u.instrument_id, u.date::date, u.close::numeric
            from unnest(${array(
              chunk.map((r) => idOf.get(r.symbol)!),
              'int',
            )}, ${array(
              chunk.map((r) => r.date),
              'text',
            )}, ${array(
              chunk.map((r) => r.close),
              'text',
            )}) as u(instrument_id, date, close)`,
      );
    }
    for (let i = 0; i < corrections.length; i += CHUNK) {
      const chunk = corrections.slice(i, i + CHUNK);
      await tx.execute(
        sql`update prices p set close = u.close::numeric
            from unnest(${array(
              chunk.map((r) => idOf.get(r.symbol)!),
              'int',
            )}, ${array(
              chunk.map((r) => r.date),
              'text',
            )}, ${array(
              chunk.map((r) => r.close),
              'text',
            )}) as u(instrument_id, date, close)
            where p.instrument_id = u.instrument_id and p.date = u.date::date`,
      );
    }

    const bySymbol = new Map(known.map((k) => [k.symbol, { id: k.id, symbol: k.symbol, inserted: [] as string[], corrected: [] as string[], unchanged: 0 }]));
    for (const r of fresh) bySymbol.get(r.symbol)!.inserted.push(r.date);
    for (const r of corrections) bySymbol.get(r.symbol)!.corrected.push(r.date);
    for (const r of input) bySymbol.get(r.symbol)!.unchanged++;
    const instruments: ImportedInstrument[] = [...bySymbol.values()].map((i) => ({ ...i, unchanged: i.unchanged - i.inserted.length - i.corrected.length }));
    // outcomes measured on a corrected close, or forecasts made after one, are scored again
    for (const i of instruments)
      if (i.corrected.length)
        await forgetOutcomesSince(
          tx as unknown as Db,
          i.id,
          i.corrected.reduce((a, b) => (a < b ? a : b)),
        );
    const touched = instruments.filter((i) => i.inserted.length + i.corrected.length > 0);
    // delivered when this transaction commits: every server drops what it cached about these instruments
    if (touched.length)
      await notifyInvalidation(
        tx as unknown as Db,
        touched.map((i) => instrumentTag(i.id)),
      );
    return { rows: input.length, inserted: fresh.length, corrected: corrections.length, unchanged, instruments };
  });
}

export interface IngestResult extends PriceImportResult {
  /** Forecasts stored as of the new dates. */
  forecasts: number;
  /** Forecasts whose outcome arrived with these prices. */
  scored: number;
}

/**
 * Imports the rows (writePrices), then brings the touched instruments' forecasts up to date: each
 * active model version forecasts as of every new or corrected date (the latest year of them at
 * most), from the prices up to that date only, and every forecast whose outcome is now known is scored.
 */
export async function ingestPrices(db: Db, input: readonly ImportRow[], options: { correct?: boolean } = {}): Promise<IngestResult> {
  const written = await writePrices(db, input, options);
  const touched = written.instruments.filter((i) => i.inserted.length + i.corrected.length > 0);
  if (touched.length === 0) return { ...written, forecasts: 0, scored: 0 };
  // a corrected close changes every forecast made from it on: those are made again, not only the new dates'
  const asOfDates = new Map<number, string[]>();
  for (const i of touched) {
    const dates = [...i.inserted];
    if (i.corrected.length) {
      const earliest = i.corrected.reduce((a, b) => (a < b ? a : b));
      const since = await rows<{ date: string }>(db, sql`select date::text as date from prices where instrument_id = ${i.id} and date >= ${earliest}::date`);
      dates.push(...since.map((r) => r.date));
    }
    asOfDates.set(i.id, dates);
  }
  const generated = await generateForecasts(db, { instrumentIds: touched.map((i) => i.id), asOfDates, replace: written.corrected > 0 });
  const { scored } = await scoreForecasts(
    db,
    touched.map((i) => i.id),
  );
  return { ...written, forecasts: generated.forecasts, scored };
}

/** "289.03000000" as 289.03. */
const trimDecimal = (d: string) => (d.includes('.') ? d.replace(/0+$/, '').replace(/\.$/, '') : d);
