import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import type { WorkStats } from '../src/graphql/context.js';
import { createDocumentStore } from '../src/graphql/server.js';
import { createCostRecorder, OPERATION_NAME_MAX } from '../src/limits/cost-recorder.js';
import { createTestDatabase, onPostgres, type TestDatabase } from './helpers/db.js';
import { freePort } from './helpers/private-pg.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// Everything keyed by what a client sends is bounded in count and size: operation names recorded for
// cost, the operation metric's label combinations, Apollo's store of parsed documents.

const work = (rowsFetched: number): WorkStats => ({ batches: 0, keys: 0, rows: rowsFetched, loaderMs: 0, models: {}, byLoader: {} });

describe('operation names kept for cost', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database.destroy();
  });

  const names = async () =>
    (await rows<{ name: string }>(database.db, sql`select name from cost_observations where kind = 'operation' order by name`)).map((r) => r.name);

  it('are cut to 100 characters, capped per process (the rest summed as "(other)"), trusted ones always kept, and the table pruned', async () => {
    const recorder = createCostRecorder(database.db, { maxOperations: 50, maxStoredOperations: 80 });
    // a name of 3 kB once failed the whole flush (a btree entry that large is refused)
    recorder.record('Huge' + 'x'.repeat(3000), { estimated: 1, slices: [] }, { statements: 0 }, work(1));
    for (let i = 0; i < 320; i++) recorder.record(`Invented${i}`, { estimated: 1, slices: [] }, { statements: 0 }, work(1));
    for (let i = 0; i < 5; i++) recorder.record(`Published${i}`, { estimated: 1, slices: [] }, { statements: 0 }, work(1), true);
    await recorder.flush();
    const kept = await names();
    expect(kept).toContain('(other)');
    expect(kept.filter((n) => n.startsWith('Invented') || n.startsWith('Huge'))).toHaveLength(50);
    expect(kept.filter((n) => n.startsWith('Published'))).toHaveLength(5);
    expect(Math.max(...kept.map((n) => n.length))).toBeLessThanOrEqual(OPERATION_NAME_MAX);
    const [other] = await rows<{ samples: number }>(database.db, sql`select samples from cost_observations where kind = 'operation' and name = '(other)'`);
    expect(Number(other.samples)).toBe(321 - 50);

    // another process (a fresh recorder) adds its own names: the table keeps the 80 seen last
    const next = createCostRecorder(database.db, { maxOperations: 50, maxStoredOperations: 80 });
    for (let i = 0; i < 50; i++) next.record(`Later${i}`, { estimated: 1, slices: [] }, { statements: 0 }, work(1));
    await next.flush();
    const after = await names();
    expect(after.length).toBeLessThanOrEqual(80);
    expect(after.filter((n) => n.startsWith('Later'))).toHaveLength(50);
  });

  it('drops rows not seen for longer than keepDays', async () => {
    await database.db.execute(sql`insert into cost_observations (kind, name, samples, estimated_sum, actual_sum, sql_statements_sum, sql_ms_sum, updated_at)
                                  values ('operation', 'Ancient', 1, 1, 1, 1, 1, now() - interval '40 days')`);
    const recorder = createCostRecorder(database.db, { keepDays: 30 });
    recorder.record('Recent', { estimated: 1, slices: [] }, { statements: 0 }, work(1));
    await recorder.flush();
    const kept = await names();
    expect(kept).toContain('Recent');
    expect(kept).not.toContain('Ancient');
  });
});

