import autocannon from 'autocannon';
import { metricSum } from '../../observability/prom-text.js';
import { seededRandom } from '../random.js';
import { zipf, type LoadRequest, type LoadTargets, type Scenario, type Stage } from './scenarios.js';

/**
 * Runs a scenario's stages one after another against a running server and reports each: throughput,
 * latency, status codes, GraphQL error codes by kind of request, and — read from the server's own
 * /metrics before and after — the SQL it cost, the cache hit ratio, requests shed, and the longest
 * line for database connections seen while it ran.
 */
export interface LoadOptions {
  url: string;
  scenario: Scenario;
  /** Seconds per stage. */
  seconds: number;
  /** Most connections at once (the scenario's peak). */
  peak: number;
  targets: LoadTargets;
  seed?: number;
  /** The p99 a stage must hold, in ms: scenarios that step the offered rate stop at the first stage past it (default 1000). */
  targetP99Ms?: number;
  onProgress?: (message: string) => void;
}

/** One second of a stage, as the load client saw it: for the report's charts. */
export interface Second {
  /** Seconds since the run began. */
  t: number;
  answered: number;
  /** Answered 200 without errors. */
  ok: number;
  /** Answers by HTTP status in this second (connection errors and timeouts are in the stage's statuses only). */
  statuses: Record<string, number>;
  p50: number;
  p99: number;
}

export interface StageReport extends Stage {
  requests: number;
  /** Requests per second (mean over the stage). */
  rps: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  /** HTTP status → count; `error` for connection errors and timeouts. */
  statuses: Record<string, number>;
  /** Kind of request → requests made (those prepared when the stage ended, at most one per connection, were never sent). */
  kinds: Record<string, number>;
  /** Kind of request → answers with status 200 and no errors. */
  succeeded: Record<string, number>;
  /** `kind:CODE` → count, from the error codes in GraphQL answers. */
  codes: Record<string, number>;
  /** Kind of request → its latency as the load client saw it (from building the request to its answer). */
  latencyByKind: Record<string, { count: number; p50: number; p99: number }>;
  /** Second by second, from the start of the run. */
  timeline: Second[];
  /** Connections of the stage, the scenario's groups beside it included. */
  clients: number;
  /** From the server's /metrics (null when it could not be read). */
  server: {
    sqlStatements: number;
    sqlPerRequest: number;
    cacheHitRatio: number | null;
    shed: number;
    /** The longest line of statements waiting for a database connection, sampled every second (a scrape costs the server a statement of its own). */
    poolWaitingMax: number;
    /** With READ_REPLICA_URLS: where requests read, `target:reason` → count (foliograph_db_read_routes_total); empty without replicas. */
    reads: Record<string, number>;
  } | null;
}

export interface LoadReport {
  scenario: string;
  /** The scenario's normal kinds of request (see Scenario.normalKinds). */
  normalKinds?: string[];
  url: string;
  users: number;
  instruments: number;
  stages: StageReport[];
  /** For scenarios that step the offered rate: the highest that held the target p99, and where it broke. */
  capacity?: { targetP99Ms: number; held: StageReport | null; broke: StageReport | null };
}

async function scrape(metricsUrl: string): Promise<string | null> {
  try {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(5000) });
    return res.ok ? await res.text() : null;
  } catch {
    return null;
  }
}

