import type { PricePoint } from './series.js';

const MONTHS: Record<string, string> = {
  Jan: '01',
  Feb: '02',
  Mar: '03',
  Apr: '04',
  May: '05',
  Jun: '06',
  Jul: '07',
  Aug: '08',
  Sep: '09',
  Oct: '10',
  Nov: '11',
  Dec: '12',
};

/** An ISO date as is; "Jan 1 2000" (vega-datasets' stocks.csv) to ISO; anything else is an error. */
export function isoDate(text: string, line?: number): string {
  const t = text.trim();
  // a real calendar day: Date.parse takes 2024-02-30 as March 1st
  if (/^\d{4}-\d{2}-\d{2}$/.test(t) && !Number.isNaN(Date.parse(t)) && new Date(`${t}T00:00:00Z`).toISOString().startsWith(t)) return t;
  const [mon, day, year] = t.split(/\s+/);
  if (MONTHS[mon] && /^\d{1,2}$/.test(day ?? '') && /^\d{4}$/.test(year ?? '')) return `${year}-${MONTHS[mon]}-${day.padStart(2, '0')}`;
  throw new Error(`${line === undefined ? '' : `line ${line}: `}"${text.slice(0, 40)}" is not a date (YYYY-MM-DD)`);
}

/**
 * A price series from CSV text: `date,close` rows, with or without a header. With a header, the
 * columns named date and close (or price) are used wherever they are, and `symbol` picks one
 * instrument's rows from a file that holds several. Rows must be in date order, closes positive.
 */
export function parsePriceCsv(text: string, options: { symbol?: string } = {}): PricePoint[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new Error('the CSV is empty');
  const first = lines[0].split(',').map((c) => c.trim().toLowerCase());
  const hasHeader = first.includes('date');
  const dateCol = hasHeader ? first.indexOf('date') : 0;
  const closeCol = hasHeader ? (first.includes('close') ? first.indexOf('close') : first.indexOf('price')) : 1;
  const symbolCol = hasHeader ? first.indexOf('symbol') : -1;
  if (closeCol < 0) throw new Error('the CSV header has no close (or price) column');
  if (options.symbol && symbolCol < 0) throw new Error('--symbol needs a CSV with a symbol column');
  const series: PricePoint[] = [];
  lines.slice(hasHeader ? 1 : 0).forEach((line, i) => {
    const cells = line.split(',');
    if (options.symbol && cells[symbolCol]?.trim().toUpperCase() !== options.symbol.toUpperCase()) return;
    const lineNo = i + (hasHeader ? 2 : 1);
    const date = isoDate(cells[dateCol] ?? '', lineNo);
    const close = Number(cells[closeCol]);
    if (!(close > 0) || !Number.isFinite(close)) throw new Error(`line ${lineNo}: close "${cells[closeCol]}" is not a positive number`);
    if (series.length && date <= series[series.length - 1].date)
      throw new Error(`line ${lineNo}: ${date} is not after ${series[series.length - 1].date}; rows must be oldest first`);
    series.push({ date, close });
  });
  if (options.symbol && series.length === 0) throw new Error(`no rows for symbol ${options.symbol}`);
  return series;
}

/** One close to import, as the file wrote it: the close stays the exact decimal text. */
export interface ImportRow {
  line: number;
  symbol: string;
  date: string;
  close: string;
}

export interface ParsedImport {
  rows: ImportRow[];
  /** Every problem found, each naming its line; a file with any imports nothing. */
  problems: string[];
}

/** The most rows one import takes (about 40 years of daily closes for 100 instruments). */
export const MAX_IMPORT_ROWS = 1_000_000;

/** The most problems one parse lists; the rest are counted. */
export const MAX_REPORTED_PROBLEMS = 100;

const DECIMAL = /^(\d{1,30})(?:\.(\d{1,30}))?$/;

/** Whether two decimals the file wrote are the same number ("1.50" and "01.5" are). */
function sameDecimal(a: string, b: string): boolean {
  const normal = (d: string) => {
    const [whole, fraction = ''] = d.split('.');
    return `${whole.replace(/^0+(?=\d)/, '')}.${fraction.replace(/0+$/, '')}`;
  };
  return normal(a) === normal(b);
}

