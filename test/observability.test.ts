import { Writable } from 'node:stream';
import postgres from 'postgres';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createApp } from '../src/app.js';
import { publishModelTimings } from '../src/observability/model-timings.js';
import { metricSum } from '../src/observability/prom-text.js';
import { createTestDatabase, onPostgres, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, TEST_SECRET, type TestServer } from './helpers/server.js';

describe('observability', () => {
  let database: TestDatabase;
  let server: TestServer;
  let symbol: string;
  const metrics = async () => (await fetch(server.url.replace('/graphql', '/metrics'))).text();

  beforeAll(async () => {
    database = await createTestDatabase();
    symbol = (await seed(database.db).instrument(['10', '11'])).symbol;
    server = await startTestServer(database);
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  it('moves the metrics of an operation, its loaders, its SQL and the cache when they happen', async () => {
    const before = await metrics();
    const query = { query: 'query Quote($s: String!) { instrument(symbol: $s) { symbol latestPrice { close } } }', variables: { s: symbol } };
    await server.post(query);
    await server.post(query); // a hit
    const after = await metrics();
    const delta = (name: string, labels?: Record<string, string>) => metricSum(after, name, labels) - metricSum(before, name, labels);
    expect(delta('foliograph_graphql_operation_duration_seconds_count', { operation: 'Quote', outcome: 'ok' })).toBe(2);
    expect(delta('foliograph_http_request_duration_seconds_count', { route: '/graphql', method: 'POST', status: '200' })).toBe(2);
    expect(delta('foliograph_loader_batch_keys_count', { loader: 'instrumentBySymbol' })).toBe(1);
    expect(delta('foliograph_loader_batch_duration_seconds_count', { loader: 'latestPrice' })).toBe(1);
    expect(delta('foliograph_sql_statements_total')).toBeGreaterThanOrEqual(2);
    expect(delta('foliograph_response_cache_requests_total', { result: 'hit', tier: 'local' })).toBe(1);
    expect(delta('foliograph_operation_cost_count', { kind: 'estimated' })).toBe(1);
    expect(metricSum(after, 'foliograph_ready')).toBe(1);
    expect(metricSum(after, 'foliograph_db_pool_max')).toBeGreaterThanOrEqual(1);
  });

  it('observes the model runs that commands announce on the database, by model, version and stage', async () => {
    const labels = { model: 'ewma-test', version: '7', stage: 'inference' };
    const before = metricSum(await metrics(), 'foliograph_forecast_model_duration_seconds_count', labels);
    await publishModelTimings(database.db, [
      { ...labels, stage: 'inference', seconds: 0.002 },
      { ...labels, stage: 'inference', seconds: 0.004 },
      { ...labels, stage: 'generation', seconds: 0.5 },
    ]);
    // NOTIFY arrives asynchronously: wait for it, boundedly
    let after = before;
    for (let i = 0; i < 100 && after - before < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
      after = metricSum(await metrics(), 'foliograph_forecast_model_duration_seconds_count', labels);
    }
    expect(after - before).toBe(2);
    const text = await metrics();
    expect(metricSum(text, 'foliograph_forecast_model_duration_seconds_count', { ...labels, stage: 'generation' })).toBe(1);
    expect(metricSum(text, 'foliograph_forecast_model_duration_seconds_sum', labels)).toBeCloseTo(0.006, 6);
  });

  it('counts errors by code', async () => {
    const before = await metrics();
    await server.post({ query: '{ instruments(first: -1) { totalCount } }' });
    const after = await metrics();
    expect(
      metricSum(after, 'foliograph_graphql_errors_total', { code: 'BAD_USER_INPUT' }) -
        metricSum(before, 'foliograph_graphql_errors_total', { code: 'BAD_USER_INPUT' }),
    ).toBe(1);
  });

  it('logs one line per operation, and slow operations and SQL with their loaders, without variables', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const text of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(text));
        done();
      },
    });
    // thresholds of 1 ms: every operation and batch counts as slow here
    const config = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET, SLOW_OPERATION_MS: '1', SLOW_SQL_MS: '1', RESPONSE_CACHE: 'off' });
    const app = createApp({ config, database, logger: pino({ level: 'info' }, sink) });
    const url = await app.listen(0, '127.0.0.1');
    try {
      const secret = 'do-not-log-this-symbol';
      await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'apollographql-client-name': 'web' },
        body: JSON.stringify({ query: 'query Quote($s: String!) { instrument(symbol: $s) { symbol latestPrice { close } } }', variables: { s: secret } }),
      });
      const operation = lines.find((l) => l.msg === 'operation');
      expect(operation).toMatchObject({ operation: 'Quote', type: 'query', client: 'web', caller: 'ip', outcome: 'ok' });
      expect(operation?.sql).toBeGreaterThanOrEqual(1);
      const slow = lines.find((l) => l.msg === 'slow operation');
      expect(slow?.batches).toHaveProperty('instrumentBySymbol');
      expect(lines.some((l) => l.msg === 'slow sql' && l.loader === 'instrumentBySymbol')).toBe(true);
      expect(JSON.stringify(lines)).not.toContain(secret);
    } finally {
      await app.stop();
    }
  });

  it('logs slow SQL with its statement and, above the plan threshold, its plan; never its parameters', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const text of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(text));
        done();
      },
    });
    // every batch is slow and every slow batch is explained here
    const config = loadConfig({
      NODE_ENV: 'test',
      JWT_SECRET: TEST_SECRET,
      SLOW_SQL_MS: '0',
      SLOW_SQL_PLAN_MS: '0',
      SLOW_SQL_PLAN_SAMPLE: '1',
      RESPONSE_CACHE: 'off',
      HOT_CACHE_TTL_MS: '0',
    });
    const app = createApp({ config, database, logger: pino({ level: 'info' }, sink) });
    const url = await app.listen(0, '127.0.0.1');
    try {
      await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: 'query Quote($s: String!) { instrument(symbol: $s) { symbol } }', variables: { s: symbol } }),
      });
      const slow = lines.find((l) => l.msg === 'slow sql' && l.loader === 'instrumentBySymbol');
      expect(slow?.sql).toEqual([expect.stringMatching(/^select .*from "?instruments"?/i)]);
      // the plan comes a moment later, from its own EXPLAIN
      for (let i = 0; i < 100 && !lines.some((l) => l.msg === 'slow sql plan'); i++) await new Promise((r) => setTimeout(r, 20));
      const plan = lines.find((l) => l.msg === 'slow sql plan');
      expect(plan).toMatchObject({ loader: 'instrumentBySymbol' });
      expect((plan?.plan as string[]).join('\n')).toMatch(/Scan/);
      expect(JSON.stringify(lines)).not.toContain(symbol);
    } finally {
      await app.stop();
    }
  });

  it('sheds requests with a fast 503 while too many statements wait for a connection, and counts them', async () => {
    const config = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET, DB_QUEUE_MAX: '1', RESPONSE_CACHE: 'off' });
    const app = createApp({ config, database, logger: pino({ level: 'silent' }) });
    const url = await app.listen(0, '127.0.0.1');
    const { pool } = database;
    // a first scrape reads the forecasts' live calibration (one statement, remembered 30 s), so the
    // scrapes below count the shed request's statements alone
    await app.metrics.registry.metrics();
    // hold every connection, and put one statement in line behind them
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const holders = Array.from({ length: pool.permits + 1 }, () => pool.run(() => held));
    try {
      await new Promise((r) => setImmediate(r));
      expect(pool.waiting).toBe(1);
      const statementsBefore = metricSum(await app.metrics.registry.metrics(), 'foliograph_sql_statements_total');
      const shed = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ instruments { totalCount } }' }),
      });
      expect(shed.status).toBe(503);
      expect(shed.headers.get('retry-after')).toBe('1');
      expect(((await shed.json()) as { errors: { extensions: unknown }[] }).errors[0].extensions).toMatchObject({ code: 'OVERLOADED', reason: 'db_queue' });
      const text = await app.metrics.registry.metrics();
      expect(metricSum(text, 'foliograph_shed_requests_total', { reason: 'db_queue' })).toBe(1);
      expect(metricSum(text, 'foliograph_graphql_errors_total', { code: 'OVERLOADED' })).toBe(1);
      expect(metricSum(text, 'foliograph_sql_statements_total')).toBe(statementsBefore);
      release();
      await Promise.all(holders);
      const served = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ instruments { totalCount } }' }),
      });
      expect(served.status).toBe(200);
    } finally {
      release();
      await app.stop();
    }
  });

  // Only PostgreSQL can go away and come back; PGlite lives in the process.
  it.skipIf(!onPostgres)('follows a database that goes away and comes back, without a restart', async () => {
    const name = new URL(database.url!).pathname.slice(1);
    const admin = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
    const ready = async () => (await fetch(server.url.replace('/graphql', '/readyz'))).status;
    try {
      expect(await ready()).toBe(200);
      await admin.unsafe(`alter database "${name}" allow_connections false`);
      await admin.unsafe(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name}' and pid <> pg_backend_pid()`);
      expect(await ready()).toBe(503);
      expect((await fetch(server.url.replace('/graphql', '/healthz'))).status).toBe(200);
      await admin.unsafe(`alter database "${name}" allow_connections true`);
      let status = await ready();
      for (let i = 0; i < 40 && status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100)); // a bounded wait for the pool to reconnect
        status = await ready();
      }
      expect(status).toBe(200);
    } finally {
      await admin.unsafe(`alter database "${name}" allow_connections true`).catch(() => {});
      await admin.end();
    }
  });
});
