import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { generatePersistedQueryManifest } from '@apollo/generate-persisted-query-manifest';
import { sql } from 'drizzle-orm';
import { ClientError, GraphQLClient } from 'graphql-request';
import { getOperationAST, parse } from 'graphql';
import { loadConfig, type Config } from '../src/config.js';
import { rows, type Db } from '../src/db/client.js';
import { persistedDocuments } from '../src/db/schema.js';
import { buildSchema } from '../src/graphql/schema.js';
import {
  checkManifest,
  checkPublished,
  listDocuments,
  publishOperations,
  retireDocument,
  sha256,
  type CheckedOperation,
  type DocumentChecks,
  type Manifest,
} from '../src/admission/trusted-documents.js';
import { createPartner } from '../src/admission/partners.js';
import { CostEstimator } from '../src/limits/cost-estimate.js';
import { limitRules } from '../src/limits/rules.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, TEST_SECRET, type TestServer } from './helpers/server.js';

// Trusted documents for partners (manifests checked and published all or nothing, retired, checked
// against the schema again) and Apollo's automatic persisted queries for everyone else, each driven
// by the real client libraries: graphql-request for partners, @apollo/client 4 for APQ, and Apollo's
// own manifest generator.

const QUOTE = `query Quote($symbol: String!) {
  instrument(symbol: $symbol) { symbol name latestPrice { date close } }
}`;
const NAME_ONLY = `query NameOnly($symbol: String!) {
  instrument(symbol: $symbol) { symbol name }
}`;
const HISTORY = `query History($symbol: String!, $first: Int = 5) {
  instrument(symbol: $symbol) { symbol prices(first: $first) { date close } }
}`;
const CREATE_PORTFOLIO = `mutation CreatePortfolio($input: CreatePortfolioInput!) {
  createPortfolio(input: $input) { portfolio { id } }
}`;
// far over MAX_COST (50 000): 100 instruments × (1000 prices + 100 forecasts)
const EXPENSIVE = `query Expensive {
  instruments(first: 100) { nodes { prices(first: 1000) { date close } forecasts(first: 100) { lower model { name } } } }
}`;

const unique = () => Math.random().toString(36).slice(2, 10);
const config: Config = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET });

function checksFor(c: Config): DocumentChecks {
  const schema = buildSchema();
  return { schema, estimator: new CostEstimator(schema), rules: limitRules(c), maxCost: c.limits.maxCost };
}
const checks = checksFor(config);

type Operation = Manifest['operations'][number];

function operationOf(body: string): Operation {
  const op = getOperationAST(parse(body))!;
  return { id: sha256(body), name: op.name!.value, type: op.operation, body };
}

const manifestOf = (operations: Operation[]) => ({ format: 'apollo-persisted-query-manifest', version: 1, operations });

/** What `npm run pq:publish` does: a manifest with any problem publishes nothing. */
async function publishManifest(db: Db, manifest: unknown, partnerId: number | null) {
  const { operations, problems } = checkManifest(manifest, checks);
  if (problems.length) return { problems, published: 0, unchanged: 0 };
  return { problems, ...(await publishOperations(db, operations, partnerId)) };
}

async function rowsOf(db: Db, hash: string): Promise<{ partner_id: number | null; retired: boolean; cost: number }[]> {
  return rows(
    db,
    sql`select partner_id, retired_at is not null as retired, cost from persisted_documents where sha256 = ${hash} order by partner_id nulls first`,
  );
}

const codeOf = (body: any) => body?.errors?.[0]?.extensions?.code;
const hashOnly = (query: string, variables: Record<string, unknown> = {}) => ({
  variables,
  extensions: { persistedQuery: { version: 1, sha256Hash: sha256(query) } },
});

