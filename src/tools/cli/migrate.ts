import { runCommand, say } from './common.js';

// npm run db:migrate — applies pending migrations to the configured database.
await runCommand(
  async ({ database }) => {
    say(`database: ${database.driver}, up to date`);
  },
  { migrate: true },
);
