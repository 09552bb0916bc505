import { defineConfig } from 'drizzle-kit';

// Migrations are generated from the Drizzle schema and applied by src/db/migrate.ts (at start and by
// `npm run db:migrate`), the same files on PGlite and PostgreSQL. Never edit them by hand.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './migrations',
  strict: true,
});
