import { GraphQLClient } from 'graphql-request';
import { signUserToken } from '../../src/admission/tokens.js';
import { loadConfig, type Config } from '../../src/config.js';
import { totalStatements } from '../../src/db/sql-stats.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { createApp, type App } from '../../src/app.js';
import type { TestDatabase } from './db.js';

export const TEST_SECRET = 'test-secret-with-enough-length-0123456789';

export interface TestServer {
  app: App;
  url: string;
  config: Config;
  /** A graphql-request client, signed in as `userId` when given. */
  client(userId?: number): Promise<GraphQLClient>;
  token(userId: number, expiresIn?: string): Promise<string>;
  /** POSTs a raw GraphQL request and returns status, headers and parsed body (for error cases). */
  post(body: unknown, headers?: Record<string, string>): Promise<{ status: number; headers: Headers; body: any }>;
  /** Statements this process sent while `fn` ran (one request at a time in a test file). */
  countSql<T>(fn: () => Promise<T>): Promise<{ result: T; statements: number }>;
  stop(): Promise<void>;
}

/** The real HTTP server on an ephemeral port over the test's database; nothing is mocked (a test may give its own logger, to read what is logged). */
export async function startTestServer(database: TestDatabase, env: Record<string, string> = {}, options: { logger?: Logger } = {}): Promise<TestServer> {
  // the cost recorder writes only when a test asks (its periodic write would land in SQL counts)
  const config = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', COST_FLUSH_INTERVAL_MS: String(2 ** 31 - 1), ...env });
  const app = createApp({ config, database, logger: options.logger ?? createLogger('silent') });
  const url = await app.listen(0, '127.0.0.1');
  const token = (userId: number, expiresIn?: string) => signUserToken(config.auth.jwtSecret, userId, expiresIn);
  return {
    app,
    url,
    config,
    token,
    async client(userId) {
      const headers: Record<string, string> = userId ? { authorization: `Bearer ${await token(userId)}` } : {};
      return new GraphQLClient(url, { headers });
    },
    async post(body, headers = {}) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { raw: text };
      }
      return { status: res.status, headers: res.headers, body: parsed };
    },
    async countSql(fn) {
      const before = totalStatements();
      const result = await fn();
      return { result, statements: totalStatements() - before };
    },
    stop: () => app.stop(),
  };
}
