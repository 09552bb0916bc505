import { describe, expect, it } from 'vitest';
import { ConfigError, DEV_JWT_SECRET, loadConfig } from '../src/config.js';

describe('configuration', () => {
  it('settles every default in one place', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      env: 'development',
      port: 4000,
      host: '127.0.0.1',
      logLevel: 'info',
      database: { url: undefined, pgliteDataDir: '.data/pglite', poolMax: 10, queueMax: 100, readReplicaUrls: [] },
      auth: { jwtSecret: DEV_JWT_SECRET, jwtSecretIsDefault: true },
      http: { corsOrigins: [] },
      limits: { allowIntrospection: false, requestTimeoutMs: 10_000, maxDepth: 12, maxCost: 50_000 },
      cache: { response: true },
    });
  });

  it('parses lists and numbers, and treats empty variables as unset', () => {
    const c = loadConfig({ PORT: '8080', CORS_ORIGINS: 'https://a.example, https://b.example', READ_REPLICA_URLS: '', DB_POOL_MAX: '3', DATABASE_URL: '' });
    expect(c.port).toBe(8080);
    expect(c.http.corsOrigins).toEqual(['https://a.example', 'https://b.example']);
    expect(c.database.readReplicaUrls).toEqual([]);
    expect(c.database.poolMax).toBe(3);
    expect(c.database.url).toBeUndefined();
  });

  it("settles the HTTP server's limits: tight timeouts, a connection cap under a 1,024 file limit, a 100 kB body", () => {
    expect(loadConfig({}).http).toMatchObject({
      maxBodyBytes: 100_000,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 20_000,
      keepAliveTimeoutMs: 5_000,
      maxConnections: 800,
    });
    expect(loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '500', HTTP_REQUEST_TIMEOUT_MS: '500' }).http.headersTimeoutMs).toBe(500);
    // node:http refuses a header deadline past the whole request's: so does the configuration, at start
    expect(() => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '30000' })).toThrow(/HTTP_HEADERS_TIMEOUT_MS must not be above HTTP_REQUEST_TIMEOUT_MS/);
    expect(() => loadConfig({ HTTP_MAX_CONNECTIONS: '0' })).toThrow(/HTTP_MAX_CONNECTIONS/);
  });

  it('settles the read replicas and the pooler: a lag the checks can measure, a direct URL only beside a pooled one', () => {
    expect(loadConfig({}).database).toMatchObject({ readReplicaMaxLagMs: 10_000, readReplicaCheckMs: 200, directUrl: undefined });
    expect(() => loadConfig({ READ_REPLICA_MAX_LAG_MS: '120000' })).toThrow(/READ_REPLICA_MAX_LAG_MS/);
    expect(() => loadConfig({ READ_REPLICA_CHECK_MS: '5' })).toThrow(/READ_REPLICA_CHECK_MS/);
    expect(() => loadConfig({ DATABASE_DIRECT_URL: 'postgres://db:5432/app' })).toThrow(/DATABASE_DIRECT_URL bypasses a pooler/);
    expect(loadConfig({ DATABASE_URL: 'postgres://pooler:6432/app', DATABASE_DIRECT_URL: 'postgres://db:5432/app' }).database.directUrl).toBe(
      'postgres://db:5432/app',
    );
    expect(loadConfig({ ADMISSION_MAX_EVENT_LOOP_DELAY_MS: '100' }).admission.maxEventLoopDelayMs).toBe(100);
  });

  it('refuses production without JWT_SECRET', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/JWT_SECRET is required/);
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'a-long-enough-production-secret' }).production).toBe(true);
  });

  it('reports every invalid variable at once', () => {
    try {
      loadConfig({ PORT: 'eighty', DB_POOL_MAX: '0', LOG_LEVEL: 'loud', DATABASE_URL: 'not a url' });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const problems = (e as ConfigError).problems.join('\n');
      for (const name of ['PORT', 'DB_POOL_MAX', 'LOG_LEVEL', 'DATABASE_URL']) expect(problems).toContain(name);
    }
  });
});
