import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, rows } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { generateForecasts } from '../src/domain/forecasting/generate.js';
import { parsePriceImport, type ImportRow } from '../src/domain/forecasting/price-csv.js';
import { ensureBuiltInModels } from '../src/domain/forecasting/registry.js';
import { liveCalibration } from '../src/domain/forecasting/scoring.js';
import { ingestPrices, PriceImportError } from '../src/domain/price-import.js';
import { createTestDatabase, onPostgres, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, TEST_SECRET, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

// New prices arriving in a running deployment: a file is taken whole or not at all, every server
// drops what it cached about the instruments, forecasts are made as of the new dates, and the
// forecasts whose outcome arrived are scored, feeding the live calibration in /metrics.

const rowsOf = (text: string, symbol?: string): ImportRow[] => {
  const parsed = parsePriceImport(text, { symbol });
  expect(parsed.problems).toEqual([]);
  return parsed.rows;
};

/** `count` closes on consecutive days after `after`, starting at `start` and rising by `step`. */
function closesAfter(after: string, count: number, start: number, step = 0.5): { date: string; close: string }[] {
  const t = Date.parse(`${after}T00:00:00Z`);
  return Array.from({ length: count }, (_, i) => ({
    date: new Date(t + (i + 1) * 86_400_000).toISOString().slice(0, 10),
    close: (start + i * step).toFixed(2),
  }));
}

describe('price files', () => {
  it('reads symbol,date,close for many instruments and date,close for the one --symbol names, with or without a header', () => {
    expect(rowsOf('AAA,2024-02-01,10.5\nbbb,2024-02-01,20\n')).toEqual([
      { line: 1, symbol: 'AAA', date: '2024-02-01', close: '10.5' },
      { line: 2, symbol: 'BBB', date: '2024-02-01', close: '20' },
    ]);
    expect(rowsOf('2024-02-02,11\n\n2024-02-01,10.25\n', 'aaa')).toEqual([
      { line: 1, symbol: 'AAA', date: '2024-02-02', close: '11' },
      { line: 3, symbol: 'AAA', date: '2024-02-01', close: '10.25' },
    ]);
    // a header finds its columns by name, among others (the demo S&P file's layout)
    expect(rowsOf('date,open,high,low,close,volume\r\n2024-02-01,1,2,0.5,1.23456789,100\r\n', 'SPX')).toEqual([
      { line: 2, symbol: 'SPX', date: '2024-02-01', close: '1.23456789' },
    ]);
    // --symbol picks its rows out of a file of many
    expect(rowsOf('symbol,date,close\nAAA,2024-02-01,1\nBBB,2024-02-01,2\n', 'BBB')).toEqual([{ line: 3, symbol: 'BBB', date: '2024-02-01', close: '2' }]);
  });

  it('reports every bad row with its line, not only the first', () => {
    const { problems } = parsePriceImport(
      [
        'symbol,date,close',
        'AAA,2024-02-01,10',
        'AAA,2024-02-30,10', // no such day
        'AAA,2024-02-02,-3',
        'AAA,2024-02-03,1.123456789', // more places than a price holds
        'AAA,2024-02-04',
        'AAA,2024-02-01,10.00', // the same close again: fine
        'AAA,2024-02-01,11', // another close for a date already given
        'A A,2024-02-05,1',
        'AAA,2024-02-06,0',
      ].join('\n'),
    );
    expect(problems).toHaveLength(7);
    expect(problems.map((p) => Number(/^line (\d+)/.exec(p)?.[1]))).toEqual([3, 4, 5, 6, 8, 9, 10]);
    expect(problems[4]).toMatch(/AAA 2024-02-01 is already on line 2/);
    expect(parsePriceImport('2024-02-01,10\n').problems).toEqual(['the file has no symbol column: name its instrument with --symbol S']);
    expect(parsePriceImport('\n\n').problems).toEqual(['the file is empty']);
    expect(parsePriceImport('symbol,date,close\nAAA,2024-02-01,1\n', { symbol: 'ZZZ' }).problems).toEqual(['no rows for symbol ZZZ']);
    // a file of many bad rows lists the first hundred, each cell cut short, and counts the rest
    const many = parsePriceImport(['symbol,date,close', ...Array.from({ length: 150 }, (_, i) => `AAA,${'9'.repeat(1000)}${i},1`)].join('\n'));
    expect(many.problems).toHaveLength(101);
    expect(many.problems[0]).toBe(`line 2: "${'9'.repeat(40)}" is not a date (YYYY-MM-DD)`);
    expect(many.problems[100]).toBe('… and 50 more problem(s)');
  });
});

describe('importing prices', () => {
  let database: TestDatabase;
  let server: TestServer;
  let a: { id: number; symbol: string };
  let b: { id: number; symbol: string };
  const priceCount = async () => Number((await rows<{ n: number }>(database.db, sql`select count(*)::int as n from prices`))[0].n);

  beforeAll(async () => {
    database = await createTestDatabase();
    const walk = (n: number, start: number) => Array.from({ length: n }, (_, i) => (start + Math.sin(i) * 2 + i * 0.1).toFixed(2));
    a = await seed(database.db).instrument(walk(60, 100));
    b = await seed(database.db).instrument(walk(60, 50));
    await ensureBuiltInModels(database.db);
    await generateForecasts(database.db);
    server = await startTestServer(database);
  });

  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  it('takes new closes exactly as written, for several instruments, and a second run changes nothing', async () => {
    const before = await priceCount();
    const file = [
      'symbol,date,close',
      ...closesAfter('2024-01-31', 3, 120).map((p) => `${a.symbol},${p.date},${p.close}`),
      `${b.symbol},2024-02-01,55.12345678`,
    ].join('\n');
    const first = await ingestPrices(database.db, rowsOf(file));
    expect({ inserted: first.inserted, corrected: first.corrected, unchanged: first.unchanged }).toEqual({ inserted: 4, corrected: 0, unchanged: 0 });
    expect(await priceCount()).toBe(before + 4);
    const [held] = await rows<{ close: string }>(
      database.db,
      sql`select close::text as close from prices where instrument_id = ${b.id} and date = '2024-02-01'`,
    );
    expect(held.close).toBe('55.12345678');

    const again = await ingestPrices(database.db, rowsOf(file.replace('55.12345678', '55.123456780')));
    expect({ inserted: again.inserted, corrected: again.corrected, unchanged: again.unchanged, forecasts: again.forecasts }).toEqual({
      inserted: 0,
      corrected: 0,
      unchanged: 4,
      forecasts: 0,
    });
    expect(await priceCount()).toBe(before + 4);
  });

  it('refuses a date held with another close, and an unknown symbol, naming their lines and importing none of the file; --correct replaces', async () => {
    const before = await priceCount();
    const file = [`${a.symbol},2024-02-01,999`, `${a.symbol},2024-02-10,130`, `NOPE${a.symbol},2024-02-10,1`].join('\n');
    const refused = await ingestPrices(database.db, rowsOf(file)).catch((e) => e);
    expect(refused).toBeInstanceOf(PriceImportError);
    expect(refused.problems).toEqual([expect.stringMatching(/^line 3: no instrument has the symbol NOPE/)]);
    const conflicting = await ingestPrices(database.db, rowsOf(file.split('\n').slice(0, 2).join('\n'))).catch((e) => e);
    expect(conflicting).toBeInstanceOf(PriceImportError);
    expect(conflicting.problems).toEqual([`line 1: ${a.symbol} 2024-02-01 is held with close 120, the file says 999 (--correct replaces it)`]);
    // the good row of those files was not imported either
    expect(await priceCount()).toBe(before);

    const madeAfter = async () =>
      (
        await rows<{ upper: number }>(
          database.db,
          sql`select f.upper95 as upper from forecasts f join forecast_models m on m.id = f.model_id and m.name = 'ewma'
              where f.instrument_id = ${a.id} and f.as_of = '2024-02-02' and f.horizon_days = 1`,
        )
      )[0].upper;
    const beforeCorrection = await madeAfter();
    const corrected = await ingestPrices(database.db, rowsOf(`${a.symbol},2024-02-01,121`), { correct: true });
    // a forecast made after the corrected date saw the wrong close: it is made again from the right one
    expect(await madeAfter()).not.toBe(beforeCorrection);
    expect({ inserted: corrected.inserted, corrected: corrected.corrected }).toEqual({ inserted: 0, corrected: 1 });
    const [held] = await rows<{ close: string }>(
      database.db,
      sql`select close::text as close from prices where instrument_id = ${a.id} and date = '2024-02-01'`,
    );
    expect(Number(held.close)).toBe(121);
    // the one-day forecast made as of 2024-01-31 is scored against the corrected close
    const [outcome] = await rows<{ realised: number; start: string }>(
      database.db,
      sql`select f.realised_return as realised, p.close::text as start from forecasts f
          join forecast_models m on m.id = f.model_id and m.name = 'ewma'
          join prices p on p.instrument_id = f.instrument_id and p.date = f.as_of
          where f.instrument_id = ${a.id} and f.as_of = '2024-01-31' and f.horizon_days = 1`,
    );
    expect(outcome.realised).toBeCloseTo(121 / Number(outcome.start) - 1, 12);
  });

  it('drops every cached answer about the instruments at once, and forecasts as of each new date from the prices before it', async () => {
    const QUOTE = `query($s: String!) { instrument(symbol: $s) { latestPrice { date close } latestForecast(horizonDays: 5) { asOf } } }`;
    const ask = () => server.post({ query: QUOTE, variables: { s: a.symbol } });
    const cached = await ask();
    expect(cached.body.data.instrument.latestPrice).toEqual({ date: '2024-02-03', close: '121' });
    expect((await server.countSql(ask)).statements).toBe(0); // a hit

    const added = closesAfter('2024-02-03', 10, 125);
    const result = await ingestPrices(database.db, rowsOf(added.map((p) => `${p.date},${p.close}`).join('\n'), a.symbol));
    expect(result.inserted).toBe(10);
    // the NOTIFY reached the server: the next request reads the new price
    const fresh = await until(ask, (res) => res.body.data.instrument.latestPrice.date !== '2024-02-03');
    expect(fresh.body.data.instrument).toEqual({ latestPrice: { date: '2024-02-13', close: '129.5' }, latestForecast: { asOf: '2024-02-13' } });

    // every active model that can forecast from this history did so as of each new date
    const asOf = await rows<{ as_of: string }>(
      database.db,
      sql`select distinct f.as_of::text as as_of from forecasts f join forecast_models m on m.id = f.model_id and m.name = 'ewma'
          where f.instrument_id = ${a.id} and f.as_of > '2024-02-03' order by 1`,
    );
    expect(asOf.map((r) => r.as_of)).toEqual(added.map((p) => p.date));
    // each from the prices up to its date only: the forecast as of 02-08 is what the history up to 02-08 gives
    const [stored] = await rows<{ upper95: number }>(
      database.db,
      sql`select f.upper95 from forecasts f join forecast_models m on m.id = f.model_id and m.name = 'ewma'
          where f.instrument_id = ${a.id} and f.as_of = '2024-02-08' and f.horizon_days = 5`,
    );
    const history = await rows<{ date: string; close: string }>(
      database.db,
      sql`select date::text as date, close::text as close from prices where instrument_id = ${a.id} and date <= '2024-02-08' order by date`,
    );
    const { EWMA } = await import('../src/domain/forecasting/models/ewma.js');
    const { forecastSeries } = await import('../src/domain/forecasting/models/index.js');
    const [expected] = forecastSeries(
      EWMA,
      EWMA.parameters.parse({}),
      history.map((h) => ({ date: h.date, close: Number(h.close) })),
      [5],
    );
    expect(stored.upper95).toBeCloseTo(expected.upper, 12);
  });

  it('scores each forecast once its outcome has arrived, and /metrics shows the live calibration', async () => {
    const scored = await rows<{ as_of: string; horizon_days: number; realised: number; outcome_date: string; start: string; end: string }>(
      database.db,
      sql`select f.as_of::text as as_of, f.horizon_days, f.realised_return as realised, f.outcome_date::text as outcome_date,
                 s.close::text as start, e.close::text as end
          from forecasts f join forecast_models m on m.id = f.model_id and m.name = 'ewma'
          join prices s on s.instrument_id = f.instrument_id and s.date = f.as_of
          join prices e on e.instrument_id = f.instrument_id and e.date = f.outcome_date
          where f.instrument_id = ${a.id} and f.realised_return is not null order by f.as_of, f.horizon_days`,
    );
    // a's closes run to 02-13, daily: as of 01-31 … 02-12 at one day (13), as of 01-31 … 02-08 at five (9)
    expect(scored.filter((s) => s.horizon_days === 1)).toHaveLength(13);
    expect(scored.filter((s) => s.horizon_days === 5)).toHaveLength(9);
    for (const s of scored) {
      expect(s.realised).toBeCloseTo(Number(s.end) / Number(s.start) - 1, 12);
      expect(Date.parse(s.outcome_date) - Date.parse(s.as_of)).toBe(s.horizon_days * 86_400_000);
    }
    // nothing is scored before its outcome: the 21-day forecasts all wait
    const [waiting] = await rows<{ n: number }>(
      database.db,
      sql`select count(*)::int as n from forecasts where horizon_days >= 21 and realised_return is not null`,
    );
    expect(waiting.n).toBe(0);

    const live = await liveCalibration(database.db, 500);
    const ewma1 = live.find((c) => c.model === 'ewma' && c.horizonDays === 1)!;
    const b1 = 1; // b's one new close scored b's one-day forecast as of 01-31
    expect(ewma1.outcomes).toBe(13 + b1);
    expect(Object.keys(ewma1.coverage)).toEqual(['50', '80', '90', '95', '99']);
    expect(ewma1.belowLower95 + ewma1.aboveUpper95 + ewma1.coverage['95']).toBeCloseTo(1, 9);
    // a window of 5 counts only the latest 5
    expect((await liveCalibration(database.db, 5)).find((c) => c.model === 'ewma' && c.horizonDays === 1)!.outcomes).toBe(5);

    const metrics = await (await fetch(server.url.replace('/graphql', '/metrics'))).text();
    expect(metrics).toContain(`foliograph_forecast_scored_outcomes{model="ewma",version="1",horizon_days="1"} ${13 + b1}`);
    expect(metrics).toMatch(/foliograph_forecast_realised_coverage\{model="ewma",version="1",horizon_days="5",level="95"\} [\d.]+/);
    expect(metrics).toMatch(/foliograph_forecast_realised_tail_share\{model="ewma",version="1",horizon_days="1",tail="below"\} [\d.]+/);
  });
});

describe('the commands', () => {
  // As an operator runs them, in their own processes. On PGlite the command opens the directory
  // itself, so this test holds the database only between commands.
  const dir = mkdtempSync(join(tmpdir(), 'foliograph-prices-'));
  let postgresDb: TestDatabase | undefined;
  const npmRun = (script: string, ...args: string[]) =>
    spawnSync('npm', ['run', '--silent', script, '--', ...args], {
      env: {
        ...process.env,
        DATABASE_URL: postgresDb?.url ?? '',
        PGLITE_DATA_DIR: join(dir, 'pglite'),
        JWT_SECRET: TEST_SECRET,
        LOG_LEVEL: 'silent',
        REDIS_URL: '',
      },
      encoding: 'utf8',
      timeout: 120_000,
    });

  afterAll(async () => {
    await postgresDb?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    '`prices:import` refuses a bad file, naming each line, imports a good one, and `forecasts:calibration` scores what arrived',
    { timeout: 300_000 },
    async () => {
      let symbol: string;
      if (onPostgres) {
        postgresDb = await createTestDatabase();
        symbol = (await seed(postgresDb.db).instrument(Array.from({ length: 40 }, (_, i) => String(100 + i)))).symbol;
      } else {
        const database = await createDatabase({ pgliteDataDir: join(dir, 'pglite'), dbPoolMax: 1 });
        await migrate(database);
        symbol = (await seed(database.db).instrument(Array.from({ length: 40 }, (_, i) => String(100 + i)))).symbol;
        await database.close();
      }
      const bad = join(dir, 'bad.csv');
      writeFileSync(bad, `date,close\n2024-02-01,141\n2024-02-31,142\n2024-02-03,abc\n`);
      const refused = npmRun('prices:import', bad, '--symbol', symbol);
      expect(refused.status).toBe(1);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toMatch(/line 3: "2024-02-31" is not a date/);
      expect(refused.stderr).toMatch(/line 4: close "abc" is not a positive decimal/);

      const good = join(dir, 'good.csv');
      writeFileSync(good, ['symbol,date,close', ...closesAfter('2024-01-31', 6, 141, 1).map((p) => `${symbol},${p.date},${p.close}`)].join('\n'));
      const imported = npmRun('prices:import', good);
      expect(imported.status, imported.stderr).toBe(0);
      const summary = JSON.parse(imported.stdout);
      expect(summary).toMatchObject({ rows: 6, inserted: 6, corrected: 0, unchanged: 0, instruments: [{ symbol, inserted: 6, corrected: 0, unchanged: 0 }] });
      expect(summary.forecasts).toBeGreaterThan(0);
      expect(summary.scored).toBeGreaterThan(0);
      expect(npmRun('prices:import', good).stdout).toMatch(/"inserted":0,"corrected":0,"unchanged":6/);

      const calibration = npmRun('forecasts:calibration', '--window', '100');
      expect(calibration.status, calibration.stderr).toBe(0);
      const lines = calibration.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines.find((l) => l.model === 'ewma' && l.horizonDays === 1)).toMatchObject({ version: '1', outcomes: 5, window: 100 });
    },
  );
});