export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const { scenario, targets } = options;
  if (targets.symbols.length === 0) throw new Error('the server lists no instruments: seed it first (npm run db:seed)');
  if (targets.tokens.length === 0) throw new Error('no user the scenario could act as: is the server seeded, and does JWT_SECRET match its own?');
  const random = seededRandom(options.seed ?? 42);
  const pick = { user: zipf(targets.tokens.length, random), symbol: zipf(targets.symbols.length, random) };
  const metricsUrl = new URL('/metrics', options.url).toString();
  const stages: StageReport[] = [];
  const began = performance.now();
  const targetP99Ms = options.targetP99Ms ?? 1000;
  for (const [index, stage] of scenario.stages(options.seconds, options.peak).entries()) {
    const extra = (scenario.beside ?? []).map((g) => ` + ${g.connections} ${g.name}`).join('');
    options.onProgress?.(`${scenario.name}: ${stage.name}, ${stage.connections} connections${extra} for ${stage.seconds} s`);
    const kinds: Record<string, number> = {};
    const succeeded: Record<string, number> = {};
    const codes: Record<string, number> = {};
    const latencies: Record<string, number[]> = {};
    // second of the run → its answers: how many, how many ok, by status, and their latencies
    const seconds = new Map<number, { ok: number; statuses: Record<string, number>; ms: number[] }>();
    const tally = (status: string, ok: boolean, ms: number) => {
      const t = Math.floor((performance.now() - began) / 1000);
      let second = seconds.get(t);
      if (!second) seconds.set(t, (second = { ok: 0, statuses: {}, ms: [] }));
      second.statuses[status] = (second.statuses[status] ?? 0) + 1;
      if (ok) second.ok++;
      second.ms.push(ms);
    };
    const before = await scrape(metricsUrl);
    let poolWaitingMax = 0;
    const sampler = setInterval(() => {
      void scrape(metricsUrl).then((text) => {
        if (text) poolWaitingMax = Math.max(poolWaitingMax, metricSum(text, 'foliograph_db_pool_connections', { state: 'waiting' }));
      });
    }, 1000);
    /** One autocannon run over `connections` connections, each request from `next`. */
    const drive = (connections: number, next: () => LoadRequest, rate?: number, overallRate?: number) =>
      autocannon({
        url: options.url,
        connections,
        duration: stage.seconds,
        ...(rate ? { connectionRate: rate } : {}),
        ...(overallRate ? { overallRate } : {}),
        // at a fixed rate, autocannon would add a made-up sample per millisecond of each answer's
        // latency (its coordinated-omission correction assumes a 1 ms interval): every answer once
        ...(rate || overallRate ? { ignoreCoordinatedOmission: true } : {}),
        timeout: 30,
        requests: [
          {
            method: 'POST',
            setupRequest: (request, context) => {
              const made = next();
              Object.assign(context, { kind: made.kind, sentAt: performance.now() });
              kinds[made.kind] = (kinds[made.kind] ?? 0) + 1;
              if (made.path) return { ...request, method: 'GET', path: made.path, headers: made.headers, body: undefined };
              return { ...request, headers: made.headers, body: made.body };
            },
            onResponse: (status, body, context) => {
              const { kind = 'unknown', sentAt } = context as { kind?: string; sentAt?: number };
              const ms = sentAt === undefined ? 0 : performance.now() - sentAt;
              if (sentAt !== undefined) (latencies[kind] ??= []).push(ms);
              tally(String(status), status === 200 && !body.includes('"errors"'), ms);
              if (status === 200 && !body.includes('"errors"')) {
                succeeded[kind] = (succeeded[kind] ?? 0) + 1;
                return;
              }
              try {
                const parsed = JSON.parse(body) as { errors?: { extensions?: { code?: string; reason?: unknown } }[] };
                for (const e of parsed.errors ?? []) {
                  // a shed request says by which rule: OVERLOADED:db_wait, OVERLOADED:cost_in_flight, ...
                  const reason = e.extensions?.code === 'OVERLOADED' && typeof e.extensions.reason === 'string' ? `:${e.extensions.reason.slice(0, 20)}` : '';
                  const key = `${kind}:${e.extensions?.code ?? 'NO_CODE'}${reason}`;
                  codes[key] = (codes[key] ?? 0) + 1;
                }
              } catch {
                codes[`${kind}:HTTP_${status}`] = (codes[`${kind}:HTTP_${status}`] ?? 0) + 1;
              }
            },
          },
        ],
      });
    const groups = scenario.beside ?? [];
    let results: autocannon.Result[];
    try {
      // the scenario's own clients, and beside them each group on connections of its own, all at once
      results = await Promise.all([
        drive(stage.connections, () => scenario.next(targets, random, pick, index), stage.rate, stage.offeredRate),
        ...groups.map((g) => drive(g.connections, () => g.next(targets, random, pick))),
      ]);
    } finally {
      clearInterval(sampler);
    }
    const after = await scrape(metricsUrl);
    const statuses: Record<string, number> = {};
    let errors = 0;
    for (const result of results) {
      for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = (statuses[code] ?? 0) + (stat.count ?? 0);
      errors += result.errors;
    }
    if (errors) statuses.error = errors;
    const requests = results.reduce((n, r) => n + r.requests.total, 0);
    let server: StageReport['server'] = null;
    if (before && after) {
      const delta = (name: string, labels?: Record<string, string>) => metricSum(after, name, labels) - metricSum(before, name, labels);
      const sqlStatements = delta('foliograph_sql_statements_total');
      const hits = delta('foliograph_response_cache_requests_total', { result: 'hit' });
      const misses = delta('foliograph_response_cache_requests_total', { result: 'miss' });
      server = {
        sqlStatements,
        sqlPerRequest: requests ? round(sqlStatements / requests) : 0,
        cacheHitRatio: hits + misses ? round(hits / (hits + misses)) : null,
        shed: delta('foliograph_shed_requests_total'),
        poolWaitingMax,
        reads: readRoutes(before, after),
      };
    }
    stages.push({
      ...stage,
      requests,
      rps: round(results.reduce((n, r) => n + r.requests.average, 0)),
      // one group: autocannon's own figures; several: every answer's latency as this client saw it
      latencyMs:
        results.length === 1
          ? { p50: results[0].latency.p50, p90: results[0].latency.p90, p99: results[0].latency.p99, max: results[0].latency.max }
          : overall(Object.values(latencies).flat()),
      statuses,
      kinds,
      succeeded,
      codes,
      latencyByKind: Object.fromEntries(Object.entries(latencies).map(([kind, ms]) => [kind, summarise(ms)])),
      timeline: timelineOf(seconds),
      clients: stage.connections + groups.reduce((n, g) => n + g.connections, 0),
      server,
    });
    // a scenario that steps the offered rate ends at the first stage that did not hold
    if (scenario.steps && !holds(stages.at(-1)!, targetP99Ms)) break;
  }
  const report: LoadReport = {
    scenario: scenario.name,
    normalKinds: scenario.normalKinds,
    url: options.url,
    users: targets.tokens.length,
    instruments: targets.symbols.length,
    stages,
  };
  if (scenario.steps) {
    const held = stages.filter((s) => holds(s, targetP99Ms)).at(-1) ?? null;
    const broke = stages.find((s) => !holds(s, targetP99Ms)) ?? null;
    report.capacity = { targetP99Ms, held, broke };
  }
  return report;
}

