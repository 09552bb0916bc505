import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphQLError } from 'graphql';
import { createLogger } from '../src/observability/logger.js';
import { CodedError, ErrorCode, NotFoundError, OverloadedError } from '../src/errors.js';
import { createFormatError } from '../src/graphql/format-error.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

// GraphQL over HTTP as clients and operators see it: methods, content types, CSRF prevention, CORS,
// request ids, the health endpoints, and what development and production show to a browser.

/** GET /graphql with `params` as the search string; returns status, headers and the raw body. */
async function get(server: TestServer, params: Record<string, string>, headers: Record<string, string> = {}) {
  const url = new URL(server.url);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** A raw TCP connection to a test server: what it was sent, and whether the server has closed it. */
function socketTo(server: TestServer): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('error', () => {}); // a reset by the server is an outcome here
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('connect', () => resolve({ socket, received: () => text, closed }));
    socket.once('error', reject);
  });
}

/** Sends `text` on a new connection and resolves with everything the server sent before closing it. */
async function exchange(server: TestServer, text: string): Promise<string> {
  const { socket, received, closed } = await socketTo(server);
  socket.write(text);
  await closed;
  return received();
}

/** Writes `piece` every 100 ms until the server closes the connection. */
function trickle(socket: Socket, piece: string, closed: Promise<void>): Promise<void> {
  const timer = setInterval(() => socket.write(piece), 100);
  return closed.finally(() => clearInterval(timer));
}

const json = (text: string) => JSON.parse(text) as { data?: any; errors?: { message: string; extensions: Record<string, unknown> }[] };

