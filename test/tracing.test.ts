import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// Spans as an OTLP exporter would receive them: an operation span, with a child per loader batch.
describe('tracing', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  let database: TestDatabase;
  let server: TestServer;
  let symbol: string;

  beforeAll(async () => {
    provider.register();
    database = await createTestDatabase();
    symbol = (await seed(database.db).instrument(['10'])).symbol;
    server = await startTestServer(database, { RESPONSE_CACHE: 'off', HOT_CACHE_TTL_MS: '0' });
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
    await provider.shutdown();
  });

  it('names the operation span and nests each loader batch under it', async () => {
    exporter.reset();
    await server.post({ query: 'query Quote($s: String!) { instrument(symbol: $s) { symbol latestPrice { close } } }', variables: { s: symbol } });
    const spans = exporter.getFinishedSpans();
    const operation = spans.find((s) => s.name === 'graphql query Quote');
    expect(operation?.attributes).toMatchObject({ 'graphql.operation.name': 'Quote', 'graphql.operation.type': 'query', 'foliograph.outcome': 'ok' });
    const loaders = spans.filter((s) => s.name.startsWith('loader '));
    expect(loaders.map((s) => s.name).sort()).toEqual(['loader instrumentBySymbol', 'loader latestPrice']);
    for (const span of loaders) {
      expect(span.parentSpanContext?.spanId).toBe(operation?.spanContext().spanId);
      expect(span.attributes['foliograph.keys']).toBe(1);
      // each batch's statement is a span under it, with its text and without its parameters
      const statements = spans.filter((s) => s.name === 'sql select' && s.parentSpanContext?.spanId === span.spanContext().spanId);
      expect(statements).toHaveLength(1);
      expect(statements[0].attributes['db.query.text']).toMatch(/^select /i);
    }
    expect(JSON.stringify(spans.map((s) => s.attributes))).not.toContain(symbol);
  });
});
