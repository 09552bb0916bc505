import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { sql } from 'drizzle-orm';
import { rows } from '../../db/client.js';
import { renderForecastChart } from '../../domain/forecasting/chart.js';
import { option, runCommand, say } from './common.js';

// npm run forecasts:chart -- SYMBOL [--model NAME] [--out FILE] [--rows N] — an SVG of the instrument's
// recent closes with the 95% band of the model's newest forecasts (default model: FORECAST_DEFAULT_MODEL).
const args = process.argv.slice(2);
const valued = ['--model', '--out', '--rows'];
const symbol = args.find((a, i) => !a.startsWith('--') && !valued.includes(args[i - 1]));
if (!symbol) {
  say('usage: npm run forecasts:chart -- SYMBOL [--model NAME] [--out FILE] [--rows N]');
  process.exit(1);
}
const rowsText = option(args, 'rows');
const rowCount = rowsText === undefined ? undefined : Number(rowsText);
if (rowCount !== undefined && !(Number.isInteger(rowCount) && rowCount > 0)) {
  say(`error: --rows takes a whole number greater than 0, got ${JSON.stringify(rowsText)}`);
  process.exit(1);
}

await runCommand(
  async ({ config, database: { db } }) => {
    const modelName = option(args, 'model') ?? config.forecasts.defaultModel;
    const [instrument] = await rows<{ id: number; symbol: string; name: string; currency: string }>(
      db,
      sql`select id, symbol, name, currency from instruments where upper(symbol) = upper(${symbol})`,
    );
    if (!instrument) throw new Error(`no instrument with symbol ${symbol}`);
    const [model] = await rows<{ id: number; name: string; version: string }>(
      db,
      sql`select id, name, version from forecast_models where name = ${modelName} and active`,
    );
    if (!model) throw new Error(`model ${modelName} has no active version (npm run forecasts:models lists them; npm run db:seed sets up the default)`);
    // every horizon as of the model version's latest as-of date for this instrument: one forecast each
    const forecasts = (
      await rows<{ as_of: string; horizon_days: number; expected_return: number; lower95: number; upper95: number }>(
        db,
        sql`select as_of::text as as_of, horizon_days, expected_return, lower95, upper95 from forecasts
            where model_id = ${model.id} and instrument_id = ${instrument.id}
              and as_of = (select max(as_of) from forecasts where model_id = ${model.id} and instrument_id = ${instrument.id})
            order by horizon_days`,
      )
    ).map((r) => ({
      asOf: r.as_of,
      horizonDays: r.horizon_days,
      expectedReturn: Number(r.expected_return),
      lower: Number(r.lower95),
      upper: Number(r.upper95),
    }));
    if (forecasts.length === 0) {
      throw new Error(`no forecasts of ${model.name} v${model.version} for ${instrument.symbol} (npm run forecasts:generate makes them)`);
    }
    const history = (
      await rows<{ date: string; close: string }>(
        db,
        sql`select date::text as date, close::text as close from prices where instrument_id = ${instrument.id} order by date`,
      )
    ).map((r) => ({ date: r.date, close: Number(r.close) }));
    say(`${instrument.symbol}: ${history.length} closes, ${forecasts.length} forecasts of ${model.name} v${model.version} as of ${forecasts[0].asOf}`);

    const svg = renderForecastChart({
      symbol: instrument.symbol,
      name: instrument.name,
      currency: instrument.currency,
      history,
      model: { name: model.name, version: model.version },
      forecasts,
      rows: rowCount,
    });
    const out = resolve(option(args, 'out') ?? `${instrument.symbol.toLowerCase()}-forecast.svg`);
    await writeFile(out, svg);
    say(`wrote ${out}`);
    const result = { symbol: instrument.symbol, model: model.name, version: model.version, out, horizons: forecasts.map((f) => f.horizonDays) };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  },
  { migrate: true },
);
