import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPartner } from '../src/admission/partners.js';
import { checkManifest, publishOperations } from '../src/admission/trusted-documents.js';
import { rows } from '../src/db/client.js';
import { buildSchema } from '../src/graphql/schema.js';
import { CostEstimator } from '../src/limits/cost-estimate.js';
import { limitRules } from '../src/limits/rules.js';
import { htmlReport } from '../src/tools/load/html.js';
import { formatReport, runLoad, type LoadReport, type StageReport } from '../src/tools/load/run.js';
import { judge, parseSlo } from '../src/tools/load/slo.js';
import { metricSum } from '../src/observability/prom-text.js';
import { rateSteps, SCENARIOS, zipf } from '../src/tools/load/scenarios.js';
import { discoverTargets } from '../src/tools/load/targets.js';
import { seededRandom } from '../src/tools/random.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, TEST_SECRET, type TestServer } from './helpers/server.js';

// `npm run load`: scenarios are data and request builders; the runner drives them against a real
// server. What is asserted is what was asked and what the database holds after, never how fast.

describe('load scenarios', () => {
  const targets = { tokens: ['t0', 't1', 't2'], symbols: ['AAA', 'BBB'], portfolios: ['7', null, '9'] };

  it('draws Zipf ranks: deterministic for a seed, in range, the first rank most often', () => {
    const draw = (seed: number) => {
      const pick = zipf(50, seededRandom(seed));
      return Array.from({ length: 5000 }, pick);
    };
    const ranks = draw(1);
    expect(draw(1)).toEqual(ranks);
    expect(Math.min(...ranks)).toBe(0);
    expect(Math.max(...ranks)).toBeLessThan(50);
    const counts = Array.from({ length: 50 }, (_, r) => ranks.filter((x) => x === r).length);
    expect(counts[0]).toBe(Math.max(...counts));
    expect(counts[0]).toBeGreaterThan(counts[10] * 5);
  });

  it('mixes the surge as 70% dashboards (signed in) and 30% quotes (anonymous), ramped up and back down', () => {
    const random = seededRandom(3);
    const pick = { user: zipf(3, random), symbol: zipf(2, random) };
    const kinds = Array.from({ length: 10_000 }, () => SCENARIOS.surge.next(targets, random, pick));
    const dashboards = kinds.filter((k) => k.kind === 'dashboard');
    expect(dashboards.length / kinds.length).toBeGreaterThan(0.68);
    expect(dashboards.length / kinds.length).toBeLessThan(0.72);
    expect(dashboards.every((k) => k.headers.authorization?.startsWith('Bearer t'))).toBe(true);
    expect(kinds.filter((k) => k.kind === 'quote').every((k) => !k.headers.authorization)).toBe(true);
    expect(SCENARIOS.surge.stages(10, 200).map((s) => s.connections)).toEqual([10, 50, 100, 200, 10]);
    expect(SCENARIOS.surge.writes).toBe(false);
  });

  it('trades only into portfolios it found, each with a new idempotency key', () => {
    const random = seededRandom(4);
    const pick = { user: zipf(3, random), symbol: zipf(2, random) };
    const trades = Array.from({ length: 2000 }, () => SCENARIOS.trades.next(targets, random, pick)).filter((k) => k.kind === 'trade');
    expect(trades.length).toBeGreaterThan(200);
    const inputs = trades.map((t) => JSON.parse(t.body).variables.input);
    expect(new Set(inputs.map((i) => i.portfolioId))).toEqual(new Set(['7', '9']));
    expect(new Set(inputs.map((i) => i.idempotencyKey)).size).toBe(inputs.length);
    expect(SCENARIOS.trades.writes).toBe(true);
  });

  it('mixes the replicas scenario as 10% trades, 75% dashboards of the same users and 15% quotes', () => {
    const random = seededRandom(5);
    const pick = { user: zipf(3, random), symbol: zipf(2, random) };
    const kinds = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const kind = SCENARIOS.replicas.next(targets, random, pick).kind;
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    // one user of three has no portfolio: their share of trades is a dashboard instead
    expect(kinds.get('quote')! / 4000).toBeCloseTo(0.15, 1);
    expect(kinds.get('trade')! / 4000).toBeGreaterThan(0.04);
    expect(kinds.get('trade')! / 4000).toBeLessThan(0.1);
    expect(kinds.get('dashboard')! / 4000).toBeGreaterThan(0.75);
    expect(SCENARIOS.replicas.writes).toBe(true);
  });

  it('runs normal traffic alone, then the same normal traffic beside every hostile kind of request', () => {
    const random = seededRandom(5);
    const pick = { user: zipf(3, random), symbol: zipf(2, random) };
    const hostile = SCENARIOS.hostile;
    expect(hostile.stages(10, 200).map((s) => [s.name, s.connections])).toEqual([
      ['normal alone', 100],
      ['under attack', 200],
    ]);
    const alone = Array.from({ length: 2000 }, () => hostile.next(targets, random, pick, 0));
    expect(new Set(alone.map((r) => r.kind))).toEqual(new Set(hostile.normalKinds));
    // the user whose budget the attack spends is never the normal traffic's
    expect(alone.filter((r) => r.kind === 'dashboard').some((r) => r.headers.authorization === 'Bearer t0')).toBe(false);
    const attack = Array.from({ length: 4000 }, () => hostile.next(targets, random, pick, 1));
    const kinds = new Set(attack.map((r) => r.kind));
    for (const kind of [
      'fragment_bomb',
      'deep_variables',
      'nul_cursor',
      'bad_target',
      'bad_token',
      'invented_name',
      'apq_spam',
      'oversized_page',
      'too_costly',
      'one_caller',
      'quote',
      'dashboard',
    ]) {
      expect(kinds).toContain(kind);
    }
    const normal = attack.filter((r) => hostile.normalKinds!.includes(r.kind)).length / attack.length;
    expect(normal).toBeGreaterThan(0.45);
    expect(normal).toBeLessThan(0.55);
    expect(attack.filter((r) => r.kind === 'bad_target').every((r) => r.path?.startsWith('//'))).toBe(true);
  });

  it('reads sums of Prometheus samples by label', () => {
    const text = ['# HELP x', 'foo_total{a="1",b="x"} 3', 'foo_total{a="2",b="x"} 4', 'foo_total_other 100', 'foo_total 2'].join('\n');
    expect(metricSum(text, 'foo_total')).toBe(9);
    expect(metricSum(text, 'foo_total', { b: 'x' })).toBe(7);
    expect(metricSum(text, 'foo_total', { a: '2' })).toBe(4);
  });

  it('steps the capacity scenario from 10 req/s up by half a step, to 20 × the connections', () => {
    expect(rateSteps(100)).toEqual([10, 15, 23, 35, 53, 80]);
    const stages = SCENARIOS.capacity.stages(2, 5);
    expect(stages.map((s) => s.offeredRate)).toEqual([10, 15, 23, 35, 53, 80]);
    expect(stages.every((s) => s.connections === 5 && s.seconds === 2)).toBe(true);
    expect(SCENARIOS.capacity.steps).toBe(true);
  });

  const stage = (over: Partial<StageReport> = {}): StageReport => ({
    name: 'steady',
    connections: 1,
    seconds: 1,
    requests: 100,
    rps: 100,
    latencyMs: { p50: 10, p90: 20, p99: 300, max: 400 },
    statuses: { '200': 95, '503': 5 },
    kinds: { trade: 10, quote: 90 },
    succeeded: { trade: 8, quote: 87 },
    codes: {},
    latencyByKind: { trade: { count: 10, p50: 1, p99: 2 }, quote: { count: 90, p50: 1, p99: 2 } },
    clients: 1,
    timeline: [
      { t: 0, answered: 50, ok: 48, statuses: { '200': 48, '503': 2 }, p50: 10, p99: 200 },
      { t: 1, answered: 50, ok: 47, statuses: { '200': 47, '503': 3 }, p50: 11, p99: 300 },
    ],
    server: null,
    ...over,
  });
  const report = (stages: StageReport[]): LoadReport => ({ scenario: 'overload', url: 'http://x/graphql', users: 1, instruments: 1, stages });

  it('judges each stage by an SLO file, naming every bound it broke', () => {
    const slo = parseSlo(JSON.stringify({ p99Ms: 250, maxFailedRatio: 0.01, minSucceeded: { trade: 0.9, healthz: 1 } }));
    expect(judge(report([stage()]), slo)).toEqual([
      {
        stage: 'steady',
        breaches: [
          'p99 300 ms > 250 ms',
          '5.0% refused or failed > 1.0%',
          'trade: 80.0% answered ok < 90.0%',
          'healthz: 0.0% answered ok < 100.0% (none sent)',
        ],
      },
    ]);
    expect(judge(report([stage({ latencyMs: { p50: 1, p90: 1, p99: 1, max: 1 } })]), parseSlo('{"p99Ms": 250}'))).toEqual([{ stage: 'steady', breaches: [] }]);
    // only the stages it names, and a name the run did not have is a breach
    expect(judge(report([stage(), stage({ name: 'calm' })]), parseSlo('{"p99Ms": 1, "stages": ["calm"]}')).map((v) => v.stage)).toEqual(['calm']);
    expect(judge(report([stage()]), parseSlo('{"stages": ["stedy"]}'))).toEqual([{ stage: 'stedy', breaches: ['no such stage in the run'] }]);
    // a request that timed out unanswered counts against its kind: 10 trades made, 8 answered ok, 2 never answered
    const unanswered = stage({ kinds: { trade: 12 }, succeeded: { trade: 8 }, latencyByKind: { trade: { count: 8, p50: 1, p99: 2 } }, clients: 2 });
    expect(judge(report([unanswered]), parseSlo('{"minSucceeded": {"trade": 0.9}}'))[0].breaches).toEqual(['trade: 80.0% answered ok < 90.0%']);
  });

  it('refuses an SLO file that is not JSON, has unknown fields or values out of range, saying what is wrong', () => {
    expect(() => parseSlo('{')).toThrow(/not JSON/);
    expect(() => parseSlo('{"p99": 5}')).toThrow(/not valid/);
    expect(() => parseSlo('{"maxFailedRatio": 2}')).toThrow(/maxFailedRatio/);
    expect(() => parseSlo('{"p99Ms": -1}')).toThrow(/p99Ms/);
  });

  it('writes the report as a self-contained HTML page with charts over time, every text escaped', () => {
    const html = htmlReport(
      report([stage({ name: '<b>surge</b>' }), stage({ name: 'calm', timeline: [{ t: 2, answered: 5, ok: 5, statuses: { '200': 5 }, p50: 1, p99: 2 }] })]),
    );
    expect(html).toMatch(/^<!doctype html>/);
    expect(html.match(/<svg /g)).toHaveLength(3);
    for (const title of ['Throughput', 'Latency', 'Answers by status']) expect(html).toContain(`<h2>${title}</h2>`);
    expect(html).not.toContain('<b>surge</b>');
    expect(html).toContain('&#60;b&#62;surge&#60;/b&#62;');
    // nothing to run and nothing to fetch
    expect(html).not.toMatch(/<script|<link|<img|\ssrc=/);
  });
});

