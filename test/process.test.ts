import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnServer, stopProcess as stop, waitReady } from './helpers/process.js';

// `npm start` as a newcomer runs it: the embedded default on a fresh directory, first-start seed,
// readiness, the PGlite directory lock against a second process, graceful SIGTERM and a restart.
const dir = mkdtempSync(join(tmpdir(), 'foliograph-process-'));
const dataDir = join(dir, 'pglite');
const env = { ...process.env, DATABASE_URL: '', PGLITE_DATA_DIR: dataDir, NODE_ENV: 'development', LOG_LEVEL: 'info', PORT: '0' };
const tsx = ['--import', 'tsx'];
const startServer = () => spawnServer(env);

const cliWith = (overrides: Record<string, string>, script: string, ...args: string[]) =>
  spawnSync(process.execPath, [...tsx, script, ...args], { env: { ...env, ...overrides }, encoding: 'utf8', timeout: 60_000 });
const cli = (script: string, ...args: string[]) => cliWith({}, script, ...args);

describe('the server process on the embedded database', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('seeds on first start, refuses a second process, drains on SIGTERM and keeps its data', async () => {
    const first = await startServer();
    expect((await fetch(`${first.base}/healthz`)).status).toBe(200);
    await waitReady(first.base);
    const aapl = await fetch(`${first.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ instrument(symbol: "AAPL") { latestPrice { date close } } }' }),
    }).then((r) => r.json() as Promise<any>);
    expect(aapl.data.instrument.latestPrice).toEqual({ date: '2010-03-01', close: '223.02' });

    // a command never opens the directory that a live server holds
    const refused = cli('src/tools/cli/partner.ts', 'list');
    expect(refused.status).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/in use by process \d+/);

    // but a newcomer's first token needs no restart: the CLI asks the running development server
    const port = new URL(first.base).port;
    const asked = cliWith({ PORT: port }, 'src/tools/cli/token.ts', 'alice@example.com');
    expect(asked.stderr).toMatch(/minted by the running server/);
    expect(asked.status).toBe(0);
    const viewer = await fetch(`${first.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${asked.stdout.trim()}` },
      body: JSON.stringify({ query: '{ viewer { email } }' }),
    }).then((r) => r.json() as Promise<any>);
    expect(viewer.data.viewer).toEqual({ email: 'alice@example.com' });
    const unknown = cliWith({ PORT: port }, 'src/tools/cli/token.ts', 'nobody@example.com');
    expect([unknown.status, unknown.stdout, unknown.stderr.trim()]).toEqual([1, '', 'error: no user with the email nobody@example.com']);
    // with no server where the CLI looks, it says so instead of minting nothing silently
    const nowhere = cliWith({ PORT: '1' }, 'src/tools/cli/token.ts', 'alice@example.com');
    expect(nowhere.status).toBe(1);
    expect(nowhere.stderr).toMatch(/no server answers at http:\/\/127\.0\.0\.1:1\/dev\/token/);

    expect(await stop(first.child)).toBe(0);
    expect(existsSync(`${dataDir}.lock`)).toBe(false);

    const token = cli('src/tools/cli/token.ts', 'alice@example.com');
    expect(token.status).toBe(0);
    expect(token.stdout.trim()).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(cli('src/tools/cli/token.ts', 'nobody@example.com').status).toBe(1);

    // restart: no second seed, alice's data is still there
    const second = await startServer();
    await waitReady(second.base);
    const mine = await fetch(`${second.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token.stdout.trim()}` },
      body: JSON.stringify({ query: '{ viewer { email portfolios { totalCount } } }' }),
    }).then((r) => r.json() as Promise<any>);
    expect(mine.data.viewer).toEqual({ email: 'alice@example.com', portfolios: { totalCount: 2 } });
    expect(await stop(second.child)).toBe(0);
  }, 180_000);

  it('exits 1 after an uncaught exception, once it has logged it (its state can no longer be trusted)', async () => {
    const server = await spawnServer({ ...env, PGLITE_DATA_DIR: 'memory://', PLANT: 'exception' }, ['./test/helpers/plant-rejection.ts']);
    const exited = new Promise<number | null>((resolve) => server.child.once('exit', resolve));
    server.child.kill('SIGUSR2');
    expect(await exited).toBe(1);
    const fatal = server
      .log()
      .split('\n')
      .find((line) => line.includes('"msg":"uncaught exception'));
    expect(fatal).toBeDefined();
    expect(JSON.parse(fatal!)).toMatchObject({ level: 60, err: { message: 'planted uncaught exception' } });
  }, 120_000);
});
