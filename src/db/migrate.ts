import { sql } from 'drizzle-orm';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import { migrationsDir } from '../paths.js';
import { rows, type Database } from './client.js';

/**
 * Applies pending migrations from migrations/ (drizzle-kit output). Both drivers' migrators run the
 * same dialect code, so one call serves both; several instances starting at once take turns.
 */
export async function migrate(database: Database): Promise<{ applied: number }> {
  const config = { migrationsFolder: migrationsDir };
  const total = readMigrationFiles(config).length;
  return database.exclusive(async () => {
    const before = await appliedCount(database);
    await migratePglite(database.db as unknown as PgliteDatabase<Record<string, never>>, config);
    return { applied: Math.max(0, total - before) };
  });
}

async function appliedCount(database: Database): Promise<number> {
  try {
    const [row] = await rows<{ n: number }>(database.db, sql`select count(*)::int as n from drizzle.__drizzle_migrations`);
    return Number(row?.n ?? 0);
  } catch {
    return 0; // first run: drizzle's bookkeeping table does not exist yet
  }
}
