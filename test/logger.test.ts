import { Writable } from 'node:stream';
import { sql } from 'drizzle-orm';
import { GraphQLError } from 'graphql';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/logger.js';
import { createTestDatabase, onPostgres, type TestDatabase } from './helpers/db.js';

// Statement parameters are what clients sent (names, idempotency keys, mutation input): a failing
// statement's error carries them in several places, and none may reach a log line.

const SECRET = 'secret-param-5f1c9a';

/** A logger writing into an array of parsed lines. */
function capture() {
  const lines: string[] = [];
  const logger = createLogger('info', 'test', new Writable({ write: (chunk, _, done) => (lines.push(String(chunk)), done()) }));
  return { logger, text: () => lines.join('') };
}

/** Runs a statement that fails at execution (division by zero) with SECRET among its parameters. */
async function failingStatement(database: TestDatabase): Promise<Error> {
  try {
    await database.db.execute(sql`select ${SECRET}::text as s, 1 / ${0}::int as boom`);
  } catch (e) {
    return e as Error;
  }
  throw new Error('the statement did not fail');
}

describe('logs of database errors', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.destroy();
  });

  it('carry the statement and the database error, but no parameter (DrizzleQueryError, its cause, a GraphQLError around it)', async () => {
    const e = await failingStatement(database);
    // what the driver hands us does carry the parameter, in several places
    expect(JSON.stringify({ message: e.message, params: (e as { params?: unknown }).params })).toContain(SECRET);

    const { logger, text } = capture();
    logger.error({ err: e }, 'unexpected error');
    logger.error({ err: new GraphQLError(e.message, { originalError: e, path: ['x'] }) }, 'unexpected error');
    logger.error({ err: (e as { cause?: unknown }).cause }, 'the cause alone');
    logger.error(e, 'an error as the first argument');
    const logged = text();
    expect(logged).not.toContain(SECRET);
    const first = JSON.parse(logged.split('\n')[0]);
    expect(first.err.message).toMatch(/^Failed query: select \$1::text as s, 1 \/ \$2::int as boom\nparams: \[redacted\]/);
    expect(first.err.message).toMatch(/division by zero/);
    expect(first.err.query).toBe('select $1::text as s, 1 / $2::int as boom');
    expect(first.err.type).toBe('DrizzleQueryError');
    expect(first.err.stack).toMatch(/params: \[redacted\]\n\s+at /);
  });

  it('carry no parameter the database quotes in its own message', async () => {
    const e = await database.db.execute(sql`select ${SECRET}::int as n`).then(
      () => null,
      (error: Error) => error,
    );
    expect(String((e as { cause?: Error }).cause?.message)).toContain(SECRET);
    const { logger, text } = capture();
    logger.error({ err: e }, 'unexpected error');
    expect(text()).not.toContain(SECRET);
    expect(JSON.parse(text()).err.message).toMatch(/invalid input syntax for type integer: "\[redacted\]"/);
  });

  it.skipIf(!onPostgres)('carry no postgres.js parameters, which its debug mode makes enumerable', async () => {
    const client = postgres(database.url!, { max: 1, debug: () => {}, onnotice: () => {} });
    try {
      const e = await client`select ${SECRET}::text as s, 1 / ${0}::int as boom`.then(
        () => null,
        (error: Error) => error,
      );
      expect(e).not.toBeNull();
      expect(JSON.stringify(e)).toContain(SECRET);
      const { logger, text } = capture();
      logger.error({ err: e }, 'unexpected error');
      expect(text()).not.toContain(SECRET);
      expect(JSON.parse(text()).err.message).toMatch(/division by zero/);
    } finally {
      await client.end();
    }
  });
});
