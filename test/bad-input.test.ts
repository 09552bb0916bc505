import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/errors.js';
import { encodeCursor } from '../src/domain/pagination.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { seededRandom } from '../src/tools/random.js';

// Whatever a client sends, the answer is a GraphQL-shaped JSON error with a code from the contract,
// at a 4xx status, and nothing changes; the server keeps serving afterwards.

const CONTRACT_CODES = new Set<string>(Object.values(ErrorCode));
const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

type Answer = { status: number; headers: Headers; body: any };

/** The answer carries errors only, every one with a contract code, and (when given) this code. */
function expectError(res: Answer, code?: string) {
  expect(res.body, JSON.stringify(res.body)).toHaveProperty('errors');
  expect(Array.isArray(res.body.errors)).toBe(true);
  expect(res.body.errors.length).toBeGreaterThan(0);
  for (const e of res.body.errors) {
    expect(typeof e.message).toBe('string');
    expect(CONTRACT_CODES.has(e.extensions?.code), JSON.stringify(e)).toBe(true);
    if (code) expect(e.extensions.code, e.message).toBe(code);
  }
  return res.body.errors[0] as { message: string; extensions: Record<string, any>; path?: unknown[] };
}

describe('bad input', () => {
  let database: TestDatabase;
  let server: TestServer;
  let userId: number;
  let auth: Record<string, string>;
  let portfolioId: string;
  let symbol: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    const user = await s.user();
    userId = user.id;
    symbol = (await s.instrument(['100', '101', '102'])).symbol;
    await s.instrument(['5']);
    for (let i = 0; i < 3; i++) await s.portfolio(user);
    const p = await s.portfolio(user, 'Trading');
    portfolioId = String(p.id);
    await s.trade(user.viewer, { portfolioId: p.id, symbol, side: 'BUY', quantity: '10', price: '100' });
    server = await startTestServer(database);
    auth = { authorization: `Bearer ${await server.token(userId)}` };
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  /** Everything a test may have changed by mistake: the user's portfolios and this portfolio's holdings. */
  async function snapshot() {
    const res = await server.post(
      {
        query: `query($id: ID!) {
          portfolios(first: 100) { totalCount nodes { id name baseCurrency } }
          portfolio(id: $id) { trades(first: 100) { totalCount nodes { id side quantity price } } positions { nodes { quantity averageCost realizedPnl } } }
        }`,
        variables: { id: portfolioId },
      },
      auth,
    );
    expect(res.status).toBe(200);
    return res.body.data;
  }

  describe('requests that never reach GraphQL', () => {
    it('refuses a body that is not JSON with 400 BAD_USER_INPUT', async () => {
      for (const body of ['{not json', '{"query": "{ __typename }"', '', 'null x', "{'query': '{ __typename }'}"]) {
        const res = await server.post(body);
        expect(res.status, body).toBe(400);
        expect(res.headers.get('content-type')).toMatch(/json/);
        expectError(res, 'BAD_USER_INPUT');
      }
    });

    it('refuses a body over MAX_BODY_BYTES with 413 (declared length)', async () => {
      const query = `{ __typename }${' '.repeat(1_100_000)}`;
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const payload = JSON.stringify({ query });
        const req = httpRequest(
          server.url,
          { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
          (r) => {
            let text = '';
            r.setEncoding('utf8');
            r.on('data', (c) => (text += c));
            r.on('end', () => resolve({ status: r.statusCode ?? 0, body: text }));
          },
        );
        req.on('error', reject);
        req.end(payload);
      });
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body).errors[0].extensions.code).toBe('BAD_USER_INPUT');
    });

    it('refuses a body over MAX_BODY_BYTES with 413 through fetch', async () => {
      const res = await server.post({ query: `{ __typename }${' '.repeat(1_100_000)}` });
      expect(res.status).toBe(413);
      expectError(res, 'BAD_USER_INPUT');
    });

    it('refuses a chunked body that grows over MAX_BODY_BYTES with 413', async () => {
      const chunk = new TextEncoder().encode(' '.repeat(64 * 1024));
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent === 0) controller.enqueue(new TextEncoder().encode('{"query": "{ __typename }", "x": "'));
          if (sent > 1_200_000) {
            controller.enqueue(new TextEncoder().encode('"}'));
            controller.close();
            return;
          }
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const res = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream, duplex: 'half' } as RequestInit);
      expect(res.status).toBe(413);
      expect(((await res.json()) as any).errors[0].extensions.code).toBe('BAD_USER_INPUT');
    });

    it('accepts a body just under MAX_BODY_BYTES', async () => {
      const res = await server.post({ query: `{ __typename }${' '.repeat(server.config.http.maxBodyBytes - 100)}` });
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({ __typename: 'Query' });
    });

    it('refuses a JSON array (a batched request) with 400', async () => {
      const res = await server.post([{ query: '{ __typename }' }, { query: '{ __typename }' }]);
      expect(res.status).toBe(400);
      expect(res.body.data).toBeUndefined();
      expectError(res, 'BAD_USER_INPUT');
    });

    it('refuses JSON that is not an object with 400', async () => {
      for (const body of ['"{ __typename }"', '42', 'null', 'true', '{}']) {
        const res = await server.post(body);
        expect(res.status, body).toBe(400);
        expectError(res, 'BAD_USER_INPUT');
      }
    });

    it('refuses a request without a query with 400', async () => {
      for (const body of [{ variables: {} }, { query: '' }, { query: null, operationName: 'X' }, { operationName: 'X', variables: { a: 1 } }]) {
        const res = await server.post(body);
        expect(res.status, JSON.stringify(body)).toBe(400);
        expectError(res, 'BAD_USER_INPUT');
      }
      const get = await fetch(server.url, { headers: { 'apollo-require-preflight': 'true' } });
      expect(get.status).toBe(400);
      expect(((await get.json()) as any).errors[0].extensions.code).toBe('BAD_USER_INPUT');
    });

    it('refuses ill-typed request fields with 400', async () => {
      for (const body of [
        { query: 42 },
        { query: ['{ __typename }'] },
        { query: { kind: 'Document', definitions: [] } },
        { query: '{ __typename }', variables: '{"a":1}' },
        { query: '{ __typename }', variables: [1, 2] },
        { query: '{ __typename }', operationName: 7 },
        { query: '{ __typename }', extensions: 'x' },
        { query: '{ __typename }', extensions: [1] },
      ]) {
        const res = await server.post(body);
        expect(res.status, JSON.stringify(body)).toBe(400);
        expectError(res, 'BAD_USER_INPUT');
      }
    });

    it('refuses variables that are not a JSON object on GET with 400', async () => {
      for (const variables of ['{not json', '[1]', '"x"']) {
        const url = new URL(server.url);
        url.searchParams.set('query', '{ __typename }');
        url.searchParams.set('variables', variables);
        const res = await fetch(url, { headers: { 'apollo-require-preflight': 'true' } });
        expect(res.status, variables).toBe(400);
        expect(((await res.json()) as any).errors[0].extensions.code).toBe('BAD_USER_INPUT');
      }
    });
  });

  describe('documents', () => {
    it('refuses an unknown field with 400 BAD_USER_INPUT (reason GRAPHQL_VALIDATION_FAILED)', async () => {
      const res = await server.post({ query: '{ instruments { nodes { symbol password } } }' });
      expect(res.status).toBe(400);
      expect(res.body.data).toBeUndefined();
      const error = expectError(res, 'BAD_USER_INPUT');
      expect(error.extensions.reason).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(error.message).toMatch(/password/);
    });

    it('refuses a syntax error with 400 BAD_USER_INPUT (reason GRAPHQL_PARSE_FAILED)', async () => {
      for (const query of ['{ instruments { nodes { symbol }', 'query {', '}', '{ instruments(first: ) { totalCount } }', '"unterminated']) {
        const res = await server.post({ query });
        expect(res.status, query).toBe(400);
        const error = expectError(res, 'BAD_USER_INPUT');
        expect(error.extensions.reason, query).toBe('GRAPHQL_PARSE_FAILED');
      }
    });

    it('refuses several operations without an operationName, or a name that is not there', async () => {
      const query = 'query A { __typename } query B { __typename }';
      for (const body of [{ query }, { query, operationName: 'C' }]) {
        const res = await server.post(body);
        expect(res.status).toBe(400);
        expectError(res, 'BAD_USER_INPUT');
      }
    });

    it('refuses fragment cycles, unknown arguments and missing required arguments', async () => {
      for (const query of [
        'query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }',
        '{ instruments(sort: ASC) { totalCount } }',
        '{ portfolio { id } }',
        '{ instrument(symbol: 5) { id } }',
        'query($x: Int) { __typename }',
        '{ instruments { totalCount } } extra',
      ]) {
        const res = await server.post({ query });
        expect(res.status, query).toBe(400);
        expectError(res, 'BAD_USER_INPUT');
      }
    });

    it('refuses a subscription (the schema has none) as BAD_USER_INPUT, not as an internal error', async () => {
      for (const query of ['subscription { __typename }', 'subscription S { prices }']) {
        const res = await server.post({ query });
        expect(res.status, query).toBeLessThan(500);
        expect(res.body.data ?? null).toBeNull();
        expectError(res, 'BAD_USER_INPUT');
      }
    });

    it('answers Apollo persisted-query mistakes with contract codes', async () => {
      const unknown = await server.post({ extensions: { persistedQuery: { version: 1, sha256Hash: 'a'.repeat(64) } } });
      expect(unknown.status).toBe(200);
      expectError(unknown, 'PERSISTED_QUERY_NOT_FOUND');

      // a hash that is not the query's SHA-256 is refused before Apollo sees it
      for (const persistedQuery of [
        { version: 2, sha256Hash: 'a'.repeat(64) },
        { version: 'x', sha256Hash: 'abc' },
        { version: 1, sha256Hash: 'abc' },
      ]) {
        const res = await server.post({ query: '{ __typename }', extensions: { persistedQuery } });
        expect(res.status, JSON.stringify(persistedQuery)).toBe(400);
        expectError(res, 'PERSISTED_QUERY_HASH_MISMATCH');
      }
      // the right hash in a protocol version Apollo does not know
      const sha = createHash('sha256').update('{ __typename }').digest('hex');
      const version = await server.post({ query: '{ __typename }', extensions: { persistedQuery: { version: 2, sha256Hash: sha } } });
      expect(version.status).toBe(400);
      expectError(version, 'BAD_USER_INPUT');
    });
  });

  describe('arguments and variables', () => {
    /** JSON text of `n` arrays, one inside the other, around a 1 (JSON.stringify would overflow on it). */
    const nested = (n: number) => `${'['.repeat(n)}1${']'.repeat(n)}`;
    /** A request body whose variables are `variables`, given as JSON text. */
    const withVariables = (query: string, variables: string, key = 'variables') => `{"query":${JSON.stringify(query)},"${key}":${variables}}`;

    it('refuses variables nested deeper than 32 levels, declared or not, with BAD_USER_INPUT on "variables", running nothing', async () => {
      const declared = withVariables('query($s: String) { instruments(search: $s) { totalCount } }', `{"s":${nested(20_000)}}`);
      const undeclared = withVariables('{ instruments { totalCount } }', `{"junk":${nested(20_000)}}`);
      for (const body of [declared, undeclared]) {
        const { result: res, statements } = await server.countSql(() => server.post(body));
        expect(res.status, JSON.stringify(res.body)).toBe(400);
        const error = expectError(res, 'BAD_USER_INPUT');
        expect(error.extensions.argument).toBe('variables');
        expect(error.message).toMatch(/32/);
        expect(statements).toBe(0);
      }
      // the same over GET, and in extensions
      const url = new URL(server.url);
      url.searchParams.set('query', '{ instruments { totalCount } }');
      url.searchParams.set('variables', `{"junk":${nested(1000)}}`);
      const get = await fetch(url, { headers: { 'apollo-require-preflight': 'true' } });
      expect(get.status).toBe(400);
      expect(((await get.json()) as any).errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'variables' });
      const extensions = await server.post(withVariables('{ __typename }', `{"x":${nested(20_000)}}`, 'extensions'));
      expect(extensions.status).toBe(400);
      expect(expectError(extensions, 'BAD_USER_INPUT').extensions.argument).toBe('extensions');

      // 32 levels (the variables object and 31 arrays in it) are fine
      const deepest = await server.post(withVariables('{ __typename }', `{"junk":${nested(31)}}`));
      expect(deepest.body.data).toEqual({ __typename: 'Query' });
      const over = await server.post(withVariables('{ __typename }', `{"junk":${nested(32)}}`));
      expect(expectError(over, 'BAD_USER_INPUT').extensions.argument).toBe('variables');
    });

    it('refuses variables of more than 10,000 values with BAD_USER_INPUT on "variables"', async () => {
      const res = await server.post({ query: '{ __typename }', variables: { junk: Array(10_000).fill(0) } });
      expect(res.status).toBe(400);
      expect(expectError(res, 'BAD_USER_INPUT').extensions.argument).toBe('variables');
      const fine = await server.post({ query: '{ __typename }', variables: { junk: Array(9_000).fill(0) } });
      expect(fine.body.data).toEqual({ __typename: 'Query' });
    });

    it('leaves undeclared variables out of cache keys: requests differing only in them share one cached answer', async () => {
      const query = '{ instruments(first: 2) { totalCount nodes { symbol } } }';
      const first = await server.post({ query, variables: { nonce: Math.random() } });
      expect(first.body.errors).toBeUndefined();
      const { result: second, statements } = await server.countSql(() => server.post({ query, variables: { nonce: Math.random(), other: 'x' } }));
      expect(second.body.data).toEqual(first.body.data);
      expect(statements).toBe(0);
      // a declared variable still makes its own key
      const declared = 'query($s: String) { instruments(first: 2, search: $s) { totalCount } }';
      await server.post({ query: declared, variables: { s: symbol } });
      const other = await server.countSql(() => server.post({ query: declared, variables: { s: `${symbol}-none` } }));
      expect(other.result.body.data).toEqual({ instruments: { totalCount: 0 } });
      expect(other.statements).toBeGreaterThan(0);
    });

    it('refuses a variable of the wrong type (first: "ten") with BAD_USER_INPUT', async () => {
      const res = await server.post({ query: 'query($first: Int) { instruments(first: $first) { totalCount } }', variables: { first: 'ten' } });
      expect(res.status).toBe(400);
      const error = expectError(res, 'BAD_USER_INPUT');
      expect(error.message).toMatch(/first/);
      for (const first of [1.5, true, [1], { n: 1 }, '10']) {
        const r = await server.post({ query: 'query($first: Int) { instruments(first: $first) { totalCount } }', variables: { first } });
        expect(r.status, JSON.stringify(first)).toBe(400);
        expectError(r, 'BAD_USER_INPUT');
      }
    });

    it('refuses a missing required variable and a null for a non-null one', async () => {
      for (const variables of [{}, { id: null }]) {
        const res = await server.post({ query: 'query($id: ID!) { portfolio(id: $id) { id } }', variables });
        expect(res.status).toBe(400);
        expectError(res, 'BAD_USER_INPUT');
      }
    });

    it('refuses numbers beyond Int (first: 99999999999) with BAD_USER_INPUT', async () => {
      const literal = await server.post({ query: '{ instruments(first: 99999999999) { totalCount } }' });
      expect(literal.status).toBe(400);
      expectError(literal, 'BAD_USER_INPUT');

      const variable = await server.post({ query: 'query($first: Int) { instruments(first: $first) { totalCount } }', variables: { first: 99999999999 } });
      expect(variable.status).toBe(400);
      expectError(variable, 'BAD_USER_INPUT');

      const hugeLiteral = await server.post({ query: `{ instruments(first: ${'9'.repeat(400)}) { totalCount } }` });
      expect(hugeLiteral.status).toBe(400);
      expectError(hugeLiteral, 'BAD_USER_INPUT');

      // the largest Int is a number, but over the cap
      const maxInt = await server.post({ query: '{ instruments(first: 2147483647) { totalCount } }' });
      const error = expectError(maxInt, 'BAD_USER_INPUT');
      expect(error.message).toMatch(/100/);
    });

    it('refuses a negative first with BAD_USER_INPUT', async () => {
      for (const query of [
        '{ instruments(first: -1) { totalCount } }',
        '{ portfolios(first: -5) { totalCount } }',
        '{ viewer { portfolios(first: -1) { totalCount } } }',
        `{ instrument(symbol: "${symbol}") { prices(first: -1) { close } } }`,
        `{ instrument(symbol: "${symbol}") { forecasts(first: -1) { asOf } } }`,
        `{ portfolio(id: "${portfolioId}") { positions(first: -1) { totalCount } } }`,
        `{ portfolio(id: "${portfolioId}") { trades(first: -2147483648) { totalCount } } }`,
      ]) {
        const res = await server.post({ query }, auth);
        expect(res.status, query).toBeLessThan(500);
        const error = expectError(res, 'BAD_USER_INPUT');
        expect(error.message, query).toMatch(/first/);
      }
    });

    it('refuses first above the cap with a message that names the cap', async () => {
      const cases: [string, number][] = [
        ['{ portfolios(first: 101) { totalCount } }', 100],
        ['{ viewer { portfolios(first: 101) { totalCount } } }', 100],
        [`{ portfolio(id: "${portfolioId}") { positions(first: 201) { totalCount } } }`, 200],
        [`{ portfolio(id: "${portfolioId}") { trades(first: 101) { totalCount } } }`, 100],
        [`{ instrument(symbol: "${symbol}") { prices(first: 1001) { close } } }`, 1000],
        [`{ instrument(symbol: "${symbol}") { forecasts(first: 101) { asOf } } }`, 100],
        ['{ instruments(first: 101) { totalCount } }', 100],
      ];
      for (const [query, cap] of cases) {
        const res = await server.post({ query }, auth);
        expect(res.status, query).toBeLessThan(500);
        const error = expectError(res, 'BAD_USER_INPUT');
        expect(error.message, query).toContain(String(cap));
        expect(error.message, query).toMatch(/first/);
      }
    });

    it('accepts first exactly at the cap, and 0', async () => {
      const res = await server.post(
        {
          query: `query($id: ID!, $s: String!) {
            portfolios(first: 100) { totalCount }
            none: portfolios(first: 0) { nodes { id } pageInfo { hasNextPage endCursor } }
            portfolio(id: $id) { positions(first: 200) { totalCount } trades(first: 100) { totalCount } }
            instrument(symbol: $s) { prices(first: 1000) { close } forecasts(first: 100) { asOf } }
            instruments(first: 100) { totalCount }
          }`,
          variables: { id: portfolioId, s: symbol },
        },
        auth,
      );
      expect(res.status).toBe(200);
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.portfolios.totalCount).toBe(4);
      expect(res.body.data.none.nodes).toEqual([]);
      expect(res.body.data.none.pageInfo.endCursor).toBeNull();
      expect(res.body.data.instrument.prices).toHaveLength(3);
    });

    it('says another page follows a page of first: 0 when the list has items', async () => {
      // PageInfo.hasNextPage is "true when more items follow this page" (and Relay's algorithm agrees).
      const res = await server.post(
        {
          query: `query($id: ID!) {
            portfolios(first: 0) { nodes { id } pageInfo { hasNextPage } }
            instruments(first: 0) { nodes { id } pageInfo { hasNextPage } }
            portfolio(id: $id) {
              positions(first: 0) { nodes { id } pageInfo { hasNextPage } }
              trades(first: 0) { nodes { id } pageInfo { hasNextPage } }
            }
          }`,
          variables: { id: portfolioId },
        },
        auth,
      );
      const page = { nodes: [], pageInfo: { hasNextPage: true } };
      expect(res.body.data).toEqual({ portfolios: page, instruments: page, portfolio: { positions: page, trades: page } });
    });

    it('refuses invalid cursors with BAD_USER_INPUT', async () => {
      const instruments = await server.post({ query: '{ instruments(first: 1) { pageInfo { endCursor } } }' });
      const instrumentCursor = instruments.body.data.instruments.pageInfo.endCursor as string;
      const portfolios = await server.post({ query: '{ portfolios(first: 1) { pageInfo { endCursor } } }' }, auth);
      const portfolioCursor = portfolios.body.data.portfolios.pageInfo.endCursor as string;
      expect(instrumentCursor).toBeTruthy();
      expect(portfolioCursor).toBeTruthy();

      const garbage = [
        'garbage',
        '!!!',
        '',
        '%%%%',
        'eyJ',
        b64({ list: 'portfolios', id: 1 }),
        b64([1, 2]),
        b64('["portfolios"]'),
        b64(['portfolios', 1, 2]),
        b64(['portfolios', 'one']),
        b64(['portfolios', -1]),
        b64(['portfolios', 1.5]),
        b64(['portfolios', 2 ** 31]),
        b64(['portfolios', null]),
        b64('not json at all'),
        b64('null'),
        `${portfolioCursor}x`,
        portfolioCursor.repeat(20),
        'A'.repeat(5000),
      ];
      const lists: [string, string[]][] = [
        ['query($after: String) { portfolios(after: $after) { totalCount } }', [...garbage, instrumentCursor]],
        ['query($after: String) { viewer { portfolios(after: $after) { totalCount } } }', [...garbage, instrumentCursor]],
        [
          'query($after: String) { instruments(after: $after) { totalCount } }',
          [...garbage, portfolioCursor, b64(['instruments', 5]), b64(['instruments', 'X'.repeat(41)])],
        ],
        [
          `query($after: String) { portfolio(id: "${portfolioId}") { positions(after: $after) { totalCount } } }`,
          [...garbage.slice(0, 5), portfolioCursor, instrumentCursor, encodeCursor('positions', 'x')],
        ],
        [
          `query($after: String) { portfolio(id: "${portfolioId}") { trades(after: $after) { totalCount } } }`,
          [
            ...garbage.slice(0, 5),
            portfolioCursor,
            encodeCursor('trades', { at: 'not a date', id: 1 }),
            encodeCursor('trades', { at: '2024-01-01T00:00:00Z', id: 0 }),
            encodeCursor('trades', 5),
          ],
        ],
      ];
      for (const [query, cursors] of lists) {
        for (const after of cursors) {
          const res = await server.post({ query, variables: { after } }, auth);
          expect(res.status, `${query} ${after}`).toBeLessThan(500);
          const error = expectError(res, 'BAD_USER_INPUT');
          expect(error.message, after).toMatch(/after/);
          expect(error.message.length).toBeLessThan(300);
        }
      }
    });

    it('refuses cursors that decode to anything the server never writes (NUL, impossible dates, other spellings), never as an internal error', async () => {
      const trades = await server.post({ query: `{ portfolio(id: "${portfolioId}") { trades(first: 1) { pageInfo { endCursor } } } }` }, auth);
      const tradeCursor = trades.body.data.portfolio.trades.pageInfo.endCursor as string;
      const [, key] = JSON.parse(Buffer.from(tradeCursor, 'base64url').toString('utf8')) as [string, { at: string; id: number }];
      const lists: [string, string[]][] = [
        [
          'query($after: String) { instruments(after: $after) { totalCount } }',
          [
            encodeCursor('instruments', 'A\u0000'),
            encodeCursor('instruments', 'A\u0007'),
            encodeCursor('instruments', 'A\u009b'),
            encodeCursor('instruments', '\ud800'),
            b64('["instruments", "A"]'),
            b64('["instruments","\\u0041"]'),
            b64('[ "instruments","A"]'),
            b64('["instruments","A"]\n'),
          ],
        ],
        [
          'query($after: String) { portfolios(after: $after) { totalCount } }',
          [b64('["portfolios",1.0]'), b64('["portfolios",1e0]'), b64('["portfolios",01]'), b64('["portfolios",1]').slice(0, -1) + 'F'],
        ],
        [
          `query($after: String) { portfolio(id: "${portfolioId}") { trades(after: $after) { totalCount edges { cursor } } } }`,
          [
            encodeCursor('trades', { at: '2024-02-30T00:00:00.000Z', id: 1 }), // Date.parse takes it (as March 1st), PostgreSQL does not
            encodeCursor('trades', { at: '0000-01-01T00:00:00.000Z', id: 1 }),
            encodeCursor('trades', { at: '2024-01-01T24:00:00.000Z', id: 1 }),
            encodeCursor('trades', { at: '+275760-09-13T00:00:00.000Z', id: 1 }),
            encodeCursor('trades', { at: '2024-01-01T00:00:00+01:00', id: 1 }),
            encodeCursor('trades', { at: 'Mon, 01 Jan 2024 00:00:00 GMT', id: 1 }),
            encodeCursor('trades', { at: `${key.at}\u0000`, id: key.id }),
            encodeCursor('trades', { id: key.id, at: key.at }),
            encodeCursor('trades', { ...key, extra: 1 }),
            encodeCursor('trades', { at: key.at, id: 2 ** 53 }),
            encodeCursor('trades', { at: key.at, id: String(key.id) }),
          ],
        ],
      ];
      for (const [query, cursors] of lists) {
        for (const after of cursors) {
          const res = await server.post({ query, variables: { after } }, auth);
          expect(res.status, after).toBeLessThan(500);
          expect(expectError(res, 'BAD_USER_INPUT').extensions.argument, after).toBe('after');
        }
      }
      // and the trade cursor it wrote is taken
      const next = await server.post(
        { query: `query($after: String) { portfolio(id: "${portfolioId}") { trades(after: $after) { totalCount } } }`, variables: { after: tradeCursor } },
        auth,
      );
      expect(next.body.data).toEqual({ portfolio: { trades: { totalCount: 1 } } });
    });

    it('accepts the cursors it hands out', async () => {
      const first = await server.post({ query: '{ portfolios(first: 2) { nodes { id } pageInfo { endCursor hasNextPage } } }' }, auth);
      const { endCursor, hasNextPage } = first.body.data.portfolios.pageInfo;
      expect(hasNextPage).toBe(true);
      const next = await server.post(
        { query: 'query($a: String) { portfolios(first: 2, after: $a) { nodes { id } pageInfo { hasNextPage } } }', variables: { a: endCursor } },
        auth,
      );
      expect(next.body.errors).toBeUndefined();
      expect(next.body.data.portfolios.nodes).toHaveLength(2);
      expect(next.body.data.portfolios.pageInfo.hasNextPage).toBe(false);
    });

    it('answers unknown ids and symbols with null', async () => {
      const res = await server.post(
        {
          query: `{
            a: portfolio(id: "2147483647") { id }
            b: portfolio(id: "2147483648") { id }
            c: portfolio(id: "not-an-id") { id }
            d: portfolio(id: 0) { id }
            e: instrument(symbol: "NOSUCHSYMBOL") { id }
            f: instrument(symbol: "") { id }
            g: instrument(symbol: "${'X'.repeat(5000)}") { id }
            h: instrument(symbol: "  ${symbol.toLowerCase()}  ") { symbol }
          }`,
        },
        auth,
      );
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({ a: null, b: null, c: null, d: null, e: null, f: null, g: null, h: { symbol } });
    });

    it('refuses other out-of-range arguments with BAD_USER_INPUT', async () => {
      for (const query of [
        `{ instruments(search: "${'x'.repeat(101)}") { totalCount } }`,
        `{ instrument(symbol: "${symbol}") { prices(from: "2024-02-01", to: "2024-01-01") { close } } }`,
        `{ instrument(symbol: "${symbol}") { prices(from: "2024-13-01") { close } } }`,
        `{ instrument(symbol: "${symbol}") { prices(from: "yesterday") { close } } }`,
        `{ instrument(symbol: "${symbol}") { latestForecast(horizonDays: 0) { asOf } } }`,
        `{ instrument(symbol: "${symbol}") { forecasts(horizonDays: -21) { asOf } } }`,
        `{ instrument(symbol: "${symbol}") { forecasts(model: "${'m'.repeat(101)}") { asOf } } }`,
      ]) {
        const res = await server.post({ query });
        expect(res.status, query).toBeLessThan(500);
        expectError(res, 'BAD_USER_INPUT');
      }
    });

    it('treats NUL and other odd characters in strings as input, never as an internal error', async () => {
      for (const s of ['\u0000', `${symbol}\u0000`, '\uD800', '\u202E', '%', '_', '\\']) {
        const res = await server.post(
          { query: 'query($s: String!) { instrument(symbol: $s) { id } instruments(search: $s) { totalCount } }', variables: { s } },
          auth,
        );
        expect(res.status, JSON.stringify(s)).toBeLessThan(500);
        if (res.body.errors) expectError(res, 'BAD_USER_INPUT');
        else expect(res.body.data.instrument, JSON.stringify(s)).toBeNull();
      }
      const model = await server.post({
        query: 'query($s: String!, $m: String) { instrument(symbol: $s) { forecasts(model: $m) { asOf } } }',
        variables: { s: symbol, m: 'a\u0000' },
      });
      expect(model.status).toBeLessThan(500);
      if (model.body.errors) expectError(model, 'BAD_USER_INPUT');
      else expect(model.body.data.instrument.forecasts).toEqual([]);

      const before = await snapshot();
      const trade = await server.post(
        {
          query: 'mutation($input: RecordTradeInput!) { recordTrade(input: $input) { trade { idempotencyKey } } }',
          variables: { input: { portfolioId, symbol, side: 'BUY', quantity: '1', price: '1', idempotencyKey: 'k\u0000' } },
        },
        auth,
      );
      expect(trade.status).toBeLessThan(500);
      if (trade.body.errors) {
        expectError(trade, 'BAD_USER_INPUT');
        expect(await snapshot()).toEqual(before);
      } else expect(trade.body.data.recordTrade.trade.idempotencyKey).toBe('k\u0000');

      const like = await server.post({ query: '{ instruments(search: "%") { totalCount } }' });
      expect(like.body.data).toEqual({ instruments: { totalCount: 0 } });
    });

    it('does not let one odd symbol spoil the other lookups of the same request', async () => {
      const res = await server.post({
        query: 'query($a: String!, $b: String!) { a: instrument(symbol: $a) { symbol } b: instrument(symbol: $b) { symbol } }',
        variables: { a: symbol, b: '\u0000' },
      });
      expect(res.status).toBeLessThan(500);
      // refusing the whole request is fine; failing the good lookup with an internal error is not
      if (res.body.errors) expectError(res, 'BAD_USER_INPUT');
      if (res.body.data) expect(res.body.data).toEqual({ a: { symbol }, b: null });
    });
  });

  describe('mutations', () => {
    const CREATE = 'mutation($input: CreatePortfolioInput!) { createPortfolio(input: $input) { portfolio { id name baseCurrency } } }';
    const TRADE = 'mutation($input: RecordTradeInput!) { recordTrade(input: $input) { trade { id } position { quantity averageCost realizedPnl } } }';

    it('refuses createPortfolio with an empty name or a lowercase currency, and creates nothing', async () => {
      const before = await snapshot();
      for (const input of [
        { name: '' },
        { name: '   ' },
        { name: 'x'.repeat(101) },
        { name: 'Fine', baseCurrency: 'usd' },
        { name: 'Fine', baseCurrency: 'US' },
        { name: 'Fine', baseCurrency: 'USDX' },
        { name: 'Fine', baseCurrency: '' },
        { name: 'Fine', baseCurrency: 'U$D' },
        { name: 'Fine', baseCurrency: ' USD' },
      ]) {
        const res = await server.post({ query: CREATE, variables: { input } }, auth);
        expect(res.status, JSON.stringify(input)).toBeLessThan(500);
        expect(res.body.data ?? null).toBeNull();
        const error = expectError(res, 'BAD_USER_INPUT');
        expect(error.message).toMatch(input.baseCurrency !== undefined ? /baseCurrency/ : /name/);
      }
      expect(await snapshot()).toEqual(before);
    });

    it('refuses a createPortfolio input of the wrong shape with BAD_USER_INPUT', async () => {
      const before = await snapshot();
      for (const variables of [{}, { input: null }, { input: {} }, { input: { name: 5 } }, { input: { name: 'x', extra: 1 } }, { input: 'name' }]) {
        const res = await server.post({ query: CREATE, variables }, auth);
        expect(res.status, JSON.stringify(variables)).toBe(400);
        expectError(res, 'BAD_USER_INPUT');
      }
      expect(await snapshot()).toEqual(before);
    });

    it('refuses a name with a NUL character without an internal error', async () => {
      const before = await snapshot();
      const res = await server.post({ query: CREATE, variables: { input: { name: 'a\u0000b' } } }, auth);
      expect(res.status).toBeLessThan(500);
      if (res.body.errors) {
        expectError(res, 'BAD_USER_INPUT');
        expect(await snapshot()).toEqual(before);
      } else {
        expect(res.body.data.createPortfolio.portfolio.name).toBe('a\u0000b');
      }
    });

    it('refuses malformed decimals, non-positive amounts and unknown symbols in recordTrade, and changes nothing', async () => {
      const before = await snapshot();
      const valid = { portfolioId, symbol, side: 'BUY', quantity: '1', price: '1' };
      const bad: Record<string, unknown>[] = [
        ...['+5', '.5', '5.', '1e3', 'NaN', 'Infinity', '', ' 5', '5 ', '1,5', '0x10', '123456789012345678901', '1.123456789', '--1'].map((quantity) => ({
          quantity,
        })),
        { quantity: 5 },
        { quantity: 1.5 },
        { quantity: null },
        { quantity: '0' },
        { quantity: '-1' },
        { quantity: '-0' },
        { price: '0' },
        { price: '-0.00000001' },
        { price: '1E2' },
        { symbol: 'NOSUCHSYMBOL' },
        { symbol: '' },
        { symbol: 'x'.repeat(500) },
        { side: 'HOLD' },
        { side: 'buy' },
        { executedAt: 'yesterday' },
        { executedAt: '2999-01-01T00:00:00Z' },
        { idempotencyKey: '' },
        { idempotencyKey: 'k'.repeat(201) },
        { quantity: '11', side: 'SELL' },
      ];
      for (const change of bad) {
        const res = await server.post({ query: TRADE, variables: { input: { ...valid, ...change } } }, auth);
        expect(res.status, JSON.stringify(change)).toBeLessThan(500);
        expect(res.body.data ?? null).toBeNull();
        expectError(res, 'BAD_USER_INPUT');
      }
      expect(await snapshot()).toEqual(before);
    });

    it('refuses a trade whose realised P&L cannot be stored, or records it exactly; never an internal error', async () => {
      const s = seed(database.db);
      const user = await s.user();
      const p = await s.portfolio(user);
      const headers = { authorization: `Bearer ${await server.token(user.id)}` };
      const max = '99999999999999999999';
      const buy = await server.post(
        { query: TRADE, variables: { input: { portfolioId: String(p.id), symbol, side: 'BUY', quantity: max, price: '0.00000001' } } },
        headers,
      );
      expect(buy.body.errors).toBeUndefined();
      expect(buy.body.data.recordTrade.position).toEqual({ quantity: max, averageCost: '0.00000001', realizedPnl: '0' });

      // sell all but one unit at the largest price: the realised P&L is about 10^40
      const sold = '99999999999999999998';
      const sell = await server.post(
        { query: TRADE, variables: { input: { portfolioId: String(p.id), symbol, side: 'SELL', quantity: sold, price: max } } },
        headers,
      );
      expect(sell.status).toBeLessThan(500);
      if (sell.body.errors) {
        const error = expectError(sell, 'BAD_USER_INPUT');
        expect(error.message).toMatch(/quantity|price|P&L/i);
        const after = await server.post(
          { query: `{ portfolio(id: "${p.id}") { trades { totalCount } positions { nodes { quantity realizedPnl } } } }` },
          headers,
        );
        expect(after.body.data.portfolio).toEqual({ trades: { totalCount: 1 }, positions: { nodes: [{ quantity: max, realizedPnl: '0' }] } });
      } else {
        // q × (price − average cost), exactly, in units of 10^-8
        const q = 10n ** 20n - 2n;
        const units = q * (10n ** 20n - 1n) * 10n ** 8n - q;
        const exact = `${units / 10n ** 8n}.${(units % 10n ** 8n).toString().padStart(8, '0')}`.replace(/\.?0+$/, '');
        expect(sell.body.data.recordTrade.position).toEqual({ quantity: '1', averageCost: '0.00000001', realizedPnl: exact });
      }
    });
  });

  describe('fuzz', () => {
    // a deterministic generator, so a failure can be replayed exactly
    const rng = seededRandom;

    it('answers a few hundred malformed requests with contract errors, and keeps serving', async () => {
      const random = rng(20240531);
      const int = (n: number) => Math.floor(random() * n);
      const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];

      const documents = [
        `query Q($first: Int, $after: String) { instruments(first: $first, after: $after) { totalCount edges { cursor node { symbol latestPrice { date close } } } pageInfo { hasNextPage endCursor } } }`,
        `query P($id: ID!) { portfolio(id: $id) { id name positions(first: 5) { nodes { quantity averageCost instrument { symbol } } } trades { nodes { id side } } valuation { marketValue asOf } } }`,
        `query V { viewer { email portfolios(first: 3) { totalCount nodes { id } } } }`,
        `query I($s: String!) { instrument(symbol: $s) { symbol prices(from: "2024-01-01", first: 2) { date close } latestForecast { expectedReturn } } }`,
        `mutation C($input: CreatePortfolioInput!) { createPortfolio(input: $input) { portfolio { id } } }`,
        `mutation T($input: RecordTradeInput!) { recordTrade(input: $input) { trade { id } position { quantity } } }`,
      ];
      const tokens = [
        '{',
        '}',
        '(',
        ')',
        '[',
        ']',
        ':',
        '$',
        '!',
        '...',
        '@',
        '"',
        '"""',
        '#',
        ',',
        '=',
        '|',
        '&',
        '\\',
        '\n',
        ' ',
        'query',
        'mutation',
        'fragment',
        'on',
        'null',
        'true',
        '1e999',
        '-0',
        '__schema',
        '__typename',
        'first',
        'after',
        '\u0000',
        '\uFFFF',
        '💥',
        'instruments',
        'portfolio',
        '@skip(if: "x")',
        '@include',
        '@deprecated',
      ];
      const junkValues: unknown[] = [
        null,
        true,
        false,
        0,
        -1,
        1.5,
        2 ** 31,
        -(2 ** 31) - 1,
        1e308,
        'ten',
        '',
        ' ',
        '\u0000',
        'x'.repeat(3000),
        [],
        [1, 'a'],
        {},
        { a: { b: { c: [] } } },
        '-1',
        '+5',
        '.5',
        '5.',
        '1e3',
        'NaN',
        '99999999999999999999.123456789',
        'BUY',
        'SELL',
        'buy',
        'AAPL',
        symbol,
        portfolioId,
        '2024-01-01',
        '2024-02-30',
        'not a date',
        b64(['portfolios', 1]),
        b64(['instruments', 'A']),
        b64(['trades', { at: 'x', id: 1 }]),
        'garbage-cursor',
      ];
      const randomValue = () => pick(junkValues);
      const randomVariables = (): unknown => {
        switch (int(6)) {
          case 0:
            return { first: randomValue(), after: randomValue() };
          case 1:
            return { id: randomValue() };
          case 2:
            return { s: randomValue() };
          case 3:
            return { input: { name: randomValue(), baseCurrency: randomValue() } };
          case 4:
            return {
              input: {
                portfolioId: pick([portfolioId, randomValue()]),
                symbol: pick([symbol, randomValue()]),
                side: pick(['BUY', 'SELL', randomValue()]),
                quantity: randomValue(),
                price: randomValue(),
                ...(random() < 0.3 ? { executedAt: randomValue() } : {}),
                ...(random() < 0.3 ? { idempotencyKey: randomValue() } : {}),
              },
            };
          default:
            return randomValue();
        }
      };
      const mutate = (doc: string) => {
        let s = doc;
        for (let n = 1 + int(4); n > 0; n--) {
          const at = int(s.length + 1);
          switch (int(4)) {
            case 0:
              s = s.slice(0, at) + s.slice(at + 1 + int(8));
              break; // delete
            case 1:
              s = s.slice(0, at) + pick(tokens) + s.slice(at);
              break; // insert
            case 2:
              s = s.slice(0, at) + pick(tokens) + s.slice(at + 1 + int(4));
              break; // replace
            default:
              s = s.slice(0, at); // truncate
          }
        }
        return s;
      };
      const deep = (n: number) => `${'{ a '.repeat(n)}${'}'.repeat(n)}`;
      const randomBody = (): { body: unknown; raw?: boolean } => {
        const kind = int(10);
        if (kind <= 3) return { body: { query: mutate(pick(documents)), variables: randomVariables() } };
        if (kind <= 5) return { body: { query: pick(documents), variables: randomVariables() } };
        if (kind === 6) {
          const text = JSON.stringify({ query: pick(documents), variables: randomVariables() });
          return { body: text.slice(0, int(text.length)) + pick(['', '\u0000', '}', ']]', '\\', '"']), raw: true };
        }
        if (kind === 7) {
          return {
            body: pick<unknown>([
              { query: randomValue() },
              { query: pick(documents), operationName: randomValue() },
              { query: pick(documents), extensions: randomValue() },
              {
                query: pick(documents),
                extensions: { persistedQuery: { version: pick([1, 2, 'x']), sha256Hash: pick(['abc', '0'.repeat(64), randomValue()]) } },
              },
              [{ query: pick(documents) }],
              randomValue(),
            ]),
          };
        }
        if (kind === 8)
          return {
            body: {
              query: pick([
                deep(50 + int(200)),
                `{ ${'__typename '.repeat(1 + int(2000))}}`,
                `query(${'$v: Int '.repeat(1 + int(300))}) { __typename }`,
                `{ ${Array.from({ length: 200 }, (_, i) => `a${i}: instruments { totalCount }`).join(' ')} }`,
              ]),
            },
          };
        return { body: Buffer.from(Array.from({ length: 1 + int(300) }, () => int(256))).toString('latin1'), raw: true };
      };

      const allowedStatus = new Set([200, 400, 401, 405, 406, 413, 415]);
      const seen = new Map<string, number>();
      const runs = 400;
      for (let i = 0; i < runs; i++) {
        const { body, raw } = randomBody();
        const headers: Record<string, string> =
          random() < 0.8 ? auth : random() < 0.5 ? {} : { authorization: pick(['Bearer x', 'Basic y', 'Bearer ', `Bearer ${'a'.repeat(5000)}`]) };
        const res = await server.post(raw ? (body as string) : JSON.stringify(body), headers);
        const label = `#${i}: ${String(raw ? body : JSON.stringify(body)).slice(0, 300)} -> ${res.status} ${JSON.stringify(res.body).slice(0, 500)}`;
        expect(allowedStatus.has(res.status), label).toBe(true);
        expect(res.body.raw, label).toBeUndefined(); // the answer is JSON
        expect(typeof res.body === 'object' && res.body !== null, label).toBe(true);
        if (res.body.errors) {
          expect(Array.isArray(res.body.errors), label).toBe(true);
          for (const e of res.body.errors) {
            expect(typeof e.message, label).toBe('string');
            expect(CONTRACT_CODES.has(e.extensions?.code), label).toBe(true);
            expect(e.extensions.code, label).not.toBe('INTERNAL_SERVER_ERROR');
            seen.set(e.extensions.code, (seen.get(e.extensions.code) ?? 0) + 1);
          }
        } else {
          expect(res.status, label).toBe(200);
          expect(res.body, label).toHaveProperty('data');
          seen.set('(data)', (seen.get('(data)') ?? 0) + 1);
        }
      }
      // the loop did exercise the error paths it is about
      expect(seen.get('BAD_USER_INPUT') ?? 0).toBeGreaterThan(runs / 2);
      expect(seen.get('UNAUTHENTICATED') ?? 0).toBeGreaterThan(0);

      const health = await fetch(new URL('/healthz', server.url));
      expect(health.status).toBe(200);
      const ready = await fetch(new URL('/readyz', server.url));
      expect(ready.status).toBe(200);
      const valid = await server.post(
        { query: `query($s: String!) { instrument(symbol: $s) { symbol latestPrice { close } } viewer { id } }`, variables: { s: symbol } },
        auth,
      );
      expect(valid.status).toBe(200);
      expect(valid.body.data).toEqual({ instrument: { symbol, latestPrice: { close: '102' } }, viewer: { id: String(userId) } });
    });
  });
});
