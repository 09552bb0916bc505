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
  if (/^\d{4}-\d{2}-\d{2}$/.test(t) && !Number.isNaN(Date.parse(t))) return t;
  const [mon, day, year] = t.split(/\s+/);
  if (MONTHS[mon] && /^\d{1,2}$/.test(day ?? '') && /^\d{4}$/.test(year ?? '')) return `${year}-${MONTHS[mon]}-${day.padStart(2, '0')}`;
  throw new Error(`${line === undefined ? '' : `line ${line}: `}"${text}" is not a date (YYYY-MM-DD)`);
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
