import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// POST /dev/token: what `npm run token` asks a running development server on the embedded database
// (the CLI's side is in process.test.ts). Closed in production and on PostgreSQL, where the CLI
// opens the database itself.
describe('the development token route', () => {
  let database: TestDatabase;
  let dev: TestServer;
  let prod: TestServer;
  const ask = (server: TestServer, body: unknown, init: RequestInit = {}) =>
    fetch(new URL('/dev/token', server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      ...init,
    });

  beforeAll(async () => {
    database = await createTestDatabase();
    await seed(database.db).user({ email: 'alice@example.com', name: 'Alice' });
    dev = await startTestServer(database, { NODE_ENV: 'development' });
    prod = await startTestServer(database, { NODE_ENV: 'production' });
  });
  afterAll(async () => {
    await dev?.stop();
    await prod?.stop();
    await database?.destroy();
  });

  it('mints a user token that signs the user in, on the embedded database in development', async () => {
    const res = await ask(dev, { email: ' Alice@Example.com ' });
    if (database.driver !== 'pglite') {
      // on PostgreSQL the CLI opens the database itself: there is nothing to ask a server for
      expect(res.status).toBe(404);
      return;
    }
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const { token, note } = (await res.json()) as { token: string; note: string };
    expect(note).toBe('a token for alice@example.com, valid for 30d');
    const viewer = await fetch(dev.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: '{ viewer { email } }' }),
    }).then((r) => r.json() as Promise<any>);
    expect(viewer.data.viewer).toEqual({ email: 'alice@example.com' });
  });

  it('refuses what it cannot mint with one clear line, and signs nothing', async () => {
    if (database.driver !== 'pglite') return;
    const cases: [unknown, number, RegExp][] = [
      [{ email: 'nobody@example.com' }, 400, /no user with the email nobody@example\.com/],
      [{ email: 'alice@example.com', expires: 'forever' }, 400, /--expires takes a lifetime/],
      [{ email: 'alice@example.com', scopes: ['portfolios:read'] }, 400, /--scopes is for a token delegated to a partner/],
      [{ email: 'alice@example.com', partner: 'nobody' }, 400, /nobody/],
      [{ email: 42 }, 400, /email is a string/],
      ['not json', 400, /not JSON/],
      [[1, 2], 400, /JSON object/],
      [{ email: 'a'.repeat(5000) }, 413, /larger than 4096 bytes/],
    ];
    for (const [body, status, message] of cases) {
      const res = await ask(dev, body);
      const answer = (await res.json()) as { token?: string; error: string };
      expect([res.status, answer.token], JSON.stringify(body).slice(0, 80)).toEqual([status, undefined]);
      expect(answer.error).toMatch(message);
    }
    const get = await fetch(new URL('/dev/token', dev.url));
    expect([get.status, get.headers.get('allow')]).toEqual([405, 'POST']);
  });

  it('does not exist in production: the same 404 as any unknown path', async () => {
    const res = await ask(prod, { email: 'alice@example.com' });
    expect(res.status).toBe(404);
    expect(((await res.json()) as any).errors[0].extensions.code).toBe('NOT_FOUND');
  });
});
