import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createDatabase } from '../src/db/client.js';
import { createTestDatabase, onPostgres, type TestDatabase } from './helpers/db.js';
import { DEFAULT_MODEL, seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// The limits an operation meets before anything executes (depth, cost, list caps, aliases, root
// fields, directives, tokens, body size, batches), each caller's cost budget, the request deadline,
// and what production hides, all through the real HTTP server. A refused operation runs no SQL.

const LIMITS = {
  MAX_DEPTH: '6',
  MAX_COST: '5000',
  RATE_LIMIT_COST_PER_MINUTE: '1000000',
  MAX_ALIASES: '5',
  MAX_ROOT_FIELDS: '4',
  MAX_DIRECTIVES: '3',
  MAX_TOKENS: '1000',
  MAX_BODY_BYTES: '20000',
};

// viewer → portfolios → nodes → positions → nodes → instrument → latestForecast → model → name: depth 8
const TOO_DEEP = 'query Deep { viewer { portfolios { nodes { positions { nodes { instrument { latestForecast { model { name } } } } } } } } }';
// the deepest a dashboard may go under MAX_DEPTH=6: the leaves of `instrument` sit at depth 6
const DASHBOARD = `query Dashboard {
  viewer {
    email
    portfolios(first: 10) {
      totalCount
      nodes { name valuation { marketValue costBasis asOf } positions(first: 50) { totalCount nodes { quantity marketValue instrument { symbol } } } }
    }
  }
}`;

type Answer = Awaited<ReturnType<TestServer['post']>>;

/** The answer of `server` to `body`, and how many SQL statements it caused. */
async function counted(server: TestServer, body: unknown, headers: Record<string, string> = {}): Promise<{ res: Answer; statements: number }> {
  const { result, statements } = await server.countSql(() => server.post(body, headers));
  return { res: result, statements };
}

/** Asserts a refused answer: the status, one error with the code (and extensions), no data. */
function expectRefused(res: Answer, status: number, code: string, extensions: Record<string, unknown> = {}) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.data ?? null).toBeNull();
  expect(res.body.errors).toHaveLength(1);
  expect(res.body.errors[0].extensions).toMatchObject({ code, ...extensions });
}

