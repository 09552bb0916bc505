import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

// One suite, two drivers: PGlite in memory when DATABASE_URL is unset, else a fresh database per test
// file on that PostgreSQL server (see test/helpers/db.ts).
export default defineConfig({
  resolve: {
    // graphql ships CommonJS (index.js) and ESM (index.mjs); Node loads the former for every library,
    // Vite would pick the latter for our files, and graphql refuses types from "another realm".
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    env: { LOG_LEVEL: 'silent' },
  },
});
