import { describe, expect, it } from 'vitest';
import { renderForecastChart, type ForecastChartInput } from '../src/domain/forecasting/chart.js';
import type { ForecastEstimate, PricePoint } from '../src/domain/forecasting/series.js';
import { monthlyDates, weekdayDates } from './helpers/series.js';

const DAY = 86_400_000;

// The chart is a pure function from prices and forecasts to an SVG document: these tests read the
// document back (tags, the band's points, the axis ticks) and check what it shows. No database.

/** A gently rising, wiggling series, so lines have shape and no two closes are equal. */
function series(dates: string[]): PricePoint[] {
  return dates.map((date, i) => ({ date, close: 100 * Math.exp(0.001 * i) * (1 + 0.05 * Math.sin(i / 7)) }));
}

/** Forecasts as of the series' last date whose interval widens with the square root of the horizon. */
function forecastsFor(history: PricePoint[], horizons = [1, 5, 21, 63]): ForecastEstimate[] {
  const asOf = history[history.length - 1].date;
  return horizons.map((h) => ({ asOf, horizonDays: h, expectedReturn: 0.001 * h, lower: -0.02 * Math.sqrt(h), upper: 0.025 * Math.sqrt(h) }));
}

function input(history: PricePoint[], overrides: Partial<ForecastChartInput> = {}): ForecastChartInput {
  return {
    symbol: 'EX',
    name: 'Example Corp.',
    currency: 'USD',
    history,
    model: { name: 'ewma', version: '3' },
    forecasts: forecastsFor(history),
    ...overrides,
  };
}

/** Every tag closed in order, nothing but tags holding < or >, every & an entity. */
function expectWellFormed(svg: string) {
  expect(svg.startsWith('<svg')).toBe(true);
  expect(svg.trim().endsWith('</svg>')).toBe(true);
  const open: string[] = [];
  const text = svg.replace(
    /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<>]*")*)\s*(\/?)>/g,
    (_, closing: string, name: string, _attrs: string, selfClosing: string) => {
      if (closing) expect(open.pop()).toBe(name);
      else if (!selfClosing) open.push(name);
      return '';
    },
  );
  expect(open).toEqual([]);
  expect(text).not.toMatch(/[<>]/);
  expect(svg).not.toMatch(/&(?!(amp|lt|gt|quot|apos);)/);
}

const pairs = (points: string) =>
  points
    .trim()
    .split(/\s+/)
    .map((p) => p.split(',').map(Number) as [number, number]);

function shape(svg: string, element: 'polygon' | 'polyline', cls: string): [number, number][] {
  const m = svg.match(new RegExp(`<${element} class="${cls}" points="([^"]+)"`));
  expect(m, `${element}.${cls}`).not.toBeNull();
  return pairs(m![1]);
}

/** Price at a y coordinate, read off the y axis's first and last ticks. */
function priceAxis(svg: string) {
  const ticks = [...svg.matchAll(/<line class="y-tick" data-value="([^"]+)" x1="[^"]+" y1="([^"]+)"/g)].map((m) => ({ value: Number(m[1]), y: Number(m[2]) }));
  expect(ticks.length).toBeGreaterThanOrEqual(3);
  const [a, b] = [ticks[0], ticks[ticks.length - 1]];
  const perPixel = (b.value - a.value) / (b.y - a.y);
  return { priceAt: (y: number) => a.value + (y - a.y) * perPixel, top: Math.min(a.y, b.y), bottom: Math.max(a.y, b.y), perPixel: Math.abs(perPixel) };
}

/** Time at an x coordinate, read off the date axis's first and last ticks. */
function dateAxis(svg: string) {
  const ticks = [...svg.matchAll(/<line class="x-tick" data-date="([^"]+)" x1="([^"]+)"/g)].map((m) => ({
    time: Date.parse(`${m[1]}T00:00:00Z`),
    x: Number(m[2]),
  }));
  expect(ticks.length).toBeGreaterThanOrEqual(2);
  const [a, b] = [ticks[0], ticks[ticks.length - 1]];
  const perPixel = (b.time - a.time) / (b.x - a.x);
  return { timeAt: (x: number) => a.time + (x - a.x) * perPixel, dayPerPixel: perPixel / DAY };
}

