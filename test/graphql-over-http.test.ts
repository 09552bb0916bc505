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
    server = await startTestServer(database);
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
});
