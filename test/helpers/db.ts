import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { createDatabase, type Database } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';

export interface TestDatabase extends Database {
  /** The PostgreSQL URL of this test's own database; undefined on PGlite. */
  url?: string;
  /** Closes the database and, on PostgreSQL, drops it. */
  destroy(): Promise<void>;
}

export const onPostgres = Boolean(process.env.DATABASE_URL);

/**
 * A migrated, empty database of its own: PGlite in memory, or (with DATABASE_URL) a new database on
 * that server, so test files never share rows and can run in parallel.
 */
export async function createTestDatabase(options: { poolMax?: number } = {}): Promise<TestDatabase> {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const database = await createDatabase({ pgliteDataDir: 'memory://', dbPoolMax: 1 });
    await migrate(database);
    return { ...database, destroy: () => database.close() };
  }
  const name = `foliograph_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const database = await createDatabase({ databaseUrl: url.toString(), pgliteDataDir: 'memory://', dbPoolMax: options.poolMax ?? 10 });
  await migrate(database);
  return {
    ...database,
    url: url.toString(),
    async destroy() {
      await database.close();
      const cleanup = postgres(adminUrl, { max: 1, onnotice: () => {} });
      await cleanup.unsafe(`drop database if exists "${name}" with (force)`);
      await cleanup.end();
    },
  };
}
