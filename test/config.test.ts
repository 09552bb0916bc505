import { describe, expect, it } from 'vitest';
import { ConfigError, DEV_JWT_SECRET, loadConfig } from '../src/config.js';

describe('configuration', () => {
  it('settles every default in one place', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      env: 'development',
      port: 4000,
      host: '127.0.0.1',
      databaseUrl: undefined,
      pgliteDataDir: '.data/pglite',
      dbPoolMax: 10,
      jwtSecret: DEV_JWT_SECRET,
      jwtSecretIsDefault: true,
      corsOrigins: [],
      readReplicaUrls: [],
      logLevel: 'info',
      allowIntrospection: false,
    });
  });

  it('parses lists and numbers, and treats empty variables as unset', () => {
    const c = loadConfig({ PORT: '8080', CORS_ORIGINS: 'https://a.example, https://b.example', READ_REPLICA_URLS: '', DB_POOL_MAX: '3', DATABASE_URL: '' });
    expect(c.port).toBe(8080);
    expect(c.corsOrigins).toEqual(['https://a.example', 'https://b.example']);
    expect(c.readReplicaUrls).toEqual([]);
    expect(c.dbPoolMax).toBe(3);
    expect(c.databaseUrl).toBeUndefined();
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