describe('the operation metric', () => {
  let database: TestDatabase;
  let server: TestServer;
  beforeAll(async () => {
    database = await createTestDatabase();
    server = await startTestServer(database);
  });
  afterAll(async () => {
    await server.stop();
    await database.destroy();
  });

  it('keeps its label combinations bounded as a whole, whatever names and clients are invented', async () => {
    // 700 operation names x 3 client names: each label alone stays within its bound (500, 100), the
    // product would not
    for (let batch = 0; batch < 70; batch++) {
      await Promise.all(
        Array.from({ length: 30 }, (_, j) => {
          const i = batch * 30 + j;
          return server.post({ query: `query Op${i % 700} { __typename }` }, { 'apollographql-client-name': `client-${i % 3}` });
        }),
      );
    }
    const text = await server.app.metrics.registry.metrics();
    const series = text.split('\n').filter((l) => l.startsWith('foliograph_graphql_operation_duration_seconds_count{'));
    expect(series.length).toBeLessThanOrEqual(2000 + 1);
    expect(series.length).toBeGreaterThan(400);
    expect(new Set(series.map((l) => /operation="([^"]*)"/.exec(l)![1])).size).toBeLessThanOrEqual(500 + 1);
    expect(series.some((l) => l.includes('operation="other"'))).toBe(true);
  }, 120_000);
});

describe("Apollo's store of parsed documents", () => {
  it('is bounded by count and by the heap its syntax trees take', async () => {
    const store = createDocumentStore({ maxEntries: 100, maxBytes: 1_000_000 });
    const { parse } = await import('graphql');
    for (let i = 0; i < 1000; i++) await store.set(`k${i}`, parse(`query Q${i} { a: __typename b: __typename }`));
    expect(store.size).toBe(100);
    const big = `query Big { ${Array.from({ length: 300 }, (_, i) => `f${i}: __typename`).join(' ')} }`;
    for (let i = 0; i < 10; i++) await store.set(`big${i}`, parse(big.replace('Big', `Big${i}`)));
    // each tree of ~5 kB of text is estimated at ~500 kB: no more than two fit in 1 MB
    expect(store.size).toBeLessThanOrEqual(100);
    expect(await store.get('big9')).toBeDefined();
    expect(await store.get('big0')).toBeUndefined();
  });

  // A real server process with a small heap, sent many distinct valid anonymous documents: before,
  // Apollo's default store grew to ~300 MB of syntax trees and the process died of out-of-memory
  // (after ~35k documents at 160 MB). CI sends 30k at 160 MB; FLOOD_DOCUMENTS=100000 FLOOD_HEAP_MB=256
  // runs the figures (see the README). Run once, in the embedded-database pass: it needs no database.
  const floodDocuments = Number(process.env.FLOOD_DOCUMENTS ?? 30_000);
  const floodHeapMb = Number(process.env.FLOOD_HEAP_MB ?? 160);
  it.skipIf(onPostgres)(
    `lets a server with a ${floodHeapMb} MB heap survive ${floodDocuments} distinct anonymous documents`,
    async () => {
      const port = await freePort();
      const child = spawn(process.execPath, [`--max-old-space-size=${floodHeapMb}`, '--import', 'tsx', 'src/main.ts'], {
        env: {
          ...process.env,
          NODE_ENV: 'production',
          JWT_SECRET: 'memory-test-secret-0123456789',
          DATABASE_URL: '',
          REDIS_URL: '',
          PGLITE_DATA_DIR: 'memory://',
          PORT: String(port),
          LOG_LEVEL: 'error',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr!.on('data', (c) => (stderr += String(c)));
      const base = `http://127.0.0.1:${port}`;
      try {
        for (let i = 0; i < 600; i++) {
          if (child.exitCode !== null) throw new Error(`the server exited: ${stderr.slice(-500)}`);
          if ((await fetch(`${base}/readyz`).catch(() => null))?.status === 200) break;
          await sleep(200);
        }
        // 20 aliased root fields, each under a directive over its own variable: ~900 characters of
        // text, a syntax tree of about 90 kB; no SQL at all
        const documentOf = (i: number) =>
          `query Q${i}(${Array.from({ length: 20 }, (_, j) => `$b${j}: Boolean = true`).join(', ')}) { ${Array.from({ length: 20 }, (_, j) => `a${j}: __typename @include(if: $b${j})`).join(' ')} }`;
        let next = 0;
        let answered = 0;
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            while (next < floodDocuments && child.exitCode === null) {
              const i = next++;
              const res = await fetch(`${base}/graphql`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ query: documentOf(i) }),
              });
              const body = (await res.json()) as { data?: { a0?: string } };
              if (body.data?.a0 === 'Query') answered++;
            }
          }),
        );
        expect(child.exitCode).toBeNull();
        expect(answered).toBe(floodDocuments);
        expect((await fetch(`${base}/healthz`)).status).toBe(200);
      } finally {
        child.kill('SIGKILL');
      }
    },
    900_000,
  );
});