describe('npm run load options', () => {
  // a port where nothing listens: a run that starts anyway fails to find targets there
  const load = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/tools/cli/load.ts', ...args, '--url', 'http://127.0.0.1:9/graphql'], {
      encoding: 'utf8',
      timeout: 60_000,
    });

  it('prints its usage for --help (and -h) and exits 0, starting no run', () => {
    for (const flag of ['--help', '-h']) {
      const run = load(flag);
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/^usage: npm run load -- /);
      for (const option of ['--scenario', '--url', '--seconds', '--connections', '--users', '--json', '--list', '--target-p99', '--html', '--slo'])
        expect(run.stdout).toContain(option);
      expect(run.stderr).toBe('');
    }
  });

  it("refuses the partners scenario without a partner's key in LOAD_API_KEY, before any request", () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/tools/cli/load.ts', '--scenario', 'partners', '--url', 'http://127.0.0.1:9/graphql'], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, LOAD_API_KEY: '' },
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/set LOAD_API_KEY/);
  });

  it('refuses an option it does not know instead of running with defaults', () => {
    const run = load('--secs', '5');
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/unknown option "--secs"/);
  });
});

describe('npm run load against a server', () => {
  let database: TestDatabase;
  let server: TestServer;
  let positionOf: () => Promise<string>;

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    const instrument = await s.instrument(['10', '11'], { symbol: 'LOADX' });
    const owner = await s.user();
    const portfolio = await s.portfolio(owner);
    positionOf = async () => {
      const [p] = await rows<{ q: string }>(
        database.db,
        sql`select coalesce(sum(quantity), 0)::text as q from positions where portfolio_id = ${portfolio.id} and instrument_id = ${instrument.id}`,
      );
      return p.q;
    };
    server = await startTestServer(database, { RATE_LIMIT_COST_PER_MINUTE: '1000000000' });
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  it('finds users and instruments through the API, and leaves out ids the server does not know', async () => {
    const targets = await discoverTargets(server.url, { jwtSecret: TEST_SECRET, users: 5, withPortfolios: true });
    expect(targets.symbols).toEqual(['LOADX']);
    expect(targets.tokens).toHaveLength(1);
    expect(targets.portfolios).toHaveLength(1);
    expect(targets.portfolios![0]).toMatch(/^\d+$/);
  });

  it('runs the trades scenario: every trade answered is in the database once, and the position adds them up', async () => {
    const targets = await discoverTargets(server.url, { jwtSecret: TEST_SECRET, users: 5, withPortfolios: true });
    const report = await runLoad({ url: server.url, scenario: SCENARIOS.trades, seconds: 1, peak: 2, targets });
    const [stage] = report.stages;
    expect(stage.requests).toBeGreaterThan(0);
    expect(stage.kinds.trade).toBeGreaterThan(0);
    expect(stage.codes).toEqual({});
    // the server finishes trades whose answers the load ended before reading: between those answered and those sent
    await new Promise((r) => setTimeout(r, 200));
    const [{ n }] = await rows<{ n: number }>(database.db, sql`select count(*)::int as n from trades where idempotency_key like 'load-%'`);
    expect(Number(n)).toBeGreaterThanOrEqual(stage.succeeded.trade);
    expect(Number(n)).toBeLessThanOrEqual(stage.kinds.trade);
    expect(Number(await positionOf())).toBe(Number(n));
    expect(stage.server).not.toBeNull();
    expect(stage.server!.sqlStatements).toBeGreaterThan(0);
    expect(formatReport(report)).toContain('| steady | 2 |');
  });

  it('runs the overload scenario: every request kind is sent, only OVERLOADED or RATE_LIMITED refusals, and every trade answered is in the database once', async () => {
    const targets = await discoverTargets(server.url, { jwtSecret: TEST_SECRET, users: 5, withPortfolios: true });
    const [{ n: before }] = await rows<{ n: number }>(database.db, sql`select count(*)::int as n from trades where idempotency_key like 'load-%'`);
    const report = await runLoad({ url: server.url, scenario: SCENARIOS.overload, seconds: 2, peak: 8, targets });
    const [stage] = report.stages;
    for (const kind of ['heavy', 'dashboard']) expect(stage.kinds[kind]).toBeGreaterThan(0);
    expect(Object.keys(stage.codes).filter((k) => !/:(OVERLOADED:\w+|RATE_LIMITED)$/.test(k))).toEqual([]);
    if (stage.kinds.healthz) expect(stage.succeeded.healthz).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 200));
    const [{ n }] = await rows<{ n: number }>(database.db, sql`select count(*)::int as n from trades where idempotency_key like 'load-%'`);
    expect(Number(n) - Number(before)).toBeGreaterThanOrEqual(stage.succeeded.trade ?? 0);
    expect(Number(n) - Number(before)).toBeLessThanOrEqual(stage.kinds.trade ?? 0);
    expect(Number(await positionOf())).toBe(Number(n));
    expect(formatReport(report)).toMatch(/by kind of request in "steady": .*heavy \d+\/\d+ ok/);
  });

  it('runs the capacity scenario: steps the offered rate until a stage breaks the target p99, and says the highest that held', async () => {
    const targets = await discoverTargets(server.url, { jwtSecret: TEST_SECRET, users: 5 });
    // no stage can hold a p99 of a microsecond: the run stops after the first
    const broken = await runLoad({ url: server.url, scenario: SCENARIOS.capacity, seconds: 1, peak: 2, targets, targetP99Ms: 0.001 });
    expect(broken.stages).toHaveLength(1);
    expect(broken.capacity).toMatchObject({ targetP99Ms: 0.001, held: null, broke: { offeredRate: 10 } });
    expect(formatReport(broken)).toContain('not even the first stage held');
    // every stage holds an hour: all of them run (10, 15, 23, 35 req/s on 2 connections)
    const held = await runLoad({ url: server.url, scenario: SCENARIOS.capacity, seconds: 1, peak: 2, targets, targetP99Ms: 3_600_000 });
    expect(held.stages.map((s) => s.offeredRate)).toEqual([10, 15, 23, 35]);
    expect(held.capacity?.held?.offeredRate).toBe(35);
    expect(held.capacity?.broke).toBeNull();
    expect(formatReport(held)).toMatch(/capacity at p99 ≤ 3600000 ms: 35 req\/s offered, [\d.]+ answered/);
    expect(held.stages[0].timeline.length).toBeGreaterThan(0);
  });

  it('exits 1 when a stage breaks the --slo objectives, and writes the --html report', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'load-slo-'));
    try {
      writeFileSync(join(dir, 'slo.json'), JSON.stringify({ p99Ms: 0.001 }));
      // not spawnSync: the server under load lives in this very process
      const child = spawn(
        process.execPath,
        [
          ...['--import', 'tsx', 'src/tools/cli/load.ts', '--scenario', 'quotes', '--seconds', '1', '--connections', '1', '--users', '2'],
          ...['--url', server.url, '--slo', join(dir, 'slo.json'), '--html', join(dir, 'report.html')],
        ],
        { env: { ...process.env, JWT_SECRET: TEST_SECRET }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += String(d)));
      child.stdout.resume();
      const status = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(status, stderr).toBe(1);
      expect(stderr).toMatch(/SLO BROKEN in "steady": p99 [\d.]+ ms > 0.001 ms/);
      expect(readFileSync(join(dir, 'report.html'), 'utf8')).toContain('<svg ');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("runs the partners scenario: the example partner's trusted documents by hash with its key, every one answered", async () => {
    const { key, partner } = await createPartner(database.db, `load-${Date.now()}`);
    const manifest = JSON.parse(readFileSync(new URL('../deploy/partner-example/persisted-query-manifest.json', import.meta.url), 'utf8'));
    const schema = buildSchema();
    const { operations, problems } = checkManifest(manifest, {
      schema,
      estimator: new CostEstimator(schema),
      rules: limitRules(server.config),
      maxCost: server.config.limits.maxCost,
    });
    expect(problems).toEqual([]);
    await publishOperations(database.db, operations, partner.id);
    const targets = { ...(await discoverTargets(server.url, { jwtSecret: TEST_SECRET, users: 5 })), apiKey: key };
    const report = await runLoad({ url: server.url, scenario: SCENARIOS.partners, seconds: 1, peak: 2, targets });
    const [stage] = report.stages;
    expect(Object.keys(stage.kinds).sort()).toEqual(['partner:PriceHistory', 'partner:Quote']);
    expect(stage.codes).toEqual({});
    for (const kind of Object.keys(stage.kinds)) expect(stage.succeeded[kind]).toBe(stage.latencyByKind[kind].count);
    expect(JSON.stringify(report)).not.toContain(key);
  });

  it('runs the hostile scenario: every hostile request is refused with a contract code, normal traffic is answered, the server lives', async () => {
    const targets = await discoverTargets(server.url, { jwtSecret: TEST_SECRET, users: 5 });
    const report = await runLoad({ url: server.url, scenario: SCENARIOS.hostile, seconds: 1, peak: 4, targets });
    const [alone, attack] = report.stages;
    expect(alone.codes).toEqual({});
    expect(alone.succeeded.quote).toBeGreaterThan(0);
    expect(attack.statuses.error ?? 0).toBe(0);
    expect(attack.statuses['500'] ?? 0).toBe(0);
    expect(Object.keys(attack.codes).filter((k) => k.endsWith('INTERNAL_SERVER_ERROR'))).toEqual([]);
    for (const [kind, refusal] of [
      ['fragment_bomb', 'BAD_USER_INPUT'],
      ['nul_cursor', 'BAD_USER_INPUT'],
      ['bad_token', 'UNAUTHENTICATED'],
      ['oversized_page', 'BAD_USER_INPUT'],
    ]) {
      if (attack.kinds[kind]) expect(attack.codes[`${kind}:${refusal}`]).toBeGreaterThan(0);
    }
    expect(attack.succeeded.quote).toBeGreaterThan(0);
    expect(attack.latencyByKind.quote.count).toBe(
      attack.succeeded.quote +
        Object.entries(attack.codes)
          .filter(([k]) => k.startsWith('quote:'))
          .reduce((n, [, c]) => n + c, 0),
    );
    expect(formatReport(report)).toMatch(/normal traffic \(quote, dashboard\) in "under attack" against "normal alone": p50 [\d.]+ ms against [\d.]+ ms, p99/);
    expect((await fetch(server.url.replace('/graphql', '/healthz'))).status).toBe(200);
  });
});
