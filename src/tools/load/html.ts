import type { LoadReport, Second } from './run.js';
import { formatReport } from './run.js';

/**
 * A load report as one self-contained HTML page (`npm run load -- --html FILE`): the text report, and
 * SVG charts over the run's seconds of throughput, latency percentiles and answers by status, with
 * each stage marked. No script and nothing fetched: it opens from a file or a CI artifact as it is.
 */

const WIDTH = 900;
const HEIGHT = 220;
const PAD = { left: 60, right: 20, top: 20, bottom: 30 };

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

interface Line {
  name: string;
  color: string;
  values: number[];
}

/** One chart: lines over the run's seconds, the stages' starts as labelled verticals. */
function chart(title: string, unit: string, seconds: number[], lines: Line[], stageStarts: { t: number; name: string }[]): string {
  const tMax = Math.max(1, ...seconds);
  const yMax = Math.max(1, ...lines.flatMap((l) => l.values)) * 1.1;
  const x = (t: number) => PAD.left + (t / tMax) * (WIDTH - PAD.left - PAD.right);
  const y = (v: number) => HEIGHT - PAD.bottom - (v / yMax) * (HEIGHT - PAD.top - PAD.bottom);
  const paths = lines.map(
    (l) =>
      `<polyline fill="none" stroke="${l.color}" stroke-width="1.5" points="${l.values.map((v, i) => `${x(seconds[i]).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`,
  );
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const v = yMax * f;
    return `<text x="${PAD.left - 6}" y="${y(v) + 4}" text-anchor="end" font-size="10">${v >= 100 ? Math.round(v) : v.toFixed(1)}</text><line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`;
  });
  const stages = stageStarts.map(
    (s) =>
      `<line x1="${x(s.t)}" x2="${x(s.t)}" y1="${PAD.top}" y2="${HEIGHT - PAD.bottom}" stroke="#bbb" stroke-dasharray="3,3"/><text x="${x(s.t) + 3}" y="${PAD.top + 10}" font-size="10" fill="#666">${escape(s.name)}</text>`,
  );
  const legend = lines.map(
    (l, i) =>
      `<rect x="${PAD.left + i * 120}" y="${HEIGHT - 12}" width="10" height="3" fill="${l.color}"/><text x="${PAD.left + i * 120 + 14}" y="${HEIGHT - 8}" font-size="10">${escape(l.name)}</text>`,
  );
  return `<h2>${escape(title)}</h2>
<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${escape(title)}">
<text x="8" y="${PAD.top}" font-size="10">${escape(unit)}</text>
${ticks.join('\n')}
${stages.join('\n')}
${paths.join('\n')}
<text x="${WIDTH - PAD.right}" y="${HEIGHT - PAD.bottom + 14}" text-anchor="end" font-size="10">${tMax} s</text>
${legend.join('\n')}
</svg>`;
}

export function htmlReport(report: LoadReport): string {
  const timeline: Second[] = report.stages.flatMap((s) => s.timeline);
  const seconds = timeline.map((s) => s.t);
  const status = (s: Second, match: (code: string) => boolean) =>
    Object.entries(s.statuses)
      .filter(([code]) => match(code))
      .reduce((a, [, n]) => a + n, 0);
  const stageStarts = report.stages.filter((s) => s.timeline.length).map((s) => ({ t: s.timeline[0].t, name: s.name }));
  const charts = [
    chart(
      'Throughput',
      'answers/s',
      seconds,
      [
        { name: 'answered', color: '#5470c6', values: timeline.map((s) => s.answered) },
        { name: 'ok (200, no errors)', color: '#3ba272', values: timeline.map((s) => s.ok) },
      ],
      stageStarts,
    ),
    chart(
      'Latency',
      'ms',
      seconds,
      [
        { name: 'p50', color: '#5470c6', values: timeline.map((s) => s.p50) },
        { name: 'p99', color: '#ee6666', values: timeline.map((s) => s.p99) },
      ],
      stageStarts,
    ),
    chart(
      'Answers by status',
      'answers/s',
      seconds,
      [
        { name: '2xx', color: '#3ba272', values: timeline.map((s) => status(s, (c) => c.startsWith('2'))) },
        { name: '429', color: '#fac858', values: timeline.map((s) => status(s, (c) => c === '429')) },
        { name: '503', color: '#ee6666', values: timeline.map((s) => status(s, (c) => c === '503')) },
        { name: 'other', color: '#9a60b4', values: timeline.map((s) => status(s, (c) => !c.startsWith('2') && c !== '429' && c !== '503')) },
      ],
      stageStarts,
    ),
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>foliograph load: ${escape(report.scenario)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:960px}pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}</style>
</head><body>
<h1>Load scenario ${escape(report.scenario)}</h1>
<pre>${escape(formatReport(report))}</pre>
${charts.join('\n')}
</body></html>
`;
}
