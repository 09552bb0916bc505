import { seedDemo } from '../seed/demo.js';
import { seedScale } from '../seed/scale.js';
import { option, runCommand, say } from './common.js';

// npm run db:seed [-- --scale N] — the demo data set, and N× more synthetic users for load tests.
const args = process.argv.slice(2);
const scaleText = option(args, 'scale');
const scale = scaleText === undefined ? 0 : Number(scaleText);
if (!Number.isInteger(scale) || scale < 0 || scale > 1000) {
  say('error: --scale takes a whole number from 0 to 1000');
  process.exit(1);
}
await runCommand(
  async ({ database }) => {
    await seedDemo(database.db, say);
    if (scale > 0) await seedScale(database.db, scale, say);
    say('seed complete');
  },
  { migrate: true },
);