describe('renderForecastChart', () => {
  it('is a well-formed SVG document with its text escaped', () => {
    const history = series(weekdayDates(120));
    const svg = renderForecastChart(input(history, { symbol: 'A&B', name: `Smith & <Jones> "Fund" 'A'`, currency: 'EUR' }));
    expectWellFormed(svg);
    expect(svg).toContain('Smith &amp; &lt;Jones&gt; &quot;Fund&quot; &apos;A&apos;');
    expect(svg).toContain('viewBox="0 0 960 480"');
    expect(svg).not.toMatch(/<script|href=|@import|url\(/);
  });

  it('titles the chart with the symbol, the model and its version', () => {
    const svg = renderForecastChart(input(series(weekdayDates(120))));
    expect(svg).toMatch(/<text class="title"[^>]*>EX — ewma v3, 95% interval<\/text>/);
    expect(svg).toContain('<title>EX — ewma v3, 95% interval</title>');
  });

  it('draws the band through the prices at (1 + lower) and (1 + upper) of the as-of close, on the axis', () => {
    const history = series(weekdayDates(300));
    const forecasts = forecastsFor(history);
    const svg = renderForecastChart(input(history, { forecasts }));
    const anchor = history[history.length - 1].close;
    const band = shape(svg, 'polygon', 'band');
    const axis = priceAxis(svg);
    const ys = band.map(([, y]) => y);
    // coordinates are rounded to 0.1 px
    const tolerance = axis.perPixel * 0.1;
    expect(Math.abs(axis.priceAt(Math.min(...ys)) - anchor * (1 + Math.max(...forecasts.map((f) => f.upper))))).toBeLessThanOrEqual(tolerance);
    expect(Math.abs(axis.priceAt(Math.max(...ys)) - anchor * (1 + Math.min(...forecasts.map((f) => f.lower))))).toBeLessThanOrEqual(tolerance);
    for (const y of ys) {
      expect(y).toBeGreaterThanOrEqual(axis.top);
      expect(y).toBeLessThanOrEqual(axis.bottom);
    }
    // one point at the as-of close, then an upper and a lower point per horizon
    expect(band).toHaveLength(1 + 2 * forecasts.length);
    expect(Math.abs(axis.priceAt(band[0][1]) - anchor)).toBeLessThanOrEqual(tolerance);
  });

  it('places each horizon at as-of plus its trading days in calendar days, with the expected price dashed', () => {
    const history = series(weekdayDates(300));
    const forecasts = forecastsFor(history);
    const svg = renderForecastChart(input(history, { forecasts }));
    const dates = dateAxis(svg);
    const axis = priceAxis(svg);
    const expected = shape(svg, 'polyline', 'expected');
    const asOf = Date.parse(`${history[history.length - 1].date}T00:00:00Z`);
    expect(expected).toHaveLength(1 + forecasts.length);
    for (const [i, f] of forecasts.entries()) {
      const [x, y] = expected[i + 1];
      expect(Math.abs((dates.timeAt(x) - asOf) / DAY - (f.horizonDays * 365) / 252)).toBeLessThanOrEqual(0.5 + 0.2 * dates.dayPerPixel);
      expect(Math.abs(axis.priceAt(y) - history[history.length - 1].close * (1 + f.expectedReturn))).toBeLessThanOrEqual(axis.perPixel * 0.1);
    }
    expect(svg).toMatch(/stroke-dasharray/);
    for (const h of [1, 5, 21, 63]) expect(svg).toMatch(new RegExp(`<text class="horizon"[^>]*>${h}d</text>`));
  });

  it('is the same document for the same input, whatever order the forecasts come in', () => {
    const history = series(weekdayDates(300));
    const first = renderForecastChart(input(history));
    expect(renderForecastChart(input(series(weekdayDates(300))))).toBe(first);
    expect(renderForecastChart(input(history, { forecasts: forecastsFor(history).reverse() }))).toBe(first);
  });

  it('shows about four times the longest horizon of a daily series', () => {
    const svg = renderForecastChart(input(series(weekdayDates(600))));
    expectWellFormed(svg);
    expect(shape(svg, 'polyline', 'close')).toHaveLength(4 * 63);
  });

  it('shows at least 60 rows of a monthly series, whose horizons span a few rows', () => {
    const history = series(monthlyDates(240));
    const svg = renderForecastChart(input(history));
    expectWellFormed(svg);
    const close = shape(svg, 'polyline', 'close');
    expect(close).toHaveLength(60);
    // the 63-day horizon lands about three months after the last close
    const dates = dateAxis(svg);
    const band = shape(svg, 'polygon', 'band');
    const days = (dates.timeAt(Math.max(...band.map(([x]) => x))) - dates.timeAt(close[close.length - 1][0])) / DAY;
    expect(days).toBeGreaterThan(85);
    expect(days).toBeLessThan(97);
  });

  it('draws all of a series shorter than the window, and as many rows as asked', () => {
    const short = series(weekdayDates(20));
    const svg = renderForecastChart(input(short));
    expectWellFormed(svg);
    expect(shape(svg, 'polyline', 'close')).toHaveLength(20);
    expect(shape(svg, 'polygon', 'band')).toHaveLength(9);

    expect(shape(renderForecastChart(input(series(weekdayDates(300)), { rows: 30 })), 'polyline', 'close')).toHaveLength(30);
    expect(shape(renderForecastChart(input(series(weekdayDates(1)))), 'polyline', 'close')).toHaveLength(1);
  });

  it('starts the band at the as-of close when newer prices follow it', () => {
    const history = series(weekdayDates(300));
    const forecasts = forecastsFor(history.slice(0, 280));
    const svg = renderForecastChart(input(history, { forecasts }));
    const [, y] = shape(svg, 'polygon', 'band')[0];
    const axis = priceAxis(svg);
    expect(Math.abs(axis.priceAt(y) - history[279].close)).toBeLessThanOrEqual(axis.perPixel * 0.1);
  });

  it('refuses forecasts it cannot place', () => {
    const history = series(weekdayDates(100));
    const mixed = [...forecastsFor(history, [1]), ...forecastsFor(history.slice(0, 50), [5])];
    expect(() => renderForecastChart(input(history, { forecasts: mixed }))).toThrow(/one as-of date/);
    expect(() => renderForecastChart(input(history, { forecasts: forecastsFor([{ date: '2019-01-01', close: 1 }]) }))).toThrow(/no close on or before/);
    expect(() => renderForecastChart(input(history, { forecasts: [] }))).toThrow(/no forecasts/);
  });
});
