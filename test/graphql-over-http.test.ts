import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditServer } from 'graphql-http';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// The GraphQL-over-HTTP specification's own audit (graphql-http), run against the real server.
describe('GraphQL over HTTP audit', () => {
  let database: TestDatabase;
  let server: TestServer;
  beforeAll(async () => {
    database = await createTestDatabase();
    server = await startTestServer(database, { MAX_DEPTH: '6' });
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  it('passes every MUST of the specification', async () => {
    const results = await auditServer({ url: server.url });
    const mustFailures = results.filter((r) => r.name.startsWith('MUST') && r.status !== 'ok').map((r) => `${r.name}: ${'reason' in r ? r.reason : ''}`);
    expect(mustFailures).toEqual([]);
    expect(results.filter((r) => r.name.startsWith('MUST')).length).toBeGreaterThan(10);
  });

  // The three MAYs left are GETs without a non-simple header: CSRF prevention refuses them on purpose.
  it('passes every SHOULD too', async () => {
    const results = await auditServer({ url: server.url });
    const notOk = results.filter((r) => r.name.startsWith('SHOULD') && r.status !== 'ok').map((r) => `${r.name}: ${'reason' in r ? r.reason : ''}`);
    expect(notOk).toEqual([]);
    expect(results.filter((r) => r.name.startsWith('SHOULD')).length).toBeGreaterThan(10);
  });

  it('answers a document error 200 to application/json clients and 400 under graphql-response+json; limit refusals stay 400', async () => {
    const documents = ['{ instruments { nodes { symbol password } } }', '{ instruments {', 'query Q($n: Int!) { instruments(first: $n) { totalCount } }'];
    for (const query of documents) {
      const body = JSON.stringify({ query, variables: { n: 'many' } });
      const legacy = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body });
      const modern = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
        body,
      });
      expect([legacy.status, modern.status], query).toEqual([200, 400]);
      const answer = (await legacy.json()) as any;
      expect(answer.data, query).toBeUndefined();
      expect(answer.errors[0].extensions.code, query).toBe('BAD_USER_INPUT');
    }
    // deeper than MAX_DEPTH=6: the contract's 400, whatever the client accepts
    const query = '{ viewer { portfolios { nodes { positions { nodes { instrument { latestForecast { model { name } } } } } } } } }';
    const res = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query }),
    });
    const answer = (await res.json()) as any;
    expect([res.status, answer.errors[0].extensions.code]).toEqual([400, 'QUERY_TOO_DEEP']);
  });
});
