import { ensureDefaultModel, generateForecasts } from '../forecasting/generate.js';
import { option, runCommand, say } from './common.js';

// npm run forecasts:generate [-- --model NAME] — runs active model versions and stores their forecasts.
const args = process.argv.slice(2);
await runCommand(
  async ({ database }) => {
    await ensureDefaultModel(database.db);
    const result = await generateForecasts(database.db, { model: option(args, 'model') });
    say(`ran ${result.models} model(s) over ${result.instruments} instruments`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  },
  { migrate: true },
);
