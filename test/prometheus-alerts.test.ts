import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// The alert rules of deploy/prometheus/alerts.yml on a real Prometheus (Debian's `prometheus`; the
// test is skipped where the binary is missing, CI installs it): a real server is scraped every
// second, the database pool is overloaded, and the pool-saturation and shedding alerts must fire
// through Prometheus's own API, with nothing firing before. The rules are the project's, expressions
// untouched; only their `for:` durations are cut to a second, so that the test takes seconds, not minutes.

const hasPrometheus = spawnSync('prometheus', ['--version'], { stdio: 'ignore' }).status === 0;

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

interface PromAlert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
}

describe.skipIf(!hasPrometheus)('alert rules on a real Prometheus', () => {
  let database: TestDatabase;
  let server: TestServer;
  let prometheus: ChildProcess;
  let promUrl: string;
  let symbol: string;
  let trader: { id: number };
  let portfolio: number;
  const dir = mkdtempSync(join(tmpdir(), 'foliograph-prometheus-'));

  const alerts = async (): Promise<PromAlert[]> => {
    const res = await fetch(`${promUrl}/api/v1/alerts`).catch(() => null);
    if (!res?.ok) return [];
    return ((await res.json()) as { data: { alerts: PromAlert[] } }).data.alerts;
  };
  const firing = async () => (await alerts()).filter((a) => a.state === 'firing').map((a) => a.labels.alertname);
  /** Polls, boundedly (at most 60 s), until `done` holds of Prometheus's answer; returns the last one. */
  const waitFor = async <T>(probe: () => Promise<T>, done: (v: T) => boolean): Promise<T> => {
    let value = await probe();
    for (let i = 0; i < 240 && !done(value); i++) {
      await new Promise((r) => setTimeout(r, 250));
      value = await probe();
    }
    return value;
  };

  beforeAll(async () => {
    // two connections (PGlite has one), a one-statement line, nothing answered from a cache
    database = await createTestDatabase({ poolMax: 2 });
    const s = seed(database.db);
    symbol = (await s.instrument(['10', '11'])).symbol;
    trader = await s.user();
    portfolio = (await s.portfolio(trader)).id;
    server = await startTestServer(database, { DB_QUEUE_MAX: '1', RESPONSE_CACHE: 'off', HOT_CACHE_TTL_MS: '0' });
    const target = new URL(server.url).host;
    const rules = readFileSync(join(import.meta.dirname, '../deploy/prometheus/alerts.yml'), 'utf8').replace(/^(\s+)for: \S+$/gm, '$1for: 1s');
    writeFileSync(join(dir, 'alerts.yml'), rules);
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s }',
        'rule_files: [alerts.yml]',
        'scrape_configs:',
        `  - { job_name: foliograph, metrics_path: /metrics, static_configs: [{ targets: ["${target}"] }] }`,
        '',
      ].join('\n'),
    );
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      'prometheus',
      [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
      { stdio: 'ignore' },
    );
    // ready once it has scraped the server and evaluated the rules over that sample
    await waitFor(
      async () => {
        const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent('up{job="foliograph"}')}`).catch(() => null);
        return res?.ok ? ((await res.json()) as { data: { result: { value: [number, string] }[] } }).data.result : [];
      },
      (result) => result.length === 1 && result[0].value[1] === '1',
    );
  }, 120_000);

  afterAll(async () => {
    prometheus?.kill('SIGTERM');
    await server?.stop();
    await database?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fires FoliographDbPoolSaturated and FoliographOverloaded under an overloaded pool, and nothing before', { timeout: 120_000 }, async () => {
    // a few quiet evaluations first: no rule fires on a server at rest
    const post = () =>
      fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ instruments { totalCount } }' }) });
    for (let i = 0; i < 3; i++) {
      expect((await post()).status).toBe(200);
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(await firing()).toEqual([]);

    // every connection held, one statement in line behind them; requests keep arriving and are shed
    const { pool } = database;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const holders = Array.from({ length: pool.permits + 1 }, () => pool.run(() => held));
    const statuses: number[] = [];
    let arriving = true;
    const traffic = (async () => {
      while (arriving) {
        statuses.push((await post()).status);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      const wanted = ['FoliographDbPoolSaturated', 'FoliographOverloaded'];
      const fired = await waitFor(firing, (names) => wanted.every((n) => names.includes(n)));
      expect(fired).toEqual(expect.arrayContaining(wanted));
      const shed = (await alerts()).find((a) => a.labels.alertname === 'FoliographOverloaded' && a.state === 'firing')!;
      expect(shed.labels).toMatchObject({ reason: 'db_queue', severity: 'critical' });
      expect(statuses.length).toBeGreaterThan(0);
      expect(statuses.every((s) => s === 503)).toBe(true);
    } finally {
      arriving = false;
      await traffic;
      release();
      await Promise.all(holders);
    }
    // and the pool's alert resolves once its connections are free again
    const after = await waitFor(firing, (names) => !names.includes('FoliographDbPoolSaturated'));
    expect(after).not.toContain('FoliographDbPoolSaturated');
  });
  it('fires FoliographUrgentTrafficShed when trades are shed, which anonymous shedding alone never did', { timeout: 120_000 }, async () => {
    expect(await firing()).not.toContain('FoliographUrgentTrafficShed');
    // every connection held and a write in line: DB_QUEUE_MAX (1) writes ahead of any new trade
    const { pool } = database;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const holders = [
      ...Array.from({ length: pool.permits }, () => pool.run(() => held)),
      pool.run(async () => {}, 'transaction', { statements: 0, priority: 'write' }),
    ];
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${await server.token(trader.id)}` };
    const trade = (n: number) =>
      fetch(server.url, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          query: 'mutation T($input: RecordTradeInput!) { recordTrade(input: $input) { trade { id } } }',
          variables: { input: { portfolioId: String(portfolio), symbol, side: 'BUY', quantity: '1', price: '10', idempotencyKey: `prom-${n}` } },
        }),
      });
    const statuses: number[] = [];
    let arriving = true;
    const traffic = (async () => {
      for (let n = 0; arriving; n++) {
        statuses.push((await trade(n)).status);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      const fired = await waitFor(firing, (names) => names.includes('FoliographUrgentTrafficShed'));
      expect(fired).toContain('FoliographUrgentTrafficShed');
      const urgent = (await alerts()).find((a) => a.labels.alertname === 'FoliographUrgentTrafficShed' && a.state === 'firing')!;
      expect(urgent.labels).toMatchObject({ priority: 'write', severity: 'critical' });
      expect(statuses.every((st) => st === 503)).toBe(true);
    } finally {
      arriving = false;
      await traffic;
      release();
      await Promise.all(holders);
    }
  });
});