describe('publishing manifests', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.destroy();
  });

  it('accepts a good manifest and prices each operation with its variables at their defaults', () => {
    const { operations, problems } = checkManifest(manifestOf([operationOf(QUOTE), operationOf(HISTORY), operationOf(CREATE_PORTFOLIO)]), checks);
    expect(problems).toEqual([]);
    expect(operations.map((o) => [o.name, o.type])).toEqual([
      ['Quote', 'query'],
      ['History', 'query'],
      ['CreatePortfolio', 'mutation'],
    ]);
    const history = parse(HISTORY);
    expect(operations[1].cost).toBe(checks.estimator.estimate(history, getOperationAST(history)!, { first: 5 }).cost);
    for (const o of operations) expect(o.cost).toBeGreaterThan(0);
  });

  it('refuses an id that is not the SHA-256 of its body', () => {
    const wrong = { ...operationOf(QUOTE), id: sha256(`${QUOTE} `) };
    const { operations, problems } = checkManifest(manifestOf([wrong]), checks);
    expect(operations).toEqual([]);
    expect(problems).toEqual([expect.stringMatching(/^Quote \(.*\): the id is not the SHA-256 of the body$/)]);

    const notHex = checkManifest(manifestOf([{ ...operationOf(QUOTE), id: 'Quote' }]), checks);
    expect(notHex.problems).toEqual([expect.stringMatching(/^operations\.0\.id: an id is the SHA-256 of the body/)]);
    expect(checkManifest({ format: 'something-else', version: 1, operations: [] }, checks).problems).toEqual([expect.stringMatching(/^format:/)]);
    expect(checkManifest(null, checks).problems).not.toEqual([]);
  });

  it('refuses documents that do not parse, do not validate, break a limit rule or hold two operations', () => {
    const broken = [
      `query Unparsable { instrument(symbol: "A") { symbol }`,
      `query NoSuchField { instrument(symbol: "A") { symbol doesNotExist } }`,
      `query MissingArgument { instrument { symbol } }`,
      `query TooDeep { viewer { portfolios(first: 1) { edges { node { trades(first: 1) { edges { node { instrument { latestForecast { model { name } } } } } } } } } } }`,
      `query Two { instruments { totalCount } } query Other { viewer { id } }`,
    ];
    const manifest = manifestOf(broken.map((body) => ({ id: sha256(body), name: /query (\w+)/.exec(body)![1], type: 'query' as const, body })));
    // depth as the request-time rule counts it, with a limit low enough for this schema's longest paths
    const { operations, problems } = checkManifest(manifest, checksFor(loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET, MAX_DEPTH: '8' })));
    expect(operations).toEqual([]);
    expect(problems.find((p) => p.startsWith('TooDeep'))).toMatch(/depth/i);
    expect(problems.find((p) => p.startsWith('Unparsable'))).toMatch(/does not parse/);
    expect(problems.find((p) => p.startsWith('NoSuchField'))).toMatch(/Cannot query field "doesNotExist" on type "Instrument"/);
    expect(problems.find((p) => p.startsWith('MissingArgument'))).toMatch(/argument "symbol"/);
    expect(problems.some((p) => p.startsWith('Two') && /exactly one operation/.test(p))).toBe(true);
    // every broken document is named in the problems
    for (const body of broken) expect(problems.some((p) => p.startsWith(/query (\w+)/.exec(body)![1]))).toBe(true);
  });

  it('refuses at publish time an operation estimated over MAX_COST', () => {
    const document = parse(EXPENSIVE);
    const cost = checks.estimator.estimate(document, getOperationAST(document)!, {}).cost;
    expect(cost).toBeGreaterThan(config.limits.maxCost);
    const { operations, problems } = checkManifest(manifestOf([operationOf(EXPENSIVE)]), checks);
    expect(operations).toEqual([]);
    expect(problems).toEqual([expect.stringContaining(`estimated cost ${cost} is above the limit of ${config.limits.maxCost}`)]);
  });

  it('refuses a body whose type differs from the declared one', () => {
    const lying = [
      { ...operationOf(QUOTE), type: 'mutation' as const },
      { ...operationOf(CREATE_PORTFOLIO), type: 'query' as const },
    ];
    const { operations, problems } = checkManifest(manifestOf(lying), checks);
    expect(operations).toEqual([]);
    expect(problems).toEqual([
      expect.stringMatching(/^Quote .*declared a mutation, the body is a query$/),
      expect.stringMatching(/^CreatePortfolio .*declared a query, the body is a mutation$/),
    ]);
  });

  it('stores nothing of a refused manifest, and nothing of a publication that fails half-way', async () => {
    const good = operationOf(NAME_ONLY);
    const manifest = manifestOf([good, { ...operationOf(QUOTE), id: sha256('not the body') }]);
    const result = await publishManifest(database.db, manifest, null);
    expect(result.problems).toHaveLength(1);
    expect(await rowsOf(database.db, good.id)).toEqual([]);

    // publishOperations itself is one transaction: the second statement fails, the first is undone
    const first: CheckedOperation = { ...operationOf(HISTORY), cost: 5 };
    const failing: CheckedOperation = { ...operationOf(QUOTE), cost: 1.5 }; // not an integer: the insert fails
    await expect(publishOperations(database.db, [first, failing], null)).rejects.toThrow();
    expect(await rowsOf(database.db, first.id)).toEqual([]);
    expect(await rowsOf(database.db, failing.id)).toEqual([]);
  });

  it('publishes again without changing anything, and brings back a retired operation', async () => {
    const { partner } = await createPartner(database.db, `twice-${unique()}`);
    const manifest = manifestOf([operationOf(QUOTE), operationOf(HISTORY)]);
    expect(await publishManifest(database.db, manifest, partner.id)).toEqual({ problems: [], published: 2, unchanged: 0 });
    expect(await publishManifest(database.db, manifest, partner.id)).toEqual({ problems: [], published: 0, unchanged: 2 });
    // for every partner is another publication of the same documents
    expect(await publishManifest(database.db, manifest, null)).toEqual({ problems: [], published: 2, unchanged: 0 });
    expect(await rowsOf(database.db, sha256(QUOTE))).toEqual([
      { partner_id: null, retired: false, cost: expect.any(Number) },
      { partner_id: partner.id, retired: false, cost: expect.any(Number) },
    ]);

    expect(await retireDocument(database.db, sha256(QUOTE), partner.id)).toBe(1);
    expect(await retireDocument(database.db, sha256(QUOTE), partner.id)).toBe(0);
    expect((await rowsOf(database.db, sha256(QUOTE))).map((r) => r.retired)).toEqual([false, true]);
    expect(await publishManifest(database.db, manifest, partner.id)).toEqual({ problems: [], published: 1, unchanged: 1 });
    expect((await rowsOf(database.db, sha256(QUOTE))).map((r) => r.retired)).toEqual([false, false]);
    const listed = (await listDocuments(database.db, partner.id)).map((d) => [d.name, d.partner, d.retired]);
    expect(listed).toEqual([
      ['History', partner.name, false],
      ['Quote', partner.name, false],
    ]);
  });

  it('leaves exactly one row per operation when the same manifest is published ten times at once', async () => {
    const { partner } = await createPartner(database.db, `concurrent-${unique()}`);
    const bodies = [0, 1, 2].map(
      (i) => `query Concurrent${i}($symbol: String!) { instrument(symbol: $symbol) { symbol${i ? ' name' : ''}${i > 1 ? ' currency' : ''} } }`,
    );
    const { operations, problems } = checkManifest(manifestOf(bodies.map(operationOf)), checks);
    expect(problems).toEqual([]);
    for (const partnerId of [null, partner.id]) {
      const results = await Promise.all(Array.from({ length: 10 }, () => publishOperations(database.db, operations, partnerId)));
      expect(results.reduce((n, r) => n + r.published, 0)).toBe(operations.length);
      expect(results.reduce((n, r) => n + r.unchanged, 0)).toBe(9 * operations.length);
    }
    for (const op of operations) {
      expect(await rowsOf(database.db, op.id)).toEqual([
        { partner_id: null, retired: false, cost: op.cost },
        { partner_id: partner.id, retired: false, cost: op.cost },
      ]);
    }
  });

  it('checks published documents against the schema: costs now and then, and the ones that no longer validate', async () => {
    // checkPublished reads every live document of a database: this test has a database of its own
    const own = await createTestDatabase();
    const db = own.db;
    try {
      const { partner } = await createPartner(db, `checked-${unique()}`);
      await publishManifest(db, manifestOf([operationOf(QUOTE), operationOf(HISTORY)]), partner.id);
      await publishManifest(db, manifestOf([operationOf(NAME_ONLY)]), null);
      await retireDocument(db, sha256(NAME_ONLY), null); // retired: not checked
      // published under an older schema: the field is gone now
      const gone = `query Vanished { instrument(symbol: "IBM") { symbol dividendYield } }`;
      await db.insert(persistedDocuments).values({ sha256: sha256(gone), partnerId: null, name: 'Vanished', type: 'query', body: gone, cost: 2 });

      const report = await checkPublished(db, checks);
      expect(report.map((d) => d.name)).toEqual(['Vanished', 'History', 'Quote']);
      const [vanished, history, quote] = report;
      expect(vanished).toMatchObject({ partner: null, cost: 2, retired: false });
      expect(vanished.problems).toEqual([expect.stringContaining('Cannot query field "dividendYield" on type "Instrument"')]);
      for (const d of [history, quote]) {
        expect(d.partner).toBe(partner.name);
        expect(d.problems).toEqual([]);
        expect(d.currentCost).toBe(d.cost);
        expect(d.cost).toBeGreaterThan(0);
      }
      // with other weights (here: a lower limit) the same documents are reported, not silently dropped
      const stricter = checkPublished(db, { ...checks, maxCost: 1 });
      expect((await stricter).filter((d) => d.problems.length).map((d) => d.name)).toEqual(['Vanished', 'History', 'Quote']);
    } finally {
      await own.destroy();
    }
  });
});

