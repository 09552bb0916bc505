import { readFileSync } from 'node:fs';
import { and, eq } from 'drizzle-orm';
import { loadConfig } from '../../config.js';
import { forecastModels } from '../../db/schema.js';
import { backtest } from '../../domain/forecasting/backtest.js';
import { modelByName, parseParameters } from '../../domain/forecasting/models/index.js';
import { parsePriceCsv } from '../../domain/forecasting/price-csv.js';
import { option, runCommand, say } from './common.js';

// npm run forecasts:backtest -- --csv FILE --horizon N [--model NAME] [--version V | --params JSON] [--symbol S] [--from DATE] [--steps]
//
// Walks a model forward through a CSV of date,close rows (see src/domain/forecasting/backtest.ts) and prints
// one JSON object. Without --version it needs no database: the model's default parameters, or
// --params, are used; --version V reads that registered version's parameters from the database.
const args = process.argv.slice(2);

async function main() {
  const csv = option(args, 'csv');
  const horizonText = option(args, 'horizon');
  if (!csv || !horizonText)
    throw new Error('usage: npm run forecasts:backtest -- --csv FILE --horizon N [--model NAME] [--version V | --params JSON] [--symbol S] [--steps]');
  const horizonRows = Number(horizonText);
  if (!Number.isInteger(horizonRows) || horizonRows < 1) throw new Error(`--horizon must be a whole number of rows, at least 1; got ${horizonText}`);
  const config = loadConfig();
  const model = modelByName(option(args, 'model') ?? config.forecasts.defaultModel);
  const series = parsePriceCsv(readFileSync(csv, 'utf8'), { symbol: option(args, 'symbol') });
  if (series.length < horizonRows + 2) throw new Error(`${csv} has ${series.length} rows: too few for a horizon of ${horizonRows}`);

  let version = model.version;
  let stored: string | object = option(args, 'params') ?? {};
  const wanted = option(args, 'version');
  if (wanted) {
    await runCommand(async ({ database }) => {
      const [row] = await database.db
        .select()
        .from(forecastModels)
        .where(and(eq(forecastModels.name, model.name), eq(forecastModels.version, wanted)));
      if (!row) throw new Error(`${model.name} has no version "${wanted}"`);
      version = row.version;
      stored = row.parameters;
    });
  } else if (option(args, 'params')) {
    version = 'candidate';
  }
  const params = parseParameters(model, stored);
  say(`${model.name} ${version}: ${series.length} rows from ${series[0].date} to ${series.at(-1)!.date}, horizon ${horizonRows} row(s)`);
  const started = performance.now();
  const result = backtest(series, { model, version, params, horizonRows, from: option(args, 'from'), keepSteps: args.includes('--steps') });
  say(`${result.forecasts} forecasts in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

try {
  await main();
} catch (e) {
  say(`error: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
