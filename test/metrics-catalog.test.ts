import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// The alert rules and the dashboard name metrics by hand; this checks every name against what the
// real server exposes at /metrics, so a renamed metric or a typo fails here and not in an incident.
const rulesText = readFileSync(new URL('../deploy/prometheus/alerts.yml', import.meta.url), 'utf8');
const dashboard = JSON.parse(readFileSync(new URL('../deploy/grafana/foliograph.json', import.meta.url), 'utf8'));

/** Series Prometheus makes itself for every scrape, never read from /metrics. */
const SCRAPE_SERIES = new Set(['up']);
/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = new Set(['job', 'instance']);

/**
 * The `expr` of every rule in a rule file: block scalars (`expr: |`) and one-line values. Enough YAML
 * for rule files as written here; the test checks that it found one expression per rule.
 */
function ruleExpressions(yaml: string): string[] {
  const lines = yaml.split('\n');
  const indentOf = (line: string) => line.length - line.trimStart().length;
  const found: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)(- )?expr:\s*(.*)$/.exec(lines[i]);
    if (!m) continue;
    const keyIndent = m[1].length + (m[2]?.length ?? 0);
    const value = m[3].trim();
    if (/^[|>][-+]?$/.test(value)) {
      const block: string[] = [];
      while (i + 1 < lines.length && (lines[i + 1].trim() === '' || indentOf(lines[i + 1]) > keyIndent)) block.push(lines[++i]);
      found.push(block.join('\n'));
    } else if (value.startsWith('"')) {
      found.push(JSON.parse(value));
    } else if (value.startsWith("'")) {
      found.push(value.slice(1, -1).replaceAll("''", "'"));
    } else {
      found.push(value);
    }
  }
  return found;
}

/** Every PromQL query of a Grafana dashboard: panel targets (rows included) and query variables. */
function dashboardExpressions(board: any): string[] {
  const found: string[] = [];
  const walk = (panels: any[] = []) => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) if (target.expr) found.push(target.expr);
      walk(panel.panels);
    }
  };
  walk(board.panels);
  for (const variable of board.templating?.list ?? []) {
    if (variable.type !== 'query') continue;
    const query = typeof variable.query === 'string' ? variable.query : variable.query?.query;
    if (query) found.push(query);
  }
  return found;
}

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

