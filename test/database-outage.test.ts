import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUserToken } from '../src/admission/tokens.js';
import { createDatabase } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { onPostgres } from './helpers/db.js';
import { freePort, privatePostgresBin, startPrivatePostgres, type PrivatePostgres } from './helpers/private-pg.js';
import { seed } from './helpers/seed.js';
import { TEST_SECRET } from './helpers/server.js';

// A real server process on a PostgreSQL cluster of the test's own, under write load, while that
// cluster restarts, stops for a while and has its backends terminated: the process must live, answer
// fast and truthfully while the database is away (503 DATABASE_UNAVAILABLE with Retry-After, never a
// hang or an internal error), be ready again soon after the database returns, and keep the ledger
// exact: every acknowledged trade stored once, none that the client was told failed.
//
// It runs with the PostgreSQL suite (DATABASE_URL set; CI's second pass) where the server binaries exist.

const RECORD = `mutation Trade($input: RecordTradeInput!) { recordTrade(input: $input) { trade { id idempotencyKey } position { quantity } } }`;

type Outcome = 'ok' | 'failed' | 'unknown';

interface Answer {
  status: number;
  codes: string[];
  outcome: Outcome;
  retryAfter: string | null;
  at: number;
}

describe.skipIf(!onPostgres || !privatePostgresBin)('a database that restarts, stops and drops connections under write load', () => {
  let pg: PrivatePostgres;
  let server: ChildProcess;
  let base: string;
  let stderr = '';
  let token: string;
  let portfolioId: string;
  let symbol: string;

  beforeAll(async () => {
    pg = await startPrivatePostgres();
    const database = await createDatabase({ databaseUrl: pg.url, pgliteDataDir: 'memory://', dbPoolMax: 2 });
    await migrate(database);
    const s = seed(database.db);
    const user = await s.user();
    portfolioId = String((await s.portfolio(user)).id);
    symbol = (await s.instrument(['100'])).symbol;
    await database.close();
    token = await signUserToken(TEST_SECRET, user.id);

    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: {
        ...process.env,
        NODE_ENV: 'production',
        JWT_SECRET: TEST_SECRET,
        DATABASE_URL: pg.url,
        REDIS_URL: '',
        PORT: String(port),
        LOG_LEVEL: 'warn',
        DB_POOL_MAX: '5',
        REQUEST_TIMEOUT_MS: '4000',
        RATE_LIMIT_COST_PER_MINUTE: '1000000000',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    server.stderr!.on('data', (chunk) => (stderr += String(chunk)));
    for (let i = 0; i < 200 && !(await ready()); i++) await sleep(100);
    expect(await ready()).toBe(true);
  });

  afterAll(async () => {
    server?.kill('SIGKILL');
    pg?.destroy();
  });

  async function ready(): Promise<boolean> {
    try {
      return (await fetch(`${base}/readyz`)).status === 200;
    } catch {
      return false;
    }
  }

  async function trade(key: string): Promise<Answer> {
    const at = performance.now();
    try {
      const res = await fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: RECORD, variables: { input: { portfolioId, symbol, side: 'BUY', quantity: '1', price: '10', idempotencyKey: key } } }),
      });
      const body = (await res.json()) as { data?: { recordTrade?: unknown }; errors?: { extensions?: { code?: string; outcome?: string } }[] };
      const errors = body.errors ?? [];
      const outcome: Outcome = body.data?.recordTrade ? 'ok' : errors.some((e) => e.extensions?.outcome === 'unknown') ? 'unknown' : 'failed';
      return { status: res.status, codes: errors.map((e) => String(e.extensions?.code)), outcome, retryAfter: res.headers.get('retry-after'), at };
    } catch {
      // no answer at all: the client cannot know
      return { status: 0, codes: [], outcome: 'unknown', retryAfter: null, at };
    }
  }

  it('lives through restarts, a stop and terminated backends; answers 503 at once meanwhile; loses and invents no trade', async () => {
    const answers = new Map<string, Answer>();
    let running = true;
    const clients = Array.from({ length: 20 }, async (_, c) => {
      for (let n = 0; running; n++) {
        const key = `outage-${c}-${n}`;
        const answer = await trade(key);
        answers.set(key, answer);
        if (answer.status === 503) await sleep(50);
      }
    });

    await sleep(1000);
    pg.restart();
    await sleep(1000);
    pg.restart();
    await sleep(1000);

    // a 3 s stop: every request in it is answered, fast and truthfully
    pg.stop();
    const stoppedAt = performance.now();
    await sleep(300);
    const readyWhileDown = await fetch(`${base}/readyz`);
    const readyBody = await readyWhileDown.text();
    await sleep(2700);
    const restartedAt = performance.now();
    pg.start();
    let readyAgainAfterMs = -1;
    // up to 30 s: on this shared machine it has taken from 0.6 s to 12.7 s (the figure is printed)
    for (let i = 0; i < 600; i++) {
      if (await ready()) {
        readyAgainAfterMs = performance.now() - restartedAt;
        break;
      }
      await sleep(50);
    }
    await sleep(1000);

    // single busy backends killed under load
    for (let i = 0; i < 5; i++) {
      pg.psql(
        `select pg_terminate_backend(pid) from pg_stat_activity where application_name like 'foliograph:%' and state <> 'idle' and pid <> pg_backend_pid()`,
      );
      await sleep(200);
    }
    await sleep(1000);
    running = false;
    await Promise.all(clients);

    // the process lived, and never crashed a request
    if (process.env.OUTAGE_DEBUG)
      console.info({ stoppedAt, restartedAt, bad: [...answers.values()].filter((a) => a.status >= 500 && a.status !== 503), stderr: stderr.slice(-4000) });
    expect(server.exitCode).toBeNull();
    expect(stderr).not.toMatch(/TypeError|uncaught|unhandled/i);
    const all = [...answers.values()];
    expect(all.filter((a) => a.status === 0)).toEqual([]);
    expect(all.flatMap((a) => a.codes)).not.toContain('INTERNAL_SERVER_ERROR');
    expect(all.filter((a) => a.status === 504 || (a.status >= 500 && a.status !== 503))).toEqual([]);

    // while the database was stopped: 503 DATABASE_UNAVAILABLE with Retry-After, and /readyz 503
    const duringStop = all.filter((a) => a.at > stoppedAt + 200 && a.at < restartedAt);
    expect(duringStop.length).toBeGreaterThan(20);
    for (const a of duringStop) expect(a).toMatchObject({ status: 503, codes: ['DATABASE_UNAVAILABLE'], outcome: 'failed', retryAfter: '1' });
    expect(readyWhileDown.status).toBe(503);
    expect(readyBody).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|postgres/i);
    // (ready again within a few probe intervals of the database; the figure is printed, not asserted)
    expect(readyAgainAfterMs).toBeGreaterThanOrEqual(0);
    console.info(`/readyz 200 again ${Math.round(readyAgainAfterMs)} ms after pg_ctl start returned`);

    // the ledger: retry every unknown outcome with its key, then compare with the database
    for (const [key, answer] of answers) {
      if (answer.outcome !== 'unknown') continue;
      let retried = await trade(key);
      for (let i = 0; i < 20 && retried.outcome !== 'ok'; i++) retried = await trade(key);
      expect(retried.outcome).toBe('ok');
      answers.set(key, retried);
    }
    const stored = pg
      .psql(`select idempotency_key from trades where portfolio_id = ${Number(portfolioId)}`)
      .split('\n')
      .filter(Boolean);
    const storedKeys = new Set(stored);
    expect(stored.length).toBe(storedKeys.size);
    const acknowledged = [...answers].filter(([, a]) => a.outcome === 'ok').map(([k]) => k);
    const refused = [...answers].filter(([, a]) => a.outcome === 'failed').map(([k]) => k);
    expect(acknowledged.length).toBeGreaterThan(100);
    expect(refused.length).toBeGreaterThan(20);
    expect(acknowledged.filter((k) => !storedKeys.has(k))).toEqual([]);
    expect(refused.filter((k) => storedKeys.has(k))).toEqual([]);
    expect(stored.length).toBe(acknowledged.length);
    const quantity = pg.psql(`select quantity::int from positions where portfolio_id = ${Number(portfolioId)}`);
    expect(Number(quantity)).toBe(acknowledged.length);
  }, 120_000);
});
