import { BadUserInputError } from '../errors.js';

/** Page sizes a client may ask for, per list; larger requests are refused, not silently cut. */
export const PAGE_CAPS = {
  portfolios: 100,
  positions: 200,
  trades: 100,
  instruments: 100,
  prices: 1000,
  forecasts: 100,
} as const;

/** The same caps by the schema coordinate of each list field, for checks before execution. */
export const FIELD_PAGE_CAPS: Record<string, number> = {
  'Query.portfolios': PAGE_CAPS.portfolios,
  'User.portfolios': PAGE_CAPS.portfolios,
  'Portfolio.positions': PAGE_CAPS.positions,
  'Portfolio.trades': PAGE_CAPS.trades,
  'Query.instruments': PAGE_CAPS.instruments,
  'Instrument.prices': PAGE_CAPS.prices,
  'Instrument.forecasts': PAGE_CAPS.forecasts,
};

export interface PageArgs {
  first?: number | null;
  after?: string | null;
}

/** A validated page request: how many rows, and the sort key of the row before the page (if any). */
export interface Page<K> {
  first: number;
  after: K | null;
}

export function pageSize(first: number | null | undefined, fallback: number, cap: number, argument = 'first'): number {
  const n = first ?? fallback;
  if (!Number.isInteger(n) || n < 0) throw new BadUserInputError(`${argument} must be a whole number ≥ 0, got ${n}`, argument);
  if (n > cap) throw new BadUserInputError(`${argument} may be at most ${cap}, got ${n}`, argument);
  return n;
}

// Cursors are opaque to clients: base64url of a small JSON sort key, tagged with the list they
// belong to, so a cursor of one list is refused by another instead of paging somewhere odd.
export function encodeCursor(list: string, key: unknown): string {
  return Buffer.from(JSON.stringify([list, key])).toString('base64url');
}

// C0 and C1 controls (NUL among them: PostgreSQL text cannot hold it) and unpaired surrogates
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Whether every string in a decoded key is text the database takes (keys are flat: a string, a number or one small object). */
function safeKeyText(key: unknown): boolean {
  if (typeof key === 'string') return !UNSAFE_TEXT.test(key);
  if (key === null || typeof key !== 'object') return true;
  return Object.entries(key).every(
    ([k, v]) => !UNSAFE_TEXT.test(k) && (typeof v !== 'string' || !UNSAFE_TEXT.test(v)) && (v === null || typeof v !== 'object'),
  );
}

/**
 * A cursor is accepted only if it is exactly what `encodeCursor` would write for a key that `valid`
 * accepts: canonical base64url of canonical JSON, of this list, with no control characters or
 * unpaired surrogates in its strings. Anything else (a hand-made or altered cursor) is
 * BAD_USER_INPUT on `after`, before any SQL could see it.
 */
export function decodeCursor<K>(list: string, cursor: string, valid: (key: unknown) => key is K): K {
  const bad = () => new BadUserInputError(`after is not a cursor of this list: ${JSON.stringify(cursor.slice(0, 60))}`, 'after');
  if (cursor.length > 200 || !/^[A-Za-z0-9_-]*$/.test(cursor)) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || parsed[0] !== list) throw bad();
  const key: unknown = parsed[1];
  if (!safeKeyText(key) || !valid(key) || encodeCursor(list, key) !== cursor) throw bad();
  return key;
}

export function readPage<K>(list: keyof typeof PAGE_CAPS, args: PageArgs, fallback: number, valid: (key: unknown) => key is K): Page<K> {
  return {
    first: pageSize(args.first, fallback, PAGE_CAPS[list]),
    after: args.after == null ? null : decodeCursor(list, args.after, valid),
  };
}

export const isId = (k: unknown): k is number => Number.isSafeInteger(k) && (k as number) > 0 && (k as number) <= 2 ** 31 - 1;

/** Parses a GraphQL ID of one of our integer-keyed tables; anything else matches no row. */
export function parseId(id: string | number): number | null {
  const s = String(id);
  if (!/^[1-9][0-9]{0,9}$/.test(s)) return null;
  const n = Number(s);
  return n <= 2 ** 31 - 1 ? n : null;
}

/** One page of a list fetched with one extra row, to know whether another page follows. */
export interface Slice<T> {
  rows: T[];
  hasNextPage: boolean;
}

/** A page of `first` rows cut from rows fetched with one extra (`limit first + 1`): the extra one says a next page exists. */
export function trimPage<T>(fetched: T[], first: number): Slice<T> {
  return { rows: fetched.slice(0, first), hasNextPage: fetched.length > first };
}
