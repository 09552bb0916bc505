import { defineConfig } from 'vitest/config';

// One suite, two drivers: PGlite in memory when DATABASE_URL is unset, else a fresh database per test
// file on that PostgreSQL server (see test/helpers/db.ts).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    env: { LOG_LEVEL: 'silent' },
  },
});