/**
 * Whether a stage held: p99 within the target, at most 1% of answers refused or failed (429, 503,
 * 5xx, connection errors), and the offered rate really served (at least 80% of it answered).
 */
export function holds(stage: StageReport, targetP99Ms: number): boolean {
  const answered = Object.values(stage.statuses).reduce((a, n) => a + n, 0);
  const failed = Object.entries(stage.statuses)
    .filter(([code]) => code === 'error' || code === '429' || code.startsWith('5'))
    .reduce((a, [, n]) => a + n, 0);
  const served = stage.offeredRate ? stage.requests / stage.seconds >= 0.8 * stage.offeredRate : true;
  return stage.latencyMs.p99 <= targetP99Ms && failed <= 0.01 * Math.max(answered, 1) && served;
}

const round = (x: number) => Math.round(x * 100) / 100;

/** The stage's seconds in order, a second without answers (a stall) included as zeros. */
function timelineOf(seconds: Map<number, { ok: number; statuses: Record<string, number>; ms: number[] }>): Second[] {
  const ts = [...seconds.keys()];
  if (ts.length === 0) return [];
  const out: Second[] = [];
  for (let t = Math.min(...ts); t <= Math.max(...ts); t++) {
    const second = seconds.get(t);
    const { p50, p99 } = summarise(second?.ms ?? []);
    out.push({ t, answered: second?.ms.length ?? 0, ok: second?.ok ?? 0, statuses: second?.statuses ?? {}, p50, p99 });
  }
  return out;
}

function overall(ms: number[]): StageReport['latencyMs'] {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: round(sorted.at(-1) ?? 0) };
}

function summarise(ms: number[]): { count: number; p50: number; p99: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
  return { count: sorted.length, p50: at(0.5), p99: at(0.99) };
}

/**
 * Requests of a kind that really went out: those answered, or those made less one per connection
 * (a request prepared when the stage ended was never sent), whichever is more: a request that timed
 * out or lost its connection counts, unanswered.
 */
export function triedOf(stage: StageReport, kind: string): number {
  return Math.max(stage.latencyByKind[kind]?.count ?? 0, (stage.kinds[kind] ?? 0) - stage.clients);
}

/** The latency of the scenario's normal kinds of request, all together, in one stage. */
export function normalLatency(stage: StageReport, normalKinds: string[]): { count: number; p50: number; p99: number } | null {
  const counted = normalKinds.map((k) => stage.latencyByKind[k]).filter(Boolean);
  if (counted.length === 0) return null;
  // the per-kind percentiles weighed by count: enough to compare two stages of the same mix
  const count = counted.reduce((n, k) => n + k.count, 0);
  const weigh = (f: (k: { p50: number; p99: number }) => number) => round(counted.reduce((n, k) => n + f(k) * k.count, 0) / count);
  return { count, p50: weigh((k) => k.p50), p99: weigh((k) => k.p99) };
}

/** How many reads went where in a stage, by `target:reason`, from two scrapes of /metrics. */
function readRoutes(before: string, after: string): Record<string, number> {
  const counts = (text: string) => {
    const found = new Map<string, number>();
    for (const m of text.matchAll(/^foliograph_db_read_routes_total\{target="(\w+)",reason="(\w+)"\} (\S+)$/gm)) found.set(`${m[1]}:${m[2]}`, Number(m[3]));
    return found;
  };
  const [was, is] = [counts(before), counts(after)];
  const reads: Record<string, number> = {};
  for (const [key, n] of is) if (n - (was.get(key) ?? 0) > 0) reads[key] = n - (was.get(key) ?? 0);
  return reads;
}