describe('trusted documents over HTTP', () => {
  let database: TestDatabase;
  let server: TestServer;
  /** The same database behind a server that keeps key and document lookups (no SQL once warm). */
  let cached: TestServer;
  let symbol: string;
  let a: { id: number; name: string; key: string };
  let b: { id: number; name: string; key: string };
  const B_ONLY = `query BOnly($symbol: String!) { instrument(symbol: $symbol) { symbol currency } }`;
  const FOR_ALL = `query ForAll($symbol: String!) { instrument(symbol: $symbol) { name assetClass } }`;
  const A_ONLY = `query AOnly($symbol: String!) { instrument(symbol: $symbol) { id symbol } }`;
  const ids = Object.fromEntries([QUOTE, B_ONLY, FOR_ALL, A_ONLY, NAME_ONLY].map((body) => [operationOf(body).name, sha256(body)]));

  /** graphql-request as a partner: the X-Api-Key header, and the manifest's id instead of the text. */
  function partnerClient(key: string, sent: unknown[] = [], url = server.url) {
    return new GraphQLClient(url, {
      headers: { 'x-api-key': key },
      requestMiddleware: (request) => {
        const body = JSON.parse(request.body as string);
        const { query: _query, ...rest } = body;
        const hashed = { ...rest, extensions: { persistedQuery: { version: 1, sha256Hash: ids[body.operationName] } } };
        sent.push(hashed);
        return { ...request, body: JSON.stringify(hashed) };
      },
    });
  }

  const refusal = async (promise: Promise<unknown>) => {
    const e = await promise.then(
      () => null,
      (e: unknown) => e,
    );
    expect(e).toBeInstanceOf(ClientError);
    const { response } = e as ClientError;
    return { status: response.status, code: response.errors?.[0]?.extensions?.code, data: response.data };
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    symbol = (await seed(database.db).instrument(['50', '52.25'])).symbol;
    server = await startTestServer(database, { PARTNER_CACHE_TTL_MS: '0' });
    cached = await startTestServer(database, { PARTNER_CACHE_TTL_MS: '3600000' });
    const pa = await createPartner(database.db, `pq-a-${unique()}`);
    const pb = await createPartner(database.db, `pq-b-${unique()}`);
    a = { id: pa.partner.id, name: pa.partner.name, key: pa.key };
    b = { id: pb.partner.id, name: pb.partner.name, key: pb.key };
    expect((await publishManifest(database.db, manifestOf([operationOf(QUOTE), operationOf(A_ONLY)]), a.id)).published).toBe(2);
    expect((await publishManifest(database.db, manifestOf([operationOf(B_ONLY)]), b.id)).published).toBe(1);
    expect((await publishManifest(database.db, manifestOf([operationOf(FOR_ALL)]), null)).published).toBe(1);
  });
  afterAll(async () => {
    await cached?.stop();
    await server?.stop();
    await database?.destroy();
  });

  it("runs a partner's published operation with graphql-request sending only the manifest id", async () => {
    const sent: any[] = [];
    const client = partnerClient(a.key, sent);
    const data = await client.request<any>(QUOTE, { symbol });
    expect(data.instrument).toMatchObject({ symbol, name: `Test ${symbol}`, latestPrice: { close: '52.25' } });
    expect(sent).toEqual([{ operationName: 'Quote', variables: { symbol }, extensions: { persistedQuery: { version: 1, sha256Hash: sha256(QUOTE) } } }]);
    // the text the client holds need not be the trusted one, only its name: the server runs its own copy
    const differentlyWritten = `query Quote($symbol: String!) { instrument(symbol: $symbol) { symbol } }`;
    expect((await client.request<any>(differentlyWritten, { symbol })).instrument.latestPrice.close).toBe('52.25');
  });

  it('refuses a partner the hash of a document published only for another partner', async () => {
    const refused = await refusal(partnerClient(a.key).request(B_ONLY, { symbol }));
    expect(refused).toMatchObject({ status: 200, code: 'PERSISTED_QUERY_NOT_FOUND' });
    expect(refused.data).toBeFalsy();
    // sending the text along does not make it trusted
    const withText = await server.post({ query: B_ONLY, ...hashOnly(B_ONLY, { symbol }) }, { 'x-api-key': a.key });
    expect(withText.status).toBe(403);
    expect(codeOf(withText.body)).toBe('PERSISTED_QUERY_REQUIRED');
    // and the other way round
    expect(await refusal(partnerClient(b.key).request(A_ONLY, { symbol }))).toMatchObject({ code: 'PERSISTED_QUERY_NOT_FOUND' });
    // while B runs its own
    expect((await partnerClient(b.key).request<any>(B_ONLY, { symbol })).instrument).toEqual({ symbol, currency: 'USD' });
  });

  it('runs a trusted document by GET too, with the hash in the query string', async () => {
    const url = new URL(server.url);
    url.searchParams.set('variables', JSON.stringify({ symbol }));
    url.searchParams.set('extensions', JSON.stringify(hashOnly(QUOTE).extensions));
    const res = await fetch(url, { headers: { 'x-api-key': a.key, 'apollo-require-preflight': 'true' } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.errors).toBeUndefined();
    expect(body.data.instrument).toMatchObject({ symbol, latestPrice: { close: '52.25' } });
    // B may not, by GET or otherwise
    const other = await fetch(url, { headers: { 'x-api-key': b.key, 'apollo-require-preflight': 'true' } });
    expect(codeOf(await other.json())).toBe('PERSISTED_QUERY_NOT_FOUND');
  });

  it('runs a document published for all partners for each of them', async () => {
    for (const key of [a.key, b.key]) {
      const data = await partnerClient(key).request<any>(FOR_ALL, { symbol });
      expect(data.instrument).toEqual({ name: `Test ${symbol}`, assetClass: 'EQUITY' });
    }
  });

  it("refuses a partner's free-form query with PERSISTED_QUERY_REQUIRED, running no SQL", async () => {
    const freeForm = new GraphQLClient(cached.url, { headers: { 'x-api-key': a.key } });
    // one trusted call first: the cached server keeps the key's lookup from then on
    expect((await partnerClient(a.key, [], cached.url).request<any>(FOR_ALL, { symbol })).instrument.assetClass).toBe('EQUITY');

    const { result, statements } = await cached.countSql(() => refusal(freeForm.request(`{ instruments { nodes { symbol } } }`)));
    expect(result).toMatchObject({ status: 403, code: 'PERSISTED_QUERY_REQUIRED' });
    expect(statements).toBe(0);
    // the trusted text itself, sent as a plain query, is free-form too
    const asText = await cached.countSql(() => refusal(freeForm.request(QUOTE, { symbol })));
    expect(asText.result).toMatchObject({ status: 403, code: 'PERSISTED_QUERY_REQUIRED' });
    expect(asText.statements).toBe(0);
    // with every lookup made afresh, only the credential is looked up
    const fresh = await server.countSql(() => server.post({ query: '{ instruments { nodes { symbol } } }' }, { 'x-api-key': a.key }));
    expect(fresh.result.status).toBe(403);
    expect(codeOf(fresh.result.body)).toBe('PERSISTED_QUERY_REQUIRED');
    expect(fresh.statements).toBe(1);
  });

  it("refuses a partner's unknown hash sent with its query, and does not register it", async () => {
    const novel = `query Novel($symbol: String!) { instrument(symbol: $symbol) { symbol name currency } }`;
    const withQuery = await server.post({ query: novel, ...hashOnly(novel, { symbol }) }, { 'x-api-key': a.key });
    expect(withQuery.status).toBe(403);
    expect(codeOf(withQuery.body)).toBe('PERSISTED_QUERY_REQUIRED');
    expect(withQuery.body.data).toBeUndefined();

    const after = await server.post(hashOnly(novel, { symbol }), { 'x-api-key': a.key });
    expect(after.status).toBe(200);
    expect(codeOf(after.body)).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect(after.body.data).toBeUndefined();

    // an ordinary client registering it through APQ does not make it trusted for partners
    const apq = await server.post({ query: novel, ...hashOnly(novel, { symbol }) });
    expect(apq.status).toBe(200);
    expect(apq.body.data.instrument.symbol).toBe(symbol);
    expect((await server.post(hashOnly(novel, { symbol }))).body.data.instrument.symbol).toBe(symbol);
    const stillRefused = await server.post(hashOnly(novel, { symbol }), { 'x-api-key': a.key });
    expect(codeOf(stillRefused.body)).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect(await rowsOf(database.db, sha256(novel))).toEqual([]);
  });

  it('stops a retired document for the partner at once, and brings it back when published again', async () => {
    const client = partnerClient(a.key);
    expect((await client.request<any>(A_ONLY, { symbol })).instrument.symbol).toBe(symbol);
    expect(await retireDocument(database.db, sha256(A_ONLY), a.id)).toBe(1);
    const refused = await refusal(client.request(A_ONLY, { symbol }));
    expect(refused).toMatchObject({ status: 200, code: 'PERSISTED_QUERY_NOT_FOUND' });
    // retiring it for A leaves the documents of others alone
    expect((await client.request<any>(FOR_ALL, { symbol })).instrument.assetClass).toBe('EQUITY');

    expect(await publishManifest(database.db, manifestOf([operationOf(A_ONLY)]), a.id)).toMatchObject({ published: 1, unchanged: 0 });
    expect((await client.request<any>(A_ONLY, { symbol })).instrument.symbol).toBe(symbol);
  });

  it("runs a manifest made by Apollo's generator from .graphql files, published for the partner", async () => {
    const example = fileURLToPath(new URL('../deploy/partner-example/', import.meta.url));
    // the committed example manifest is what the generator makes of the example's operations
    const generatedExample = await generatePersistedQueryManifest({ documents: [join(example, 'operations/**/*.graphql')] }, undefined);
    expect(generatedExample).toEqual(JSON.parse(await readFile(join(example, 'persisted-query-manifest.json'), 'utf8')));

    const dir = await mkdtemp(join(tmpdir(), 'foliograph-pq-'));
    try {
      await writeFile(join(dir, 'fields.graphql'), 'fragment QuoteFields on Instrument {\n  symbol\n  latestPrice { date close }\n}\n');
      await writeFile(
        join(dir, 'dashboard.graphql'),
        'query Dashboard($symbol: String!) {\n  instrument(symbol: $symbol) { ...QuoteFields name }\n  instruments(first: 5) { totalCount }\n}\n',
      );
      const manifest = await generatePersistedQueryManifest({ documents: [join(dir, '*.graphql')] }, undefined);
      expect(manifest.operations).toHaveLength(1);
      const [op] = manifest.operations;
      expect(op).toMatchObject({ name: 'Dashboard', type: 'query' });
      expect(op.id).toBe(createHash('sha256').update(op.body).digest('hex'));
      expect(op.body).toContain('fragment QuoteFields on Instrument');

      const { partner, key } = await createPartner(database.db, `generated-${unique()}`);
      expect(await publishManifest(database.db, manifest, partner.id)).toEqual({ problems: [], published: 1, unchanged: 0 });
      expect(await publishManifest(database.db, generatedExample, partner.id)).toEqual({ problems: [], published: 2, unchanged: 0 });

      // graphql-request with a custom fetch that swaps the text for the manifest's id
      const byName = Object.fromEntries([...manifest.operations, ...generatedExample.operations].map((o) => [o.name, o.id]));
      const sent: any[] = [];
      const client = new GraphQLClient(server.url, {
        headers: { 'x-api-key': key },
        fetch: async (url, init) => {
          const { query: _query, ...body } = JSON.parse(String(init?.body));
          const hashed = { ...body, extensions: { persistedQuery: { version: 1, sha256Hash: byName[body.operationName] } } };
          sent.push(hashed);
          return fetch(url, { ...init, body: JSON.stringify(hashed) });
        },
      });
      const data = await client.request<any>(`query Dashboard($symbol: String!) { instrument(symbol: $symbol) { symbol } }`, { symbol });
      expect(data.instrument).toMatchObject({ symbol, name: `Test ${symbol}`, latestPrice: { close: '52.25' }, __typename: 'Instrument' });
      expect(data.instruments.totalCount).toBe(1);
      const quote = await client.request<any>('query Quote($symbol: String!) { instrument(symbol: $symbol) { symbol } }', { symbol });
      expect(quote.instrument).toMatchObject({ symbol, latestPrice: { close: '52.25' }, latestForecast: null });
      for (const body of sent) expect(body.query).toBeUndefined();
      expect(sent.map((s) => s.extensions.persistedQuery.sha256Hash)).toEqual([byName.Dashboard, byName.Quote]);
      // partner A, for whom it was not published, cannot run it
      expect(await refusal(partnerClient(a.key).request(NAME_ONLY, { symbol }))).toMatchObject({ code: 'PERSISTED_QUERY_NOT_FOUND' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('automatic persisted queries for ordinary clients', () => {
  let database: TestDatabase;
  let server: TestServer;
  let symbol: string;

  interface Seen {
    method: string;
    url: URL;
    body: any;
    status: number;
    response: any;
  }

  /** A fetch that records every request and its answer, as Apollo Client sends them. */
  function recordingFetch(seen: Seen[]): typeof fetch {
    return async (input, init) => {
      const response = await fetch(input, init);
      const text = await response.clone().text();
      seen.push({
        method: init?.method ?? 'GET',
        url: new URL(String(input)),
        body: typeof init?.body === 'string' ? JSON.parse(init.body) : undefined,
        status: response.status,
        response: JSON.parse(text),
      });
      return response;
    };
  }

  function apolloClient(seen: Seen[], options: { useGETForHashedQueries?: boolean; generateHash?: () => string } = {}) {
    const hashing = options.generateHash
      ? { generateHash: options.generateHash }
      : { sha256: (text: string) => createHash('sha256').update(text).digest('hex') };
    return new ApolloClient({
      cache: new InMemoryCache(),
      link: new PersistedQueryLink({ ...hashing, useGETForHashedQueries: options.useGETForHashedQueries }).concat(
        new HttpLink({ uri: server.url, fetch: recordingFetch(seen) }),
      ),
    });
  }

  const hashOf = (s: Seen) =>
    s.body?.extensions?.persistedQuery?.sha256Hash ?? JSON.parse(s.url.searchParams.get('extensions') ?? '{}').persistedQuery?.sha256Hash;
  const queryOf = (s: Seen) => s.body?.query ?? s.url.searchParams.get('query') ?? undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    symbol = (await seed(database.db).instrument(['7', '7.5'])).symbol;
    server = await startTestServer(database);
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  it('misses, registers, then sends the hash alone (POST)', async () => {
    const seen: Seen[] = [];
    const client = apolloClient(seen);
    const query = gql`
      query ApqPost($symbol: String!) {
        instrument(symbol: $symbol) {
          symbol
          latestPrice {
            close
          }
        }
      }
    `;

    const first = await client.query({ query, variables: { symbol }, fetchPolicy: 'network-only' });
    expect(first.data).toMatchObject({ instrument: { symbol, latestPrice: { close: '7.5' } } });
    expect(seen).toHaveLength(2);
    const [miss, register] = seen;
    expect(miss).toMatchObject({ method: 'POST', status: 200 });
    expect(queryOf(miss)).toBeUndefined();
    expect(miss.response.errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect(register.method).toBe('POST');
    expect(register.status).toBe(200);
    expect(queryOf(register)).toContain('query ApqPost');
    expect(hashOf(register)).toBe(sha256(queryOf(register)));
    expect(hashOf(miss)).toBe(hashOf(register));

    const second = await client.query({ query, variables: { symbol }, fetchPolicy: 'network-only' });
    expect(second.data).toEqual(first.data);
    expect(seen).toHaveLength(3);
    expect(seen[2]).toMatchObject({ method: 'POST', status: 200 });
    expect(queryOf(seen[2])).toBeUndefined();
    expect(hashOf(seen[2])).toBe(hashOf(register));
    expect(seen[2].response.data).toEqual(register.response.data);

    // another client, knowing nothing, is answered from the hash at once
    const other: Seen[] = [];
    await apolloClient(other).query({ query, variables: { symbol }, fetchPolicy: 'network-only' });
    expect(other).toHaveLength(1);
    expect(queryOf(other[0])).toBeUndefined();
  });

  it('misses, registers, then sends the hash alone by GET with useGETForHashedQueries', async () => {
    const seen: Seen[] = [];
    const client = apolloClient(seen, { useGETForHashedQueries: true });
    const query = gql`
      query ApqGet($symbol: String!) {
        instrument(symbol: $symbol) {
          name
        }
      }
    `;

    const first = await client.query({ query, variables: { symbol }, fetchPolicy: 'network-only' });
    expect(first.data).toMatchObject({ instrument: { name: `Test ${symbol}` } });
    expect(seen.map((s) => [s.method, s.status])).toEqual([
      ['GET', 200],
      ['POST', 200],
    ]);
    expect(queryOf(seen[0])).toBeUndefined();
    expect(seen[0].response.errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect(queryOf(seen[1])).toContain('query ApqGet');

    await client.query({ query, variables: { symbol }, fetchPolicy: 'network-only' });
    expect(seen).toHaveLength(3);
    expect(seen[2].method).toBe('GET');
    expect(seen[2].status).toBe(200);
    expect(queryOf(seen[2])).toBeUndefined();
    expect(hashOf(seen[2])).toBe(hashOf(seen[1]));
    expect(JSON.parse(seen[2].url.searchParams.get('variables')!)).toEqual({ symbol });
    expect(seen[2].response.data).toEqual(seen[1].response.data);
  });

  it('answers 400 PERSISTED_QUERY_HASH_MISMATCH to a hash that is not its query’s, registering nothing', async () => {
    const text = `query Mismatch($symbol: String!) { instrument(symbol: $symbol) { currency } }`;
    const wrong = sha256('{ __typename }');
    const post = await server.countSql(() =>
      server.post({ query: text, variables: { symbol }, extensions: { persistedQuery: { version: 1, sha256Hash: wrong } } }),
    );
    expect(post.result.status).toBe(400);
    expect(codeOf(post.result.body)).toBe('PERSISTED_QUERY_HASH_MISMATCH');
    expect(post.result.body.data).toBeUndefined();
    expect(post.statements).toBe(0);

    const url = new URL(server.url);
    url.searchParams.set('query', text);
    url.searchParams.set('variables', JSON.stringify({ symbol }));
    url.searchParams.set('extensions', JSON.stringify({ persistedQuery: { version: 1, sha256Hash: wrong } }));
    const get = await fetch(url, { headers: { 'apollo-require-preflight': 'true' } });
    expect(get.status).toBe(400);
    expect(codeOf(await get.json())).toBe('PERSISTED_QUERY_HASH_MISMATCH');

    // the wrong hash was not registered for the query
    const after = await server.post({ variables: { symbol }, extensions: { persistedQuery: { version: 1, sha256Hash: wrong } } });
    expect(codeOf(after.body)).toBe('PERSISTED_QUERY_NOT_FOUND');

    // Apollo Client with a broken hash function: its retry with the text is refused the same way
    const seen: Seen[] = [];
    const client = apolloClient(seen, { generateHash: () => wrong });
    await expect(client.query({ query: gql(text), variables: { symbol }, fetchPolicy: 'network-only' })).rejects.toThrow();
    expect(seen.map((s) => s.status)).toEqual([200, 400]);
    expect(seen[0].response.errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect(seen[1].response.errors[0].extensions.code).toBe('PERSISTED_QUERY_HASH_MISMATCH');
  });
});

describe('APQ registrations paid from the caller’s budget', () => {
  let database: TestDatabase;
  let server: TestServer;
  beforeAll(async () => {
    database = await createTestDatabase();
    // room for two registrations (1,000 + the text's bytes each) and the queries themselves, not three
    server = await startTestServer(database, { RATE_LIMIT_COST_PER_MINUTE: '2400' });
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  it('registers while the budget allows, then runs the query unregistered; a held hash costs nothing more', async () => {
    const texts = ['query R1 { __typename }', 'query R2 { __typename }', 'query R3 { __typename }'];
    const metric = async () => {
      const text = await (await fetch(new URL('/metrics', server.url))).text();
      return Object.fromEntries([...text.matchAll(/^foliograph_apq_registrations_total\{outcome="(\w+)"\} (\d+)/gm)].map((m) => [m[1], Number(m[2])]));
    };
    for (const query of texts) {
      const res = await server.post({ query, extensions: { persistedQuery: { version: 1, sha256Hash: sha256(query) } } });
      expect([res.status, res.body.data], query).toEqual([200, { __typename: 'Query' }]);
    }
    expect(await metric()).toEqual({ registered: 2, refused: 1 });
    // the first two are held, the third was not kept: its client keeps sending the text
    const [first, second, third] = await Promise.all(texts.map((query) => server.post(hashOnly(query))));
    expect(first.body.data).toEqual({ __typename: 'Query' });
    expect(second.body.data).toEqual({ __typename: 'Query' });
    expect(codeOf(third.body)).toBe('PERSISTED_QUERY_NOT_FOUND');
    // sending a held document's text again is no new registration
    await server.post({ query: texts[0], extensions: { persistedQuery: { version: 1, sha256Hash: sha256(texts[0]) } } });
    expect(await metric()).toEqual({ registered: 2, refused: 1 });
  });
});
