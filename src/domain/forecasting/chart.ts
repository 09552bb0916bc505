/**
 * An SVG picture of what a forecasting model says about one instrument: the recent closes, and from
 * the as-of close a band through each horizon's 95% interval with the expected price dashed inside it.
 * Pure: the same input gives the same document, byte for byte.
 */
import { TRADING_DAYS_PER_YEAR, tradingDaysPerRow, type ForecastEstimate, type PricePoint } from './series.js';

export interface ForecastChartInput {
  symbol: string;
  /** The instrument's name, shown under the title. */
  name: string;
  currency: string;
  /** Closes, oldest first. */
  history: PricePoint[];
  model: { name: string; version: string };
  /** One forecast per horizon, all from the same as-of date; returns are simple, over the horizon. */
  forecasts: ForecastEstimate[];
  /** Rows of history to draw; default about four times the longest horizon, at least 60. */
  rows?: number;
}

const WIDTH = 960;
const HEIGHT = 480;
const PLOT = { left: 72, right: WIDTH - 24, top: 72, bottom: HEIGHT - 40 };
const DAY_MS = 86_400_000;
const MIN_ROWS = 60;
const COLOURS = { close: '#1f4e79', band: '#f28e2b', expected: '#b34700', grid: '#e6e6e6', axis: '#888888', muted: '#555555' };
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export function renderForecastChart(input: ForecastChartInput): string {
  const { history, forecasts } = input;
  if (history.length === 0) throw new Error(`no prices for ${input.symbol}`);
  if (forecasts.length === 0) throw new Error(`no forecasts for ${input.symbol}`);
  const asOf = forecasts[0].asOf;
  if (forecasts.some((f) => f.asOf !== asOf)) throw new Error('the forecasts of one chart must share one as-of date');
  const anchorIndex = history.findLastIndex((p) => p.date <= asOf);
  if (anchorIndex < 0) throw new Error(`no close on or before the as-of date ${asOf}`);
  const anchor = history[anchorIndex].close;

  const horizons = [...forecasts].sort((a, b) => a.horizonDays - b.horizonDays);
  const longest = horizons[horizons.length - 1].horizonDays;
  const windowRows = input.rows ?? Math.max(MIN_ROWS, Math.ceil((4 * longest) / tradingDaysPerRow(history)));
  // a forecast older than the window still shows where it started
  const shown = history.slice(Math.min(Math.max(0, history.length - windowRows), anchorIndex));

  const asOfTime = dayTime(asOf);
  const points = horizons.map((f) => ({
    label: `${f.horizonDays}d`,
    // trading days to calendar days
    time: asOfTime + Math.round((f.horizonDays * 365) / TRADING_DAYS_PER_YEAR) * DAY_MS,
    lower: anchor * (1 + f.lower),
    expected: anchor * (1 + f.expectedReturn),
    upper: anchor * (1 + f.upper),
  }));

  const firstTime = dayTime(shown[0].date);
  const lastTime = Math.max(dayTime(shown[shown.length - 1].date), points[points.length - 1].time);
  // room on the right for the longest horizon's label
  const xDomain = [firstTime, lastTime + Math.max(DAY_MS, (lastTime - firstTime) * 0.03)] as const;
  const prices = [...shown.map((p) => p.close), ...points.flatMap((p) => [p.lower, p.upper])];
  const yScale = priceScale(Math.min(...prices), Math.max(...prices));

  const x = (time: number) => PLOT.left + ((time - xDomain[0]) / (xDomain[1] - xDomain[0])) * (PLOT.right - PLOT.left);
  const y = (price: number) => PLOT.bottom - ((price - yScale.min) / (yScale.max - yScale.min)) * (PLOT.bottom - PLOT.top);
  const at = (time: number, price: number) => `${num(x(time))},${num(y(price))}`;

  const title = `${input.symbol} — ${input.model.name} v${input.model.version}, 95% interval`;
  const subtitle = `${input.name} · ${input.currency} · as of ${asOf}, close ${formatNumber(anchor, 2)}`;
  const band = [at(asOfTime, anchor), ...points.map((p) => at(p.time, p.upper)), ...[...points].reverse().map((p) => at(p.time, p.lower))];
  const expected = [at(asOfTime, anchor), ...points.map((p) => at(p.time, p.expected))];

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="11" role="img">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text class="title" x="16" y="26" font-size="16" font-weight="bold" fill="#222222">${escapeXml(title)}</text>`,
    `<text class="subtitle" x="16" y="46" font-size="12" fill="${COLOURS.muted}">${escapeXml(subtitle)}</text>`,
    ...legend(),
    `<g class="y-axis">`,
    ...yScale.ticks.map((t) => {
      const ty = num(y(t.value));
      return (
        `<line class="y-tick" data-value="${t.value}" x1="${PLOT.left}" y1="${ty}" x2="${PLOT.right}" y2="${ty}" stroke="${COLOURS.grid}"/>` +
        `<text x="${PLOT.left - 6}" y="${num(y(t.value) + 4)}" text-anchor="end" fill="${COLOURS.muted}">${t.label}</text>`
      );
    }),
    `<text x="${PLOT.left - 6}" y="${PLOT.top - 10}" text-anchor="end" fill="${COLOURS.muted}">${escapeXml(input.currency)}</text>`,
    `</g>`,
    `<g class="x-axis">`,
    ...dateTicks(xDomain[0], xDomain[1]).map((t) => {
      const tx = num(x(t.time));
      return (
        `<line class="x-tick" data-date="${isoDate(t.time)}" x1="${tx}" y1="${PLOT.top}" x2="${tx}" y2="${PLOT.bottom}" stroke="${COLOURS.grid}"/>` +
        `<text x="${tx}" y="${PLOT.bottom + 16}" text-anchor="middle" fill="${COLOURS.muted}">${t.label}</text>`
      );
    }),
    `<line x1="${PLOT.left}" y1="${PLOT.bottom}" x2="${PLOT.right}" y2="${PLOT.bottom}" stroke="${COLOURS.axis}"/>`,
    `<line x1="${PLOT.left}" y1="${PLOT.top}" x2="${PLOT.left}" y2="${PLOT.bottom}" stroke="${COLOURS.axis}"/>`,
    `</g>`,
    `<line class="as-of" data-date="${asOf}" x1="${num(x(asOfTime))}" y1="${PLOT.top}" x2="${num(x(asOfTime))}" y2="${PLOT.bottom}" stroke="${COLOURS.axis}" stroke-dasharray="2 3"/>`,
    `<polygon class="band" points="${band.join(' ')}" fill="${COLOURS.band}" fill-opacity="0.25" stroke="${COLOURS.band}" stroke-width="1"/>`,
    `<polyline class="close" points="${shown.map((p) => at(dayTime(p.date), p.close)).join(' ')}" fill="none" stroke="${COLOURS.close}" stroke-width="1.5" stroke-linejoin="round"/>`,
    `<polyline class="expected" points="${expected.join(' ')}" fill="none" stroke="${COLOURS.expected}" stroke-width="1.5" stroke-dasharray="5 4"/>`,
    `<circle cx="${num(x(asOfTime))}" cy="${num(y(anchor))}" r="3" fill="${COLOURS.close}"/>`,
    ...horizonLabels(points.map((p) => ({ label: p.label, x: x(p.time), y: y(p.upper) }))),
    `</svg>`,
  ];
  return `${out.join('\n')}\n`;
}

/** The legend, right-aligned on the subtitle's line. */
function legend(): string[] {
  const y = 42;
  let left = WIDTH - 300;
  const item = (swatch: (x: number) => string, label: string) => {
    const text = `${swatch(left)}<text x="${left + 24}" y="${y + 4}" fill="${COLOURS.muted}">${label}</text>`;
    left += 24 + textWidth(label, 11) + 16;
    return text;
  };
  return [
    `<g class="legend">`,
    item((x) => `<line x1="${x}" y1="${y}" x2="${x + 18}" y2="${y}" stroke="${COLOURS.close}" stroke-width="1.5"/>`, 'close'),
    item((x) => `<rect x="${x}" y="${y - 5}" width="18" height="10" fill="${COLOURS.band}" fill-opacity="0.25" stroke="${COLOURS.band}"/>`, '95% interval'),
    item((x) => `<line x1="${x}" y1="${y}" x2="${x + 18}" y2="${y}" stroke="${COLOURS.expected}" stroke-width="1.5" stroke-dasharray="5 4"/>`, 'expected'),
    `</g>`,
  ];
}

/**
 * A label above each horizon's upper bound. Short horizons sit close together (on a monthly series a
 * day is a fraction of a pixel), so a label that would overlap one already placed moves up, tied to its
 * point by a thin line; the longest horizon is placed first.
 */
function horizonLabels(points: { label: string; x: number; y: number }[]): string[] {
  const height = 12;
  const placed: { left: number; right: number; top: number; bottom: number }[] = [];
  const out: string[] = [];
  for (const p of [...points].reverse()) {
    const half = textWidth(p.label, 11) / 2 + 2;
    let baseline = p.y - 6;
    const box = () => ({ left: p.x - half, right: p.x + half, top: baseline - height + 2, bottom: baseline + 2 });
    while (placed.some((b) => overlaps(b, box()))) baseline -= height;
    placed.push(box());
    const leader =
      p.y - 6 - baseline > 0
        ? `<line x1="${num(p.x)}" y1="${num(p.y - 2)}" x2="${num(p.x)}" y2="${num(baseline + 2)}" stroke="${COLOURS.axis}" stroke-width="0.5"/>`
        : '';
    out.push(
      `${leader}<text class="horizon" x="${num(p.x)}" y="${num(baseline)}" text-anchor="middle" fill="${COLOURS.expected}" stroke="#ffffff" stroke-width="3" paint-order="stroke">${escapeXml(p.label)}</text>`,
    );
  }
  return [`<g class="horizons">`, ...out.reverse(), `</g>`];
}

const overlaps = (a: { left: number; right: number; top: number; bottom: number }, b: typeof a) =>
  a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;

/** About how wide a sans-serif label is; only used to keep labels apart. */
const textWidth = (text: string, fontSize: number) => text.length * fontSize * 0.6;

/** A price axis from nice round ticks that covers [low, high] with a little room above and below. */
function priceScale(low: number, high: number): { min: number; max: number; ticks: { value: number; label: string }[] } {
  const span = high - low || Math.abs(high) * 0.1 || 1;
  const padded = [low - span * 0.05, high + span * 0.1];
  if (low >= 0) padded[0] = Math.max(0, padded[0]);
  const step = niceStep((padded[1] - padded[0]) / 5);
  const first = Math.floor(padded[0] / step);
  const last = Math.ceil(padded[1] / step);
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  const ticks = [];
  // multiples of the step, so that 0.1 + 0.2 never shows up as 0.30000000000000004
  for (let k = first; k <= last; k++) {
    const value = Number((k * step).toFixed(decimals));
    ticks.push({ value, label: formatNumber(value, decimals) });
  }
  return { min: first * step, max: last * step, ticks };
}

/** 1, 2 or 5 times a power of ten, the nearest at or above `rough`. */
function niceStep(rough: number): number {
  const power = 10 ** Math.floor(Math.log10(rough));
  const f = rough / power;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
}

/** Ticks on month (or, for spans under two months, day) boundaries, at most seven. */
function dateTicks(from: number, to: number): { time: number; label: string }[] {
  const days = (to - from) / DAY_MS;
  if (days < 60) {
    const step = [1, 2, 7, 14].find((s) => days / s <= 7) ?? 14;
    const ticks = [];
    for (let d = Math.ceil(from / DAY_MS / step) * step; d * DAY_MS <= to; d += step) {
      const date = new Date(d * DAY_MS);
      ticks.push({ time: d * DAY_MS, label: `${MONTHS[date.getUTCMonth()]} ${date.getUTCDate()}` });
    }
    return ticks;
  }
  const start = new Date(from);
  const firstMonth = start.getUTCFullYear() * 12 + start.getUTCMonth() + (start.getUTCDate() > 1 ? 1 : 0);
  const step = [1, 2, 3, 6, 12, 24, 60, 120, 240].find((s) => days / 30.44 / s <= 7) ?? 240;
  const ticks = [];
  for (let m = Math.ceil(firstMonth / step) * step; ; m += step) {
    const time = Date.UTC(Math.floor(m / 12), m % 12, 1);
    if (time > to) break;
    ticks.push({ time, label: step >= 12 ? String(Math.floor(m / 12)) : `${MONTHS[m % 12]} ${Math.floor(m / 12)}` });
  }
  return ticks;
}

const dayTime = (isoDay: string) => Date.parse(`${isoDay}T00:00:00Z`);
const isoDate = (time: number) => new Date(time).toISOString().slice(0, 10);
/** Coordinates to a tenth of a pixel: short, and the same on every machine. */
const num = (n: number) => (Math.round(n * 10) / 10).toString();

function formatNumber(value: number, decimals: number): string {
  const [whole, fraction] = value.toFixed(decimals).split('.');
  return whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',') + (fraction ? `.${fraction}` : '');
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}