/** The report as a table for people. */
export function formatReport(report: LoadReport): string {
  const lines = [
    `scenario ${report.scenario} against ${report.url}: ${report.users} users, ${report.instruments} instruments`,
    '',
    '| stage | conns | req/s | p50 ms | p99 ms | 2xx | 429 | 503 | other | SQL/req | cache hits | pool line max | shed |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const s of report.stages) {
    const count = (code: string) => s.statuses[code] ?? 0;
    const ok = Object.entries(s.statuses)
      .filter(([c]) => c.startsWith('2'))
      .reduce((a, [, n]) => a + n, 0);
    const other = Object.entries(s.statuses).reduce((a, [, n]) => a + n, 0) - ok - count('429') - count('503');
    const sv = s.server;
    lines.push(
      `| ${s.name} | ${s.connections} | ${s.rps} | ${s.latencyMs.p50} | ${s.latencyMs.p99} | ${ok} | ${count('429')} | ${count('503')} | ${other} | ${sv ? sv.sqlPerRequest : '-'} | ${sv?.cacheHitRatio == null ? '-' : `${Math.round(sv.cacheHitRatio * 100)}%`} | ${sv ? sv.poolWaitingMax : '-'} | ${sv ? sv.shed : '-'} |`,
    );
  }
  const codes = new Map<string, number>();
  for (const s of report.stages) for (const [k, n] of Object.entries(s.codes)) codes.set(k, (codes.get(k) ?? 0) + n);
  if (codes.size) {
    lines.push(
      '',
      'error codes by kind of request: ' +
        [...codes]
          .sort((a, b) => b[1] - a[1])
          .map(([k, n]) => `${k} ${n}`)
          .join(', '),
    );
  }
  for (const s of report.stages) {
    const reads = Object.entries(s.server?.reads ?? {}).sort((a, b) => b[1] - a[1]);
    const total = reads.reduce((n, [, c]) => n + c, 0);
    if (!total) continue;
    const each = reads.map(([route, n]) => `${route.replace(':', ' (')}) ${n} (${Math.round((100 * n) / total)}%)`);
    lines.push('', `reads in "${s.name}" by where they went: ${each.join(', ')}`);
  }
  for (const s of report.stages) {
    const kinds = Object.entries(s.kinds).sort((a, b) => b[1] - a[1]);
    if (kinds.length < 2) continue;
    const each = kinds.map(([kind]) => {
      const ok = s.succeeded[kind] ?? 0;
      const tried = triedOf(s, kind);
      return `${kind} ${ok}/${tried} ok (${Math.round((100 * ok) / Math.max(tried, 1))}%), p99 ${s.latencyByKind[kind]?.p99 ?? '-'} ms`;
    });
    lines.push('', `by kind of request in "${s.name}": ${each.join('; ')}`);
  }
  if (report.normalKinds?.length && report.stages.length > 1) {
    const [alone, ...rest] = report.stages.map((s) => ({ s, n: normalLatency(s, report.normalKinds!) }));
    for (const { s, n } of rest) {
      if (!alone.n || !n) continue;
      lines.push(
        '',
        `normal traffic (${report.normalKinds.join(', ')}) in "${s.name}" against "${alone.s.name}": p50 ${n.p50} ms against ${alone.n.p50} ms, ` +
          `p99 ${n.p99} ms against ${alone.n.p99} ms (${(n.p99 / Math.max(alone.n.p99, 1e-9)).toFixed(2)}×)`,
      );
    }
  }
  if (report.capacity) {
    const { held, broke, targetP99Ms } = report.capacity;
    const line = (s: StageReport) =>
      `${s.offeredRate} req/s offered, ${s.rps} answered, p99 ${s.latencyMs.p99} ms, SQL/request ${s.server?.sqlPerRequest ?? '-'}, pool line max ${s.server?.poolWaitingMax ?? '-'}`;
    lines.push(
      '',
      held ? `capacity at p99 ≤ ${targetP99Ms} ms: ${line(held)}` : `capacity at p99 ≤ ${targetP99Ms} ms: not even the first stage held`,
      broke ? `first stage past it: ${line(broke)}` : 'no stage broke it: raise the last rate (--connections) to find the limit',
    );
  }
  const calm = report.stages[0];
  const peak = report.stages.reduce((a, b) => (b.connections > a.connections ? b : a), calm);
  if (peak !== calm && calm.latencyMs.p99 > 0) {
    lines.push(
      '',
      `at the peak (${peak.connections} connections) against ${calm.name} (${calm.connections}): throughput ${(peak.rps / Math.max(calm.rps, 1e-9)).toFixed(1)}×, p99 ${(peak.latencyMs.p99 / calm.latencyMs.p99).toFixed(1)}×` +
        (peak.server && calm.server ? `, SQL per request ${peak.server.sqlPerRequest} against ${calm.server.sqlPerRequest}` : ''),
    );
  }
  return lines.join('\n');
}
