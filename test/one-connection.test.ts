import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, onPostgres, type TestDatabase } from './helpers/db.js';

// The probe, the idle count and the WAL position each run on a connection of their own
// (src/db/one-connection.ts). Only PostgreSQL can refuse connections and come back.
describe.skipIf(!onPostgres)('connections of their own, after the database refused them', () => {
  let database: TestDatabase;
  let admin: postgres.Sql;
  let name: string;

  beforeAll(async () => {
    database = await createTestDatabase({ poolMax: 2 });
    name = new URL(database.url!).pathname.slice(1);
    admin = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await admin?.unsafe(`alter database "${name}" allow_connections true`).catch(() => {});
    await admin?.end();
    await database?.destroy();
  });

  /** Closes every connection to the test's database and refuses new ones, until `allow`. */
  const refuse = async () => {
    await admin.unsafe(`alter database "${name}" allow_connections false`);
    await admin.unsafe(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name}' and pid <> pg_backend_pid()`);
  };
  const allow = () => admin.unsafe(`alter database "${name}" allow_connections true`);

  // postgres.js 3.4.9 left a one-connection client's next query waiting for ever here (its first
  // failed with ECONNRESET, the next never settled): the probe said "down" long after the database
  // came back. Each round, the first statement after the database allows connections again answers.
  it.each([
    ['the availability probe (/readyz)', () => database.ping()],
    ['the WAL position', () => database.walPosition!()],
    ['the idle count (/metrics)', () => database.idleConnections()],
  ])('%s answers at once when the database comes back, round after round', async (_, statement) => {
    await statement();
    for (let round = 0; round < 6; round++) {
      await refuse();
      await expect(statement()).rejects.toThrow();
      await expect(statement()).rejects.toThrow();
      await allow();
      await statement(); // rejects, and fails the test, if it does not answer
    }
  });
});