/**
 * A file for `prices:import`: `symbol,date,close` rows for many instruments, or `date,close` rows
 * for the one named by `symbol`; with a header (columns found by name, so a file with more columns,
 * such as open,high,low,close,volume, works too) or without one (then by their count). Rows may come
 * in any order. Closes are positive decimals with at most 8 places, kept as written. Every bad row is
 * reported, not only the first; a date given twice for one instrument with two closes is one too.
 */
export function parsePriceImport(text: string, options: { symbol?: string } = {}): ParsedImport {
  const problems: string[] = [];
  let unreported = 0;
  // a file of a million bad rows says the first hundred and how many more
  const problem = (text: string) => (problems.length < MAX_REPORTED_PROBLEMS ? problems.push(text) : unreported++);
  const rows: ImportRow[] = [];
  const lines = text.split(/\r?\n/);
  const firstIndex = lines.findIndex((l) => l.trim() !== '');
  if (firstIndex < 0) return { rows, problems: ['the file is empty'] };
  const cellsOf = (line: string) => line.split(',').map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
  const first = cellsOf(lines[firstIndex]).map((c) => c.toLowerCase());
  const hasHeader = first.includes('date');
  let dateCol: number, closeCol: number, symbolCol: number;
  if (hasHeader) {
    dateCol = first.indexOf('date');
    closeCol = first.includes('close') ? first.indexOf('close') : first.indexOf('price');
    symbolCol = first.indexOf('symbol');
    if (closeCol < 0) return { rows, problems: [`line ${firstIndex + 1}: the header has no close (or price) column`] };
  } else if (first.length === 3) {
    [symbolCol, dateCol, closeCol] = [0, 1, 2];
  } else {
    [symbolCol, dateCol, closeCol] = [-1, 0, 1];
  }
  const wanted = options.symbol?.trim().toUpperCase();
  if (symbolCol < 0 && !wanted) return { rows, problems: ['the file has no symbol column: name its instrument with --symbol S'] };
  const seen = new Map<string, ImportRow>();
  for (let i = hasHeader ? firstIndex + 1 : firstIndex; i < lines.length; i++) {
    if (lines[i].trim() === '') continue;
    const line = i + 1;
    const cells = cellsOf(lines[i]);
    const symbol = symbolCol >= 0 ? (cells[symbolCol] ?? '').toUpperCase() : wanted!;
    if (wanted && symbol !== wanted) continue;
    if (cells.length <= Math.max(dateCol, closeCol, symbolCol)) {
      problem(`line ${line}: ${cells.length} column(s), expected at least ${Math.max(dateCol, closeCol, symbolCol) + 1}`);
      continue;
    }
    if (!/^[A-Z0-9][A-Z0-9.^=_-]{0,31}$/.test(symbol)) {
      problem(`line ${line}: "${cells[symbolCol].slice(0, 40)}" is not a symbol`);
      continue;
    }
    let date: string;
    try {
      date = isoDate(cells[dateCol], line);
    } catch (e) {
      problem((e as Error).message);
      continue;
    }
    const close = cells[closeCol];
    const decimal = DECIMAL.exec(close);
    if (!decimal || !/[1-9]/.test(close) || (decimal[2] ?? '').replace(/0+$/, '').length > 8) {
      problem(`line ${line}: close "${close.slice(0, 40)}" is not a positive decimal with at most 8 places`);
      continue;
    }
    const row = { line, symbol, date, close };
    const before = seen.get(`${symbol} ${date}`);
    if (before) {
      if (!sameDecimal(before.close, close)) problem(`line ${line}: ${symbol} ${date} is already on line ${before.line} with close ${before.close}`);
      continue;
    }
    seen.set(`${symbol} ${date}`, row);
    if (rows.length >= MAX_IMPORT_ROWS) return { rows, problems: [...problems, `more than ${MAX_IMPORT_ROWS} rows: split the file`] };
    rows.push(row);
  }
  if (unreported) problems.push(`… and ${unreported} more problem(s)`);
  if (rows.length === 0 && problems.length === 0) problems.push(wanted ? `no rows for symbol ${wanted}` : 'the file has no rows');
  return { rows, problems };
}
