import { liveCalibration, scoreForecasts } from '../../domain/forecasting/scoring.js';
import { option, runCommand, say } from './common.js';

// npm run forecasts:calibration [-- --window N]
//
// How the stored forecasts did once their outcomes arrived: scores every forecast whose outcome is
// now known, then prints, for each model version and horizon, the coverage of every stored interval,
// the tails of the 95% one, its width and interval score over the latest N outcomes (default
// FORECAST_CALIBRATION_WINDOW), one JSON object per line — forecasts:backtest's numbers, live.
const args = process.argv.slice(2);

await runCommand(
  async ({ config, database: { db } }) => {
    const text = option(args, 'window');
    const window = text === undefined ? config.forecasts.calibrationWindow : Number(text);
    if (!Number.isInteger(window) || window < 1 || window > 1_000_000)
      throw new Error(`--window takes a whole number from 1 to 1000000, got ${JSON.stringify(text)}`);
    const { scored } = await scoreForecasts(db);
    say(`${scored} forecast(s) newly scored`);
    const found = await liveCalibration(db, window);
    if (found.length === 0) say('no scored forecasts yet: outcomes arrive with new prices (npm run prices:import)');
    for (const c of found) process.stdout.write(`${JSON.stringify({ ...c, window })}\n`);
  },
  { migrate: true },
);