/** The metric names a PromQL expression (or a Grafana label_values query) selects, each with the labels it matches on. */
function selectedMetrics(expr: string): Map<string, Set<string>> {
  const selected = new Map<string, Set<string>>();
  const add = (metric: string, labels: string[] = []) => {
    const known = selected.get(metric) ?? new Set<string>();
    for (const label of labels) known.add(label);
    selected.set(metric, known);
  };
  const bare = expr
    // string literals (label values, regexes) and comments, in one pass so neither hides the other
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`|#[^\n]*/g, (s) => (s.startsWith('#') ? ' ' : '""'))
    // Grafana's label_values(selector, label): the second argument is a label, not a metric
    .replace(/label_values\(([^()]*?),\s*\w+\s*\)/g, ' $1 ')
    .replace(/label_values\(\s*\w+\s*\)/g, ' ')
    // selectors with matchers: record the labels, keep the name
    .replace(/([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}/g, (_, metric: string | undefined, matchers: string) => {
      if (!metric) return ' ';
      add(
        metric,
        [...matchers.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]),
      );
      return ` ${metric} `;
    })
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries, with Grafana's $__rate_interval
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\$\{?\w+\}?/g, ' ');
  // a name not followed by "(" that is not a keyword selects a metric (function names are followed by "(")
  for (const m of bare.matchAll(/(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    if (!PROMQL_WORDS.has(m[1].toLowerCase())) add(m[1]);
  }
  return selected;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
}

/** The Prometheus text format: metric types by family, the names in HELP/TYPE lines, and every sample. */
function parseExposition(text: string) {
  const types = new Map<string, string>();
  const described: string[] = [];
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const meta = /^# (HELP|TYPE) (\S+)(?: (\S+))?/.exec(line);
    if (meta) {
      described.push(meta[2]);
      if (meta[1] === 'TYPE') types.set(meta[2], meta[3]);
      continue;
    }
    if (line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+/.exec(line);
    if (!sample) throw new Error(`not a sample line: ${line}`);
    const labels = Object.fromEntries([...(sample[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    samples.push({ name: sample[1], labels });
  }
  // the names a query can select: a histogram family only through its _bucket, _sum and _count series
  const selectable = new Set(samples.map((s) => s.name));
  for (const [family, type] of types) {
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) selectable.add(family + suffix);
    else if (type === 'summary') for (const suffix of ['', '_sum', '_count']) selectable.add(family + suffix);
    else selectable.add(family);
  }
  return { types, described, samples, selectable };
}

describe('metrics catalog', () => {
  let database: TestDatabase;
  let server: TestServer;
  let symbol: string;
  const scrape = async () => {
    const res = await fetch(server.url.replace('/graphql', '/metrics'));
    expect(res.status).toBe(200);
    return parseExposition(await res.text());
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    const fixtures = seed(database.db);
    const instrument = await fixtures.instrument(['10', '11', '12']);
    symbol = instrument.symbol;
    const model = await fixtures.model(`catalog-${randomBytes(3).toString('hex')}`);
    await fixtures.forecast(model.id, instrument.id, 21, '2024-01-31');
    server = await startTestServer(database);
    const quote = {
      query: 'query Quote($s: String!) { instrument(symbol: $s) { symbol latestPrice { close } prices(first: 2) { close } } }',
      variables: { s: symbol },
    };
    expect((await server.post(quote)).body.data.instrument.symbol).toBe(symbol);
    await server.post(quote); // answered from the response cache
    expect((await server.post({ query: '{ instruments(first: -1) { totalCount } }' })).body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  it('finds one expression per alert rule and metric names in every expression', () => {
    const rules = rulesText.match(/^\s*- (alert|record):/gm) ?? [];
    const expressions = ruleExpressions(rulesText);
    expect(rules.length).toBeGreaterThan(0);
    expect(expressions).toHaveLength(rules.length);
    const panels = dashboardExpressions(dashboard);
    expect(panels.length).toBeGreaterThan(0);
    for (const expr of [...expressions, ...panels]) expect(selectedMetrics(expr).size, expr).toBeGreaterThan(0);
    // the reader of expressions knows functions, keywords, label lists and Grafana's variables
    expect([
      ...selectedMetrics('sum by (job, le) (rate(a_bucket{x="y", z=~"$v"}[$__rate_interval])) / ignoring (z) group_left b offset 1h > bool 1e3 # c').entries(),
    ]).toEqual([
      ['a_bucket', new Set(['x', 'z'])],
      ['b', new Set()],
    ]);
    expect([...selectedMetrics('label_values(c{job=~"$job"}, instance)').keys()]).toEqual(['c']);
  });

  it('names in the alert rules and the dashboard only metrics and labels that /metrics exposes', async () => {
    const { selectable, samples } = await scrape();
    const selected = new Map<string, Set<string>>();
    for (const expr of [...ruleExpressions(rulesText), ...dashboardExpressions(dashboard)]) {
      for (const [metric, labels] of selectedMetrics(expr)) selected.set(metric, new Set([...(selected.get(metric) ?? []), ...labels]));
    }
    const missing = [...selected.keys()].filter((metric) => !selectable.has(metric) && !SCRAPE_SERIES.has(metric));
    expect(missing).toEqual([]);

    // labels can be checked where the metric has series already (a labelled metric shows none until used)
    let checked = 0;
    for (const [metric, labels] of selected) {
      const series = samples.filter((s) => s.name === metric);
      if (series.length === 0) continue;
      checked++;
      const exposed = new Set(series.flatMap((s) => Object.keys(s.labels)));
      const unknown = [...labels].filter((label) => !TARGET_LABELS.has(label) && !exposed.has(label));
      expect(unknown, `labels of ${metric}`).toEqual([]);
    }
    expect(checked).toBeGreaterThanOrEqual(10);
  });

  it('names every metric foliograph_', async () => {
    const { described, samples } = await scrape();
    expect(samples.length).toBeGreaterThan(0);
    const foreign = [...new Set([...described, ...samples.map((s) => s.name)])].filter((name) => !name.startsWith('foliograph_'));
    expect(foreign).toEqual([]);
  });

  it('keeps label values bounded when clients invent operation names, client names and paths', async () => {
    // More distinct names than the 500 operation names (and 100 client names) that are kept, sent by
    // 20 clients at a time: later names must fold into "other".
    const names = Array.from({ length: 600 }, () => randomBytes(6).toString('hex'));
    for (let i = 0; i < names.length; i += 20) {
      const answers = await Promise.all(
        names.slice(i, i + 20).map((name) => server.post({ query: `query Op_${name} { __typename }` }, { 'apollographql-client-name': `client-${name}` })),
      );
      for (const answer of answers) expect(answer.body.data).toEqual({ __typename: 'Query' });
    }
    for (const name of names.slice(0, 20)) await fetch(server.url.replace('/graphql', `/${name}`));

    const { samples } = await scrape();
    const operations = samples.filter((s) => s.name === 'foliograph_graphql_operation_duration_seconds_count');
    expect(operations.length).toBeLessThanOrEqual(510);
    const operationNames = new Set(operations.map((s) => s.labels.operation));
    const clientNames = new Set(operations.map((s) => s.labels.client));
    expect(operationNames.has('other')).toBe(true);
    expect(operationNames.size).toBeLessThanOrEqual(501);
    expect(clientNames.has('other')).toBe(true);
    expect(clientNames.size).toBeLessThanOrEqual(101);
    const routes = new Set(samples.filter((s) => s.name === 'foliograph_http_request_duration_seconds_count').map((s) => s.labels.route));
    expect([...routes].every((route) => ['/graphql', '/healthz', '/readyz', '/metrics', 'other'].includes(route))).toBe(true);
    expect(routes.has('other')).toBe(true);
  });
});
