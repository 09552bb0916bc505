import { generateForecasts } from '../../domain/forecasting/generate.js';
import { ensureBuiltInModels } from '../../domain/forecasting/registry.js';
import { createLogger } from '../../observability/logger.js';
import { option, runCommand, say } from './common.js';
import { clearSharedInstrumentAnswers } from './shared-cache.js';

// npm run forecasts:generate [-- --model NAME [--version V]] — runs model versions and stores their forecasts.
const args = process.argv.slice(2);
await runCommand(
  async ({ config, database }) => {
    const logger = createLogger(config.logLevel, 'forecasts');
    await ensureBuiltInModels(database.db);
    const { touched, ...result } = await generateForecasts(database.db, {
      model: option(args, 'model'),
      version: option(args, 'version'),
      onTiming: (model, version, stage, seconds) => {
        if (stage === 'generation') say(`${model} ${version}: ${seconds.toFixed(3)} s`);
        // the slow-operation log of commands: one instrument's model run as slow as a slow request
        else if (seconds * 1000 > config.observability.slowOperationMs)
          logger.warn({ model, version, stage, durationMs: Math.round(seconds * 1000) }, 'slow model run');
      },
    });
    say(`ran ${result.models} model version(s) over ${result.instruments} instruments; ${touched.length} got new forecasts`);
    if (touched.length) await clearSharedInstrumentAnswers(config, database, touched);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  },
  { migrate: true },
);