describe('limits', () => {
  let database: TestDatabase;
  let server: TestServer; // the limits above
  let budgeted: TestServer; // RATE_LIMIT_COST_PER_MINUTE=20
  let ownerId: number;
  let otherId: number;
  let symbol: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    const owner = await s.user();
    const other = await s.user();
    ownerId = owner.id;
    otherId = other.id;
    const model = await s.model(DEFAULT_MODEL);
    const symbols: string[] = [];
    for (let i = 0; i < 3; i++) {
      const instrument = await s.instrument(['10', '11', '12']);
      await s.forecast(model.id, instrument.id, 21, '2024-01-31');
      symbols.push(instrument.symbol);
    }
    symbol = symbols[0];
    for (const user of [owner, other]) {
      for (let p = 0; p < 3; p++) {
        const portfolio = await s.portfolio(user);
        for (const sym of symbols) await s.trade(user.viewer, { portfolioId: portfolio.id, symbol: sym, side: 'BUY', quantity: '2', price: '10' });
      }
    }
    server = await startTestServer(database, LIMITS);
    budgeted = await startTestServer(database, { ...LIMITS, RATE_LIMIT_COST_PER_MINUTE: '20' });
    // The recorder flushes its sums every 30 s: stop its timer so no flush lands inside a count below
    // (app.stop() still flushes what is left).
    for (const running of [server, budgeted]) await running.app.recorder.stop();
  });
  afterAll(async () => {
    for (const s of [server, budgeted]) await s?.stop();
    await database?.destroy();
  });

  const auth = async (s: TestServer, userId: number) => ({ authorization: `Bearer ${await s.token(userId)}` });

  describe('depth', () => {
    it('refuses a query deeper than MAX_DEPTH with 400 QUERY_TOO_DEEP and the limit, running no SQL', async () => {
      const { res, statements } = await counted(server, { query: TOO_DEEP }, await auth(server, ownerId));
      expectRefused(res, 400, 'QUERY_TOO_DEEP', { limit: 6 });
      expect(res.body.errors[0].message).toMatch(/exceeds maximum operation depth of 6/);
      expect(statements).toBe(0);
    });

    it('refuses depth hidden in fragments the same way', async () => {
      const query =
        'query { viewer { ...U } } fragment U on User { portfolios { nodes { positions { nodes { instrument { latestForecast { model { name } } } } } } } }';
      const { res, statements } = await counted(server, { query });
      expectRefused(res, 400, 'QUERY_TOO_DEEP', { limit: 6 });
      expect(statements).toBe(0);
    });

    it('answers a query exactly MAX_DEPTH deep', async () => {
      const res = await server.post({ query: DASHBOARD }, await auth(server, ownerId));
      expect(res.status).toBe(200);
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.viewer.portfolios.totalCount).toBe(3);
    });
  });

  describe('cost', () => {
    it('refuses a costly query with 400 QUERY_TOO_COSTLY, its numeric cost and the limit, running no SQL', async () => {
      // 1 + 100 instruments × (1 + 1000 prices)
      const { res, statements } = await counted(server, { query: '{ instruments(first: 100) { nodes { prices(first: 1000) { close } } } }' });
      expectRefused(res, 400, 'QUERY_TOO_COSTLY', { cost: 100_101, limit: 5000 });
      expect(typeof res.body.errors[0].extensions.cost).toBe('number');
      expect(res.body.errors[0].extensions.cost).toBeGreaterThan(res.body.errors[0].extensions.limit);
      expect(statements).toBe(0);
    });

    it('answers at the limit and refuses one unit past it', async () => {
      // 1 + 100 × (1 + 48) = 4901; 1 + 100 × (1 + 49) = 5001
      const ok = await server.post({ query: '{ instruments(first: 100) { nodes { prices(first: 48) { close } } } }' });
      expect(ok.status).toBe(200);
      expect(ok.body.extensions.cost).toMatchObject({ estimated: 4901, limit: 5000 });
      const { res, statements } = await counted(server, { query: '{ instruments(first: 100) { nodes { prices(first: 49) { close } } } }' });
      expectRefused(res, 400, 'QUERY_TOO_COSTLY', { cost: 5001, limit: 5000 });
      expect(statements).toBe(0);
    });

    it('prices a `first` sent in a variable like the same literal', async () => {
      const query = 'query Q($n: Int!, $p: Int!) { instruments(first: $n) { nodes { prices(first: $p) { close } } } }';
      const { res, statements } = await counted(server, { query, variables: { n: 100, p: 1000 } });
      expectRefused(res, 400, 'QUERY_TOO_COSTLY', { cost: 100_101, limit: 5000 });
      expect(statements).toBe(0);
    });

    it('prices an explicit `first: null` as the default page the resolver then fetches', async () => {
      // prices(first: null) returns the default 100 prices, so this costs 1 + 100 × (1 + 100) = 10101
      for (const body of [
        { query: '{ instruments(first: 100) { nodes { prices(first: null) { close } } } }' },
        { query: 'query Q($p: Int) { instruments(first: 100) { nodes { prices(first: $p) { close } } } }', variables: { p: null } },
      ]) {
        const { res, statements } = await counted(server, body);
        expectRefused(res, 400, 'QUERY_TOO_COSTLY', { cost: 10_101, limit: 5000 });
        expect(statements).toBe(0);
      }
    });
  });

  describe('list caps', () => {
    const literal = (n: number) => ({ query: `{ instrument(symbol: "${symbol}") { prices(first: ${n}) { close } } }` });
    const variable = (n: number) => ({
      query: 'query P($s: String!, $n: Int!) { instrument(symbol: $s) { prices(first: $n) { close } } }',
      variables: { s: symbol, n },
    });

    it('refuses a literal first over the cap with 400 BAD_USER_INPUT naming the cap, running no SQL', async () => {
      const { res, statements } = await counted(server, literal(5000));
      expectRefused(res, 400, 'BAD_USER_INPUT', { argument: 'first', limit: 1000 });
      expect(res.body.errors[0].message).toMatch(/1000/);
      expect(res.body.errors[0].message).toMatch(/Instrument\.prices/);
      expect(statements).toBe(0);
    });

    it('refuses a huge `first: $n` exactly like the same literal', async () => {
      const byLiteral = await counted(server, literal(5000));
      const byVariable = await counted(server, variable(5000));
      expect(byVariable.res.status).toBe(byLiteral.res.status);
      expect(byVariable.res.body.errors).toEqual(byLiteral.res.body.errors);
      expect(byVariable.statements).toBe(0);

      for (const n of [1001, 2_147_483_647, 1_000_000_000_000]) {
        const { res, statements } = await counted(server, variable(n));
        expectRefused(res, 400, 'BAD_USER_INPUT', { argument: 'first', limit: 1000 });
        expect(res.body.errors[0].message).toContain(`got ${n}`);
        expect(statements).toBe(0);
      }
    });

    it('refuses a negative first in a variable, running no SQL', async () => {
      const { res, statements } = await counted(server, variable(-1));
      expectRefused(res, 400, 'BAD_USER_INPUT', { limit: 1000 });
      expect(statements).toBe(0);
    });

    it('applies each list its own cap (instruments: 100)', async () => {
      const { res, statements } = await counted(server, { query: 'query I($n: Int!) { instruments(first: $n) { nodes { symbol } } }', variables: { n: 101 } });
      expectRefused(res, 400, 'BAD_USER_INPUT', { argument: 'first', limit: 100 });
      expect(statements).toBe(0);
    });

    it('answers at the cap', async () => {
      const res = await server.post(variable(1000));
      expect(res.status).toBe(200);
      expect(res.body.data.instrument.prices).toHaveLength(3);
    });
  });

  describe('document shape', () => {
    // aliases below the root, so that MAX_ROOT_FIELDS is not what refuses them
    const aliased = (n: number) => `{ instrument(symbol: "${symbol}") { ${Array.from({ length: n }, (_, i) => `a${i}: symbol`).join(' ')} } }`;

    it('refuses more than MAX_ALIASES aliases with 400 BAD_USER_INPUT, running no SQL', async () => {
      const five = await server.post({ query: aliased(5) });
      expect(five.status).toBe(200);
      expect(five.body.data.instrument.a4).toBe(symbol);
      const { res, statements } = await counted(server, { query: aliased(6) });
      expectRefused(res, 400, 'BAD_USER_INPUT', { limit: 5 });
      expect(res.body.errors[0].message).toMatch(/more than 5 aliases/);
      expect(statements).toBe(0);
    });

    it('refuses more than MAX_ROOT_FIELDS root fields with 400 BAD_USER_INPUT, running no SQL', async () => {
      const four = `instrument(symbol: "${symbol}") { symbol } instruments(first: 1) { totalCount } portfolios(first: 1) { totalCount } viewer { id }`;
      expect((await server.post({ query: `{ ${four} }` })).status).toBe(200);
      const { res, statements } = await counted(server, { query: `{ ${four} __typename }` });
      expectRefused(res, 400, 'BAD_USER_INPUT', { limit: 4 });
      expect(statements).toBe(0);

      // a fragment on the root does not hide its fields
      const spread = await counted(server, { query: `query { ...Roots __typename } fragment Roots on Query { ${four} }` });
      expectRefused(spread.res, 400, 'BAD_USER_INPUT', { limit: 4 });
      expect(spread.statements).toBe(0);
    });

    it('refuses more than MAX_DIRECTIVES directives with 400 BAD_USER_INPUT, running no SQL', async () => {
      const fields = (n: number) => Array.from({ length: n }, (_, i) => `f${i}: symbol @include(if: true)`).join(' ');
      expect((await server.post({ query: `{ instrument(symbol: "${symbol}") { ${fields(3)} } }` })).status).toBe(200);
      const { res, statements } = await counted(server, { query: `{ instrument(symbol: "${symbol}") { ${fields(4)} } }` });
      expectRefused(res, 400, 'BAD_USER_INPUT', { limit: 3 });
      expect(res.body.errors[0].message).toMatch(/more than 3 directives/);
      expect(statements).toBe(0);
    });

    it('refuses a document of more than MAX_TOKENS tokens with 400, running no SQL', async () => {
      // `{`, 1000 × `__typename`, `}`: 1002 tokens in about 11 KB, under the body limit
      const query = `{ ${'__typename '.repeat(1000)}}`;
      expect(Buffer.byteLength(JSON.stringify({ query }))).toBeLessThan(20_000);
      const { res, statements } = await counted(server, { query });
      expectRefused(res, 400, 'BAD_USER_INPUT');
      expect(res.body.errors[0].message).toMatch(/Document contains more th\w+ 1000 tokens/);
      expect(statements).toBe(0);
    });

    it('refuses a body over MAX_BODY_BYTES with 413, running no SQL', async () => {
      const body = JSON.stringify({ query: `{ instrument(symbol: "${symbol}") { symbol } }`, variables: { padding: 'x'.repeat(25_000) } });
      const { res, statements } = await counted(server, body);
      expectRefused(res, 413, 'BAD_USER_INPUT');
      expect(res.body.errors[0].message).toMatch(/20000 bytes/);
      expect(statements).toBe(0);
    });

    it('refuses a JSON array of operations (a batch) with 400, running no SQL', async () => {
      const one = { query: `{ instrument(symbol: "${symbol}") { symbol } }` };
      const { res, statements } = await counted(server, [one, one]);
      expect(res.status).toBe(400);
      expect(Array.isArray(res.body)).toBe(false);
      expect(res.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
      expect(statements).toBe(0);
    });

    it('refuses a subscription with 400 BAD_USER_INPUT, running no SQL', async () => {
      const { res, statements } = await counted(server, { query: 'subscription { viewer { id } }' });
      expect(res.status).toBe(400);
      expect(res.body.errors.map((e: any) => e.extensions.code)).toContain('BAD_USER_INPUT');
      expect(statements).toBe(0);
    });
  });

  describe('budgets', () => {
    // viewer 1 + portfolios 1 + totalCount 1 + 2 nodes = 5 a time, against 20 a minute
    const MINE = { query: 'query Mine { viewer { email portfolios(first: 2) { totalCount nodes { name } } } }' };

    it('gives a caller its budget, reports what it spends, then refuses with 429 RATE_LIMITED and Retry-After', async () => {
      const headers = await auth(budgeted, ownerId);
      const allowed: { statements: number; cost: any }[] = [];
      let refused: { res: Answer; statements: number } | undefined;
      for (let i = 0; i < 10 && !refused; i++) {
        const { res, statements } = await counted(budgeted, MINE, headers);
        if (res.status === 429) refused = { res, statements };
        else {
          expect(res.status).toBe(200);
          expect(res.body.data.viewer.portfolios.totalCount).toBe(3);
          allowed.push({ statements, cost: res.body.extensions.cost });
        }
      }

      // four operations of 5 fit in 20 (the rolling minute may forgive a little if a minute turns meanwhile)
      expect(allowed.length).toBeGreaterThanOrEqual(4);
      expect(allowed[0].cost).toEqual({
        estimated: 5,
        limit: 5000,
        actual: { sqlStatements: allowed[0].statements, loaderBatches: expect.any(Number), loaderKeys: expect.any(Number), rows: expect.any(Number) },
        budget: { limit: 20, remaining: 15 },
      });
      expect(allowed[0].statements).toBeGreaterThan(0);
      expect(allowed[0].cost.actual.loaderBatches).toBeGreaterThan(0);
      expect(allowed[0].cost.actual.loaderKeys).toBeGreaterThan(0);
      expect(allowed[0].cost.actual.rows).toBeGreaterThan(0);
      for (const a of allowed) {
        expect(a.cost.estimated).toBe(5);
        expect(a.cost.actual.sqlStatements).toBe(a.statements);
        expect(a.cost.budget.limit).toBe(20);
        expect(a.cost.budget.remaining).toBeGreaterThanOrEqual(0);
      }
      const remaining = allowed.map((a) => a.cost.budget.remaining);
      for (let i = 1; i < remaining.length; i++) expect(remaining[i]).toBeLessThan(remaining[i - 1]);

      expect(refused).toBeDefined();
      const { res, statements } = refused!;
      expectRefused(res, 429, 'RATE_LIMITED', { limit: 20 });
      expect(statements).toBe(0);
      const retryAfter = res.headers.get('retry-after');
      expect(retryAfter).toMatch(/^\d+$/);
      expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
      expect(res.body.errors[0].extensions.retryAfter).toBe(Number(retryAfter));

      // and again: still refused, still no SQL
      const again = await counted(budgeted, MINE, headers);
      expectRefused(again.res, 429, 'RATE_LIMITED');
      expect(again.statements).toBe(0);
    });

    it('leaves another user and an anonymous caller their own budgets', async () => {
      const other = await counted(budgeted, MINE, await auth(budgeted, otherId));
      expect(other.res.status).toBe(200);
      expect(other.res.body.data.viewer.portfolios.totalCount).toBe(3);
      expect(other.res.body.extensions.cost).toMatchObject({ estimated: 5, budget: { limit: 20, remaining: 15 } });
      expect(other.res.body.extensions.cost.actual.sqlStatements).toBe(other.statements);

      // 1 + 2 instruments
      const anonymous = await counted(budgeted, { query: '{ instruments(first: 2) { nodes { symbol } } }' });
      expect(anonymous.res.status).toBe(200);
      expect(anonymous.res.body.data.instruments.nodes).toHaveLength(2);
      expect(anonymous.res.body.extensions.cost).toMatchObject({ estimated: 3, budget: { limit: 20, remaining: 17 } });
      expect(anonymous.res.body.extensions.cost.actual.sqlStatements).toBe(anonymous.statements);
    });
  });

  describe('deadline', () => {
    it('answers an operation past REQUEST_TIMEOUT_MS with 504 DEADLINE_EXCEEDED, and the servers keep answering', async () => {
      const hurried = await startTestServer(database, { REQUEST_TIMEOUT_MS: '1' });
      try {
        const res = await hurried.post({ query: DASHBOARD }, await auth(hurried, ownerId));
        expectRefused(res, 504, 'DEADLINE_EXCEEDED', { limit: 1 });
        expect(res.headers.get('x-request-id')).toBeTruthy();

        const health = await fetch(new URL('/healthz', hurried.url));
        expect(health.status).toBe(200);
        expect(await health.json()).toEqual({ status: 'ok' });
      } finally {
        await hurried.stop();
      }
      // the database is not left stuck: a server with the usual deadline answers the same query
      const normal = await server.post({ query: DASHBOARD }, await auth(server, ownerId));
      expect(normal.status).toBe(200);
      expect(normal.body.errors).toBeUndefined();
      expect(normal.body.data.viewer.portfolios.nodes).toHaveLength(3);
    });

    it.skipIf(!onPostgres)('cancels a statement past statementTimeoutMs on PostgreSQL', async () => {
      const limited = await createDatabase({ databaseUrl: database.url, pgliteDataDir: 'memory://', dbPoolMax: 1, statementTimeoutMs: 100 });
      try {
        const error = await limited.db.execute(sql`select pg_sleep(2)`).then(
          () => null,
          (e: Error & { cause?: { code?: string; message?: string } }) => e,
        );
        expect(error).toBeInstanceOf(Error);
        // drizzle wraps the driver's error: PostgreSQL's own is its cause (57014 = query_canceled)
        expect(error?.cause?.code).toBe('57014');
        expect(error?.cause?.message).toMatch(/statement timeout/i);
        // the connection is still usable afterwards
        await expect(limited.db.execute(sql`select 1`)).resolves.toBeDefined();
      } finally {
        await limited.close();
      }
    });
  });
});

