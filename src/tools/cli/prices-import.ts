import { readFile, stat } from 'node:fs/promises';
import { parsePriceImport } from '../../domain/forecasting/price-csv.js';
import { ensureBuiltInModels } from '../../domain/forecasting/registry.js';
import { ingestPrices, PriceImportError } from '../../domain/price-import.js';
import { option, runCommand, say } from './common.js';
import { clearSharedInstrumentAnswers } from './shared-cache.js';

// npm run prices:import -- FILE [--symbol S] [--correct]
//
// FILE holds `symbol,date,close` rows (many instruments), or `date,close` rows for the instrument that
// --symbol names; with or without a header. All of it is imported or none: a bad row, an unknown
// symbol or a date already held with another close (unless --correct) is reported with its line.
// Then the instruments' cached answers are dropped on every server and their forecasts brought up to date.
const args = process.argv.slice(2);
const valued = ['--symbol'];
const file = args.find((a, i) => !a.startsWith('--') && !valued.includes(args[i - 1]));
const MAX_FILE_BYTES = 64 * 1024 * 1024;

await runCommand(
  async ({ config, database }) => {
    if (!file) throw new Error('usage: npm run prices:import -- FILE [--symbol S] [--correct]');
    const size = (await stat(file)).size;
    if (size > MAX_FILE_BYTES) throw new Error(`${file} is ${size} bytes; at most ${MAX_FILE_BYTES} are imported at once: split it`);
    const { rows, problems } = parsePriceImport(await readFile(file, 'utf8'), { symbol: option(args, 'symbol') });
    if (problems.length) throw new PriceImportError(problems);
    await ensureBuiltInModels(database.db);
    const result = await ingestPrices(database.db, rows, { correct: args.includes('--correct') });
    for (const i of result.instruments) say(`${i.symbol}: ${i.inserted.length} new, ${i.corrected.length} corrected, ${i.unchanged} already held`);
    const touched = result.instruments.filter((i) => i.inserted.length + i.corrected.length > 0).map((i) => i.id);
    say(`${result.forecasts} forecasts made as of the new dates, ${result.scored} forecasts scored against them`);
    await clearSharedInstrumentAnswers(config, database, touched);
    const { instruments, ...totals } = result;
    const summary = {
      ...totals,
      instruments: instruments.map(({ inserted, corrected, ...i }) => ({ ...i, inserted: inserted.length, corrected: corrected.length })),
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  },
  { migrate: true },
);