describe('GraphQL over HTTP', () => {
  let database: TestDatabase;
  let server: TestServer; // NODE_ENV=test
  let dev: TestServer;
  let prod: TestServer;
  let prodIntrospection: TestServer;
  let symbol: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    symbol = (await s.instrument(['10', '11.5'])).symbol;
    server = await startTestServer(database);
    dev = await startTestServer(database, { NODE_ENV: 'development' });
    prod = await startTestServer(database, { NODE_ENV: 'production' });
    prodIntrospection = await startTestServer(database, { NODE_ENV: 'production', ALLOW_INTROSPECTION: 'true' });
  });
  afterAll(async () => {
    for (const s of [server, dev, prod, prodIntrospection]) await s?.stop();
    await database?.destroy();
  });

  describe('POST', () => {
    it('answers application/json requests with data', async () => {
      const res = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: 'query One($s: String!) { instrument(symbol: $s) { symbol latestPrice { close } } }', variables: { s: symbol } }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(((await res.json()) as any).data).toEqual({ instrument: { symbol, latestPrice: { close: '11.5' } } });
    });

    it('answers accept: application/graphql-response+json with that content type', async () => {
      const res = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/graphql-response\+json/);
      expect(((await res.json()) as any).data).toEqual({ __typename: 'Query' });
    });

    it('also accepts a body sent as application/graphql-response+json', async () => {
      const res = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/graphql-response+json', accept: 'application/json' },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as any).data).toEqual({ __typename: 'Query' });
    });

    it('refuses an accept header that allows neither JSON type with 406', async () => {
      const res = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/xml' },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      expect(res.status).toBe(406);
    });

    it('refuses a text/plain POST (a "simple" CORS request) as a possible CSRF', async () => {
      const res = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ query: '{ __typename }' }) });
      expect(res.status).toBe(400);
      const body = json(await res.text());
      expect(body.data).toBeUndefined();
      expect(body.errors?.[0].extensions.code).toBe('BAD_USER_INPUT');
    });
  });

  describe('GET', () => {
    it('runs a query with the apollo-require-preflight header', async () => {
      const res = await get(server, { query: `{ instrument(symbol: "${symbol}") { symbol } }` }, { 'apollo-require-preflight': 'true' });
      expect(res.status).toBe(200);
      expect(json(res.text).data).toEqual({ instrument: { symbol } });
    });

    it('runs a query with content-type application/json', async () => {
      const res = await get(server, { query: `{ instrument(symbol: "${symbol}") { symbol } }` }, { 'content-type': 'application/json' });
      expect(res.status).toBe(200);
      expect(json(res.text).data).toEqual({ instrument: { symbol } });
    });

    it('passes variables and operationName from the search string', async () => {
      const res = await get(
        server,
        {
          query: 'query A($s: String!) { instrument(symbol: $s) { symbol } } query B { __typename }',
          operationName: 'A',
          variables: JSON.stringify({ s: symbol }),
        },
        { 'apollo-require-preflight': 'true' },
      );
      expect(res.status).toBe(200);
      expect(json(res.text).data).toEqual({ instrument: { symbol } });
    });

    it('refuses a GET without a preflight header (CSRF prevention) and runs nothing', async () => {
      const res = await get(server, { query: '{ __typename }' });
      expect(res.status).toBe(400);
      const body = json(res.text);
      expect(body.data).toBeUndefined();
      expect(body.errors).toHaveLength(1);
      expect(body.errors?.[0].extensions.code).toBe('BAD_USER_INPUT');
      expect(body.errors?.[0].extensions.reason).toBe('BAD_REQUEST');
      expect(body.errors?.[0].message).toMatch(/Cross-Site Request Forgery/i);
    });

    it('refuses a GET whose content-type is not JSON with 415', async () => {
      const res = await get(server, { query: '{ __typename }' }, { 'content-type': 'text/plain', 'apollo-require-preflight': 'true' });
      expect(res.status).toBe(415);
      expect(json(res.text).errors?.[0].extensions.code).toBe('BAD_USER_INPUT');
    });

    it('answers accept: application/graphql-response+json with that content type', async () => {
      const res = await get(server, { query: '{ __typename }' }, { 'apollo-require-preflight': 'true', accept: 'application/graphql-response+json' });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/graphql-response\+json/);
      expect(json(res.text).data).toEqual({ __typename: 'Query' });
    });

    it('refuses a mutation over GET and changes nothing', async () => {
      const user = await seed(database.db).user();
      const token = await server.token(user.id);
      const mutation = 'mutation { createPortfolio(input: { name: "over GET" }) { portfolio { id } } }';
      const res = await get(server, { query: mutation }, { 'apollo-require-preflight': 'true', authorization: `Bearer ${token}` });
      expect([400, 405]).toContain(res.status);
      const body = json(res.text);
      expect(body.data).toBeUndefined();
      expect(body.errors?.[0].extensions.code).toBe('BAD_USER_INPUT');
      expect(body.errors?.[0].message).toMatch(/mutation/);
      if (res.status === 405) expect(res.headers.get('allow')).toMatch(/POST/);

      const check = await server.post({ query: '{ portfolios { totalCount } }' }, { authorization: `Bearer ${token}` });
      expect(check.body.data).toEqual({ portfolios: { totalCount: 0 } });
    });
  });

  describe('other methods and paths', () => {
    it('answers /healthz with 200', async () => {
      const res = await fetch(new URL('/healthz', server.url));
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'ok' });
    });

    it('answers /readyz with 200 when the database answers and start-up is done', async () => {
      const res = await fetch(new URL('/readyz', server.url));
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: 'ready' });
    });

    it('answers an unknown path with 404 and a JSON error', async () => {
      const res = await fetch(new URL('/no/such/thing', server.url));
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const body = json(await res.text());
      expect(body.errors?.[0].extensions.code).toBe('NOT_FOUND');
    });

    it('answers /graphql/ and /GRAPHQL (not the endpoint) with 404', async () => {
      for (const path of ['/graphql/', '/GRAPHQL', '/graphqlx']) {
        const res = await fetch(new URL(path, server.url), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"query":"{__typename}"}',
        });
        expect(res.status, path).toBe(404);
      }
    });

    it('answers request targets that node accepts and URL does not with 400, and keeps serving', async () => {
      for (const target of ['//:99999', '//[', '//a:b:c', 'http://[/graphql']) {
        const answer = await exchange(server, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
        expect(answer, target).toMatch(/^HTTP\/1\.1 400 /);
        expect(json(answer.slice(answer.indexOf('\r\n\r\n') + 4)).errors?.[0].extensions, target).toMatchObject({
          code: 'BAD_USER_INPUT',
          reason: 'BAD_REQUEST',
        });
      }
      expect((await fetch(new URL('/healthz', server.url))).status).toBe(200);
    });

    it('says only a generic reason on /readyz when the database fails, and logs the detail', async () => {
      const lost = await createTestDatabase();
      const lines: string[] = [];
      const logger = createLogger('warn', 'test', new Writable({ write: (chunk, _, done) => (lines.push(String(chunk)), done()) }));
      const probed = await startTestServer(lost, {}, { logger });
      try {
        expect((await fetch(new URL('/readyz', probed.url))).status).toBe(200);
        await lost.destroy(); // the database goes away under the server
        const res = await fetch(new URL('/readyz', probed.url));
        expect(res.status).toBe(503);
        // (with REDIS_URL it also says whether Redis is up)
        expect({ ...((await res.json()) as object), redis: undefined }).toEqual({ status: 'not ready', reason: 'database' });
        const logged = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'not ready');
        expect(logged?.err.message).toMatch(/^not ready: database: \S/); // with the driver's own words after it
      } finally {
        await probed.stop().catch(() => {});
      }
    });

    it('refuses PUT and DELETE on /graphql with 405 and an allow header', async () => {
      for (const method of ['PUT', 'DELETE', 'PATCH']) {
        const res = await fetch(server.url, { method, headers: { 'content-type': 'application/json' }, body: '{"query":"{__typename}"}' });
        expect(res.status, method).toBe(405);
        expect(res.headers.get('allow')).toMatch(/GET/);
        expect(res.headers.get('allow')).toMatch(/POST/);
        expect(json(await res.text()).errors?.[0].extensions.code).toBe('BAD_USER_INPUT');
      }
    });
  });

  describe('CORS', () => {
    it('answers a preflight from a localhost origin in development', async () => {
      const res = await fetch(dev.url, {
        method: 'OPTIONS',
        headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, authorization' },
      });
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
      expect(res.headers.get('access-control-allow-methods')).toMatch(/POST/);
      const allowed = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase();
      for (const h of ['content-type', 'authorization', 'apollo-require-preflight', 'x-request-id']) expect(allowed).toContain(h);
      expect(res.headers.get('vary')).toMatch(/origin/i);
    });

    it('allows 127.0.0.1 origins in development too', async () => {
      const res = await fetch(dev.url, { method: 'OPTIONS', headers: { origin: 'http://127.0.0.1:5173', 'access-control-request-method': 'POST' } });
      expect(res.headers.get('access-control-allow-origin')).toBe('http://127.0.0.1:5173');
    });

    it('gives a foreign origin no access-control-allow-origin, on preflight or on a request', async () => {
      const pre = await fetch(dev.url, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
      expect(pre.headers.get('access-control-allow-origin')).toBeNull();
      expect(pre.headers.get('access-control-allow-headers')).toBeNull();

      const res = await fetch(dev.url, {
        method: 'POST',
        headers: { origin: 'https://evil.example', 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    });

    it('does not treat look-alikes of localhost as localhost', async () => {
      for (const o of ['http://localhost.evil.example', 'http://evil.example/localhost', 'http://localhost:3000.evil.example', 'null']) {
        const res = await fetch(dev.url, { method: 'OPTIONS', headers: { origin: o, 'access-control-request-method': 'POST' } });
        expect(res.headers.get('access-control-allow-origin'), o).toBeNull();
      }
    });

    it('sets access-control-allow-origin on the actual request from an allowed origin', async () => {
      const res = await fetch(dev.url, {
        method: 'POST',
        headers: { origin: 'http://localhost:3000', 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
    });

    it('allows no localhost origin in production unless CORS_ORIGINS names it', async () => {
      const res = await fetch(prod.url, { method: 'OPTIONS', headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST' } });
      expect(res.headers.get('access-control-allow-origin')).toBeNull();

      const listed = await startTestServer(database, { NODE_ENV: 'production', CORS_ORIGINS: 'https://app.example, https://admin.example' });
      try {
        for (const o of ['https://app.example', 'https://admin.example']) {
          const ok = await fetch(listed.url, { method: 'OPTIONS', headers: { origin: o, 'access-control-request-method': 'POST' } });
          expect(ok.status).toBe(204);
          expect(ok.headers.get('access-control-allow-origin')).toBe(o);
        }
        const no = await fetch(listed.url, { method: 'OPTIONS', headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST' } });
        expect(no.headers.get('access-control-allow-origin')).toBeNull();
      } finally {
        await listed.stop();
      }
    });
  });

  describe('x-request-id', () => {
    it('echoes a valid x-request-id', async () => {
      const res = await server.post({ query: '{ __typename }' }, { 'x-request-id': 'client-req.42:abc_DEF' });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-request-id')).toBe('client-req.42:abc_DEF');
    });

    it('generates one when none is given, different for every request', async () => {
      const a = await server.post({ query: '{ __typename }' });
      const b = await server.post({ query: '{ __typename }' });
      const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
      expect(a.headers.get('x-request-id')).toMatch(uuid);
      expect(b.headers.get('x-request-id')).toMatch(uuid);
      expect(a.headers.get('x-request-id')).not.toBe(b.headers.get('x-request-id'));
    });

    it('replaces an unsafe or oversized x-request-id with a generated one', async () => {
      for (const given of ['has spaces in it', 'x'.repeat(101), '<script>', 'a,b', 'line%0Abreak']) {
        const res = await server.post({ query: '{ __typename }' }, { 'x-request-id': given });
        const echoed = res.headers.get('x-request-id');
        expect(echoed, given).not.toBe(given);
        expect(echoed, given).toMatch(/^[0-9a-f-]{36}$/);
      }
    });

    it('is set on non-GraphQL answers and errors too', async () => {
      for (const path of ['/healthz', '/readyz', '/nope']) {
        const res = await fetch(new URL(path, server.url), { headers: { 'x-request-id': `rid-${path.slice(1)}` } });
        expect(res.headers.get('x-request-id')).toBe(`rid-${path.slice(1)}`);
      }
      const bad = await server.post('{not json', { 'x-request-id': 'rid-bad-json' });
      expect(bad.status).toBe(400);
      expect(bad.headers.get('x-request-id')).toBe('rid-bad-json');
    });
  });

  describe('development and production', () => {
    it('shows the Apollo Sandbox landing page to a browser GET in development', async () => {
      const res = await get(dev, {}, { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.text.toLowerCase()).toContain('sandbox');
    });

    it('shows no landing page in production', async () => {
      const res = await get(prod, {}, { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' });
      expect(res.headers.get('content-type') ?? '').not.toMatch(/text\/html/);
      expect(res.text.toLowerCase()).not.toContain('sandbox');
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(json(res.text).errors?.[0].extensions.code).toBe('BAD_USER_INPUT');
    });

    it('answers introspection in development', async () => {
      const res = await dev.post({ query: '{ __schema { queryType { name } } }' });
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({ __schema: { queryType: { name: 'Query' } } });
    });

    it('refuses introspection in production', async () => {
      for (const query of ['{ __schema { queryType { name } } }', '{ __type(name: "Portfolio") { fields { name } } }']) {
        const res = await prod.post({ query });
        expect(res.status, query).toBe(400);
        expect(res.body.data, query).toBeUndefined();
        expect(res.body.errors[0].extensions.code, query).toBe('BAD_USER_INPUT');
        expect(res.body.errors[0].extensions.reason, query).toBe('GRAPHQL_VALIDATION_FAILED');
        expect(res.body.errors[0].message, query).toMatch(/introspection/i);
      }
      // __typename is not introspection of the schema
      const ok = await prod.post({ query: '{ __typename }' });
      expect(ok.body.data).toEqual({ __typename: 'Query' });
    });

    it('answers introspection in production when ALLOW_INTROSPECTION=true', async () => {
      const res = await prodIntrospection.post({ query: '{ __schema { queryType { name } } }' });
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({ __schema: { queryType: { name: 'Query' } } });
    });

    it('sends no stack traces in production', async () => {
      const res = await prod.post({ query: '{ instruments(first: -1) { totalCount } }' });
      expect(res.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
      expect(res.body.errors[0].extensions.stacktrace).toBeUndefined();
      const syntax = await prod.post({ query: '{ instruments(' });
      expect(syntax.body.errors[0].extensions.stacktrace).toBeUndefined();
    });

    it('says nothing internal (no SQL, no stack) when a resolver fails in production', async () => {
      // A valid token for a user id that has no row made the insert fail on its foreign key (the
      // contract wants UNAUTHENTICATED there; test/auth.test.ts asserts it). Whatever it answers, nothing leaks.
      const ghost = await prod.token(2_000_000_000);
      const res = await prod.post(
        { query: 'mutation { createPortfolio(input: { name: "ghost" }) { portfolio { id } } }' },
        { authorization: `Bearer ${ghost}` },
      );
      expect(res.body.data ?? null).toBeNull();
      const [error] = res.body.errors;
      expect(['UNAUTHENTICATED', 'INTERNAL_SERVER_ERROR']).toContain(error.extensions.code);
      if (error.extensions.code === 'INTERNAL_SERVER_ERROR') expect(error.message).toBe('Internal server error');
      const text = JSON.stringify(res.body);
      expect(text).not.toMatch(/insert|select|foreign key|constraint|owner_id|params:|\bat\s+\S+\.[jt]s/i);
      expect(error.extensions.stacktrace).toBeUndefined();
    });

    it('serves queries in production like anywhere else', async () => {
      const res = await prod.post({ query: `{ instrument(symbol: "${symbol}") { symbol latestPrice { date close } } }` });
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({ instrument: { symbol, latestPrice: { date: '2024-01-31', close: '11.5' } } });
    });
  });
});

describe('HTTP timeouts and the connection cap', () => {
  let database: TestDatabase;
  let tight: TestServer;
  let capped: TestServer;

  beforeAll(async () => {
    database = await createTestDatabase();
    tight = await startTestServer(database, { HTTP_HEADERS_TIMEOUT_MS: '300', HTTP_REQUEST_TIMEOUT_MS: '600', HTTP_KEEP_ALIVE_TIMEOUT_MS: '300' });
    capped = await startTestServer(database, { HTTP_MAX_CONNECTIONS: '3', HTTP_KEEP_ALIVE_TIMEOUT_MS: '60000' });
  });
  afterAll(async () => {
    for (const s of [tight, capped]) await s?.stop();
    await database?.destroy();
  });

  it('answers 408 and closes a connection whose headers trickle in past HTTP_HEADERS_TIMEOUT_MS', async () => {
    const { socket, received, closed } = await socketTo(tight);
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    await trickle(socket, 'x-slow: 1\r\n', closed);
    expect(received()).toMatch(/^HTTP\/1\.1 408 /);
  }, 20_000);

  it('closes a connection that sends nothing at all', async () => {
    const { closed } = await socketTo(tight);
    await closed;
  }, 20_000);

  it('answers 408 and closes a connection whose body trickles in past HTTP_REQUEST_TIMEOUT_MS', async () => {
    const { socket, received, closed } = await socketTo(tight);
    socket.write('POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{"query":"');
    await trickle(socket, ' ', closed);
    expect(received()).toMatch(/^HTTP\/1\.1 408 /);
  }, 20_000);

  it('closes an idle keep-alive connection after HTTP_KEEP_ALIVE_TIMEOUT_MS', async () => {
    const { socket, received, closed } = await socketTo(tight);
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await closed;
    expect(received()).toMatch(/^HTTP\/1\.1 200 /);
  }, 20_000);

  it('closes connections past HTTP_MAX_CONNECTIONS at once, and serves the open ones', async () => {
    const held = [];
    for (let i = 0; i < 3; i++) {
      const connection = await socketTo(capped);
      connection.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      for (let n = 0; n < 100 && !connection.received().includes('{"status":"ok"}'); n++) await new Promise((r) => setTimeout(r, 20));
      held.push(connection);
    }
    const refused = await socketTo(capped);
    refused.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await refused.closed;
    expect(refused.received()).toBe('');

    // the connections already open are still served
    const [first] = held;
    const before = first.received().length;
    first.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    for (let n = 0; n < 100 && !first.received().slice(before).includes('{"status":"ok"}'); n++) await new Promise((r) => setTimeout(r, 20));
    expect(first.received().slice(before)).toMatch(/^HTTP\/1\.1 200 /);

    // and once they close, new ones are taken again
    for (const c of held) {
      c.socket.destroy();
      await c.closed;
    }
    const healthz = () =>
      fetch(new URL('/healthz', capped.url)).then(
        (r) => r.status,
        () => 0,
      );
    expect(await until(healthz, (status) => status === 200)).toBe(200);
  }, 20_000);
});

describe('formatError', () => {
  const masked = createFormatError({ mask: true });
  const open = createFormatError({ mask: false });
  const formatted = (e: GraphQLError) => e.toJSON();

  it('masks the message of an unexpected error in production, whatever it says', () => {
    const original = new Error('relation "portfolios" does not exist: select * from portfolios where owner_id = $1');
    const wrapped = new GraphQLError(original.message, { originalError: original, path: ['portfolios'] });
    const out = masked({ ...formatted(wrapped), extensions: { code: 'INTERNAL_SERVER_ERROR', stacktrace: ['Error: relation', '    at x.js:1'] } }, wrapped);
    expect(out.message).toBe('Internal server error');
    expect(out.message).not.toMatch(/select|portfolios|relation/);
    expect(out.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
    expect(out.extensions?.stacktrace).toBeUndefined();
    expect(out.path).toEqual(['portfolios']);
  });

  it("answers a coded error a wrapper carries (Drizzle's DrizzleQueryError around the gate's OVERLOADED) with its code and message, never the SQL", () => {
    const drizzle = Object.assign(new Error('Failed query: select * from portfolios where owner_id = $1\nparams: [redacted]'), {
      cause: new OverloadedError('dropped', 'user'),
    });
    const wrapped = new GraphQLError(drizzle.message, { originalError: drizzle, path: ['viewer'] });
    for (const format of [masked, open]) {
      const out = format({ ...formatted(wrapped), extensions: { code: 'INTERNAL_SERVER_ERROR' } }, wrapped);
      expect(out.message).not.toMatch(/select|portfolios|Failed query/);
      expect(out.message).toMatch(/overloaded/);
      expect(out.extensions).toMatchObject({ code: 'OVERLOADED', reason: 'dropped', priority: 'user' });
      expect(out.extensions?.http).toBeUndefined();
    }
  });

  it('treats an error with no code, or a code outside the contract, as internal', () => {
    const plain = new GraphQLError('Decimal cannot represent object');
    const out = masked(formatted(plain), plain);
    expect(out).toMatchObject({ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } });

    const foreign = new GraphQLError('ECONNREFUSED 10.0.0.5:5432', { extensions: { code: 'ECONNREFUSED' } });
    const out2 = masked(formatted(foreign), foreign);
    expect(out2).toMatchObject({ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } });

    const thrown = new TypeError('Cannot read properties of undefined (reading "id")');
    const out3 = masked({ message: thrown.message }, thrown);
    expect(out3).toMatchObject({ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  });

  it('keeps the message of an unexpected error outside production', () => {
    const plain = new GraphQLError('something odd');
    const out = open(formatted(plain), plain);
    expect(out).toMatchObject({ message: 'something odd', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  });

  it('keeps coded errors as they are, masked or not', () => {
    for (const format of [masked, open]) {
      const notFound = new NotFoundError('portfolio');
      expect(format(formatted(notFound), notFound)).toMatchObject({ message: 'portfolio not found', extensions: { code: 'NOT_FOUND' } });

      const costly = new CodedError(ErrorCode.QUERY_TOO_COSTLY, 'too costly', { cost: 900, limit: 500 });
      expect(format(formatted(costly), costly)).toMatchObject({ message: 'too costly', extensions: { code: 'QUERY_TOO_COSTLY', cost: 900, limit: 500 } });
    }
  });

  it('finds a contract code on an error wrapped by graphql-js (a scalar or a rule throwing)', () => {
    const inner = new GraphQLError('first may be at most 100, got 101', { extensions: { code: 'BAD_USER_INPUT', argument: 'first' } });
    const outer = new GraphQLError(inner.message, { originalError: inner });
    const out = masked({ message: outer.message, extensions: { code: 'INTERNAL_SERVER_ERROR' } }, outer);
    expect(out).toMatchObject({ message: 'first may be at most 100, got 101', extensions: { code: 'BAD_USER_INPUT' } });
  });

  it('maps Apollo codes for client mistakes to BAD_USER_INPUT, keeping the original in extensions.reason', () => {
    for (const reason of ['GRAPHQL_VALIDATION_FAILED', 'GRAPHQL_PARSE_FAILED', 'BAD_REQUEST', 'OPERATION_RESOLUTION_FAILURE']) {
      const e = new GraphQLError('Cannot query field "nope" on type "Query".', { extensions: { code: reason } });
      for (const format of [masked, open]) {
        const out = format(formatted(e), e);
        expect(out.message).toBe('Cannot query field "nope" on type "Query".');
        expect(out.extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason });
      }
    }
  });

  it('keeps stack traces only when not masking', () => {
    const e = new GraphQLError('boom');
    const given = { message: 'boom', extensions: { code: 'INTERNAL_SERVER_ERROR', stacktrace: ['GraphQLError: boom'] } };
    expect(open(given, e).extensions?.stacktrace).toEqual(['GraphQLError: boom']);
    expect(masked(given, e).extensions?.stacktrace).toBeUndefined();
  });
});