describe('production switches', () => {
  let database: TestDatabase;
  let prod: TestServer;
  let dev: TestServer;
  let broken: string; // an instrument whose latest forecast holds NaN, which no Float can represent

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    const model = await s.model(DEFAULT_MODEL);
    const instrument = await s.instrument(['10', '11']);
    // A model fed a degenerate series can store NaN; serializing it as a Float fails inside execution,
    // an unexpected (internal) error that is not the client's fault.
    await s.forecast(model.id, instrument.id, 21, '2024-01-31', Number.NaN);
    broken = instrument.symbol;
    prod = await startTestServer(database, { NODE_ENV: 'production' });
    dev = await startTestServer(database, { NODE_ENV: 'development' });
  });
  afterAll(async () => {
    for (const s of [prod, dev]) await s?.stop();
    await database?.destroy();
  });

  const html = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };

  it('shows no Sandbox landing page in production (development does)', async () => {
    const shown = await fetch(dev.url, { headers: html });
    expect(shown.headers.get('content-type')).toMatch(/^text\/html/);
    expect((await shown.text()).toLowerCase()).toContain('sandbox');

    const res = await fetch(prod.url, { headers: html });
    const text = await res.text();
    expect(res.headers.get('content-type') ?? '').not.toMatch(/text\/html/);
    expect(text.toLowerCase()).not.toContain('sandbox');
    expect(res.status).toBeGreaterThanOrEqual(400);
  });

  it('refuses introspection in production (development answers it)', async () => {
    const query = '{ __schema { types { name } } }';
    const open = await dev.post({ query });
    expect(open.status).toBe(200);
    expect(open.body.data.__schema.types.length).toBeGreaterThan(0);

    const { result: res, statements } = await prod.countSql(() => prod.post({ query }));
    expect(res.status).toBe(400);
    expect(res.body.data).toBeUndefined();
    expect(res.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(res.body.errors[0].message).toMatch(/introspection/i);
    expect(statements).toBe(0);
  });

  it('gives no "Did you mean" suggestions in production validation errors', async () => {
    const typos = [
      `{ instrumnt(symbol: "${broken}") { symbol } }`, // field
      `{ instrument(symbl: "${broken}") { symbol } }`, // argument
      `{ instrument(symbol: "${broken}") { ... on Instrumnt { symbol } } }`, // type
    ];
    for (const query of typos) {
      const suggested = await dev.post({ query });
      expect(suggested.status, query).toBe(400);
      expect(suggested.body.errors.map((e: any) => e.message).join(' '), query).toMatch(/Did you mean/);

      const res = await prod.post({ query });
      expect(res.status, query).toBe(400);
      expect(res.body.errors[0].extensions.code, query).toBe('BAD_USER_INPUT');
      const messages = res.body.errors.map((e: any) => e.message).join(' ');
      expect(messages, query).not.toMatch(/did you mean/i);
    }
  });

  it('masks internal errors in production and gives them the request id of x-request-id', async () => {
    const query = `{ instrument(symbol: "${broken}") { symbol latestForecast { expectedReturn } } }`;
    // development says what went wrong, so the error is a real internal one
    const open = await dev.post({ query });
    expect(open.body.errors[0].extensions.code).toBe('INTERNAL_SERVER_ERROR');
    expect(open.body.errors[0].message).toMatch(/NaN/);

    for (const headers of [{ 'x-request-id': 'limits-test.masked-1' }, {}] as Record<string, string>[]) {
      const res = await prod.post({ query }, headers);
      const requestId = res.headers.get('x-request-id');
      expect(requestId).toBeTruthy();
      if ('x-request-id' in headers) expect(requestId).toBe('limits-test.masked-1');
      expect(res.body.data).toEqual({ instrument: { symbol: broken, latestForecast: null } });
      expect(res.body.errors).toHaveLength(1);
      const [error] = res.body.errors;
      expect(error.message).toBe('Internal server error');
      expect(error.extensions.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.extensions.requestId).toBe(requestId);
      expect(error.extensions.stacktrace).toBeUndefined();
      expect(JSON.stringify(res.body)).not.toMatch(/NaN|Float|serialize/i);
    }
  });
});
