import { sql } from 'drizzle-orm';
import { rows, type Db } from '../db/client.js';
import type { InstrumentRow } from '../db/schema.js';
import { BadUserInputError } from '../errors.js';
import { trimPage, type Page, type Slice } from './pagination.js';

/** Escapes LIKE's wildcards so that a search is for the text as typed. */
const likePattern = (text: string) => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

function checkSearch(search: string | null | undefined): string {
  const s = (search ?? '').trim();
  if (s.length > 100) throw new BadUserInputError('search may be at most 100 characters', 'search');
  return s;
}

interface InstrumentSqlRow {
  id: number;
  symbol: string;
  name: string;
  asset_class: string;
  currency: string;
}

const toInstrument = (r: InstrumentSqlRow): InstrumentRow => ({
  id: r.id,
  symbol: r.symbol,
  name: r.name,
  assetClass: r.asset_class,
  currency: r.currency,
});

/** A page of instruments by symbol, optionally those whose symbol or name contains `search`. */
export async function listInstruments(db: Db, page: Page<string>, search?: string | null): Promise<Slice<InstrumentRow>> {
  const s = checkSearch(search);
  const found = await rows<InstrumentSqlRow>(
    db,
    sql`select id, symbol, name, asset_class, currency from instruments
        where (${s} = '' or symbol ilike ${likePattern(s)} or name ilike ${likePattern(s)})
          and symbol > ${page.after ?? ''}
        order by symbol limit ${page.first + 1}`,
  );
  return trimPage(found.map(toInstrument), page.first);
}

export async function countInstruments(db: Db, search?: string | null): Promise<number> {
  const s = checkSearch(search);
  const [row] = await rows<{ n: number }>(
    db,
    sql`select count(*)::int as n from instruments where (${s} = '' or symbol ilike ${likePattern(s)} or name ilike ${likePattern(s)})`,
  );
  return Number(row?.n ?? 0);
}
