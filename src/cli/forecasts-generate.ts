import { ensureDefaultModel, generateForecasts } from '../forecasting/generate.js';
import { createResponseStore } from '../cache/store.js';
import { createLogger } from '../logger.js';
import { option, runCommand, say } from './common.js';

// npm run forecasts:generate [-- --model NAME] — runs active model versions and stores their forecasts.
const args = process.argv.slice(2);
await runCommand(
  async ({ config, database }) => {
    await ensureDefaultModel(database.db);
    const { touched, ...result } = await generateForecasts(database.db, { model: option(args, 'model') });
    say(`ran ${result.models} model(s) over ${result.instruments} instruments; ${touched.length} got new forecasts`);
    // servers drop their own copies on NOTIFY; the shared Redis tier is cleared from here
    if (config.redisUrl && touched.length) {
      const store = createResponseStore({ maxEntries: 1, maxBytes: 1, redisUrl: config.redisUrl, logger: createLogger('warn') });
      await store.invalidate(touched.map((id) => ({ typename: 'Instrument', id })));
      await store.close();
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
  },
  { migrate: true },
);
