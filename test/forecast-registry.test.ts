import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import { generateForecasts } from '../src/domain/forecasting/generate.js';
import {
  activateVersion,
  activationHistory,
  defaultModelStatus,
  ensureBuiltInModels,
  listVersions,
  registerVersion,
  RegistryError,
  rollbackModel,
} from '../src/domain/forecasting/registry.js';
import { metricSum } from '../src/observability/prom-text.js';
import { seededRandom } from '../src/tools/random.js';
import { createTestDatabase, onPostgres, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { until } from './helpers/until.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// The registry decides which version of a model answers `latestForecast`. Activation and rollback
// take effect on the next request, with no restart, and drop the cached answers they make stale.
const QUOTE = `query($s: String!) { instrument(symbol: $s) {
  latestForecast(horizonDays: 5) { model { name version active } expectedReturn lower upper } } }`;

describe('the model registry', () => {
  let database: TestDatabase;
  let server: TestServer;
  let symbol: string;
  let instrumentId: number;

  beforeAll(async () => {
    database = await createTestDatabase();
    const uniform = seededRandom(3);
    let close = 100;
    const closes = Array.from({ length: 60 }, () => (close *= Math.exp(0.02 * (uniform() - 0.5))).toFixed(4));
    ({ symbol, id: instrumentId } = await seed(database.db).instrument(closes));
    await ensureBuiltInModels(database.db);
    // a second EWMA version with a much faster decay: other intervals on the same prices
    await registerVersion(database.db, 'ewma', '2', { lambdaDaily: 0.5 });
    await generateForecasts(database.db);
    // the registry's mechanics on ewma's versions, with ewma answering latestForecast
    server = await startTestServer(database, { FORECAST_DEFAULT_MODEL: 'ewma' });
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  const ask = () => server.post({ query: QUOTE, variables: { s: symbol } });

  it('registers each built-in model once, active, with its default parameters and an initial activation', async () => {
    await ensureBuiltInModels(database.db);
    const versions = await listVersions(database.db);
    expect(versions.map((v) => [v.name, v.version, v.active])).toEqual([
      ['ewma', '1', true],
      ['ewma', '2', false],
      ['fhs', '1', true],
      ['garch', '1', true],
      ['trailing-lognormal', '1', true],
    ]);
    expect(versions[0].parameters).toEqual({ lambdaDaily: 0.94, lambdaMonthly: 0.97, minReturns: 20 });
    expect(versions[1].parameters).toEqual({ lambdaDaily: 0.5, lambdaMonthly: 0.97, minReturns: 20 });
    // 60 daily closes: too few for GARCH's two years, enough for the others (fhs is ewma's normal on them)
    expect(versions.map((v) => v.forecasts)).toEqual([4, 0, 4, 0, 4]);
    expect((await activationHistory(database.db, 'ewma')).map((a) => [a.version, a.action])).toEqual([['1', 'initial']]);
  });

  it('generates a named version before it is active, without changing what answers, and times the run on every server', async () => {
    const metrics = async () => (await fetch(server.url.replace('/graphql', '/metrics'))).text();
    const count = (text: string, stage: string) => metricSum(text, 'foliograph_forecast_model_duration_seconds_count', { model: 'ewma', version: '2', stage });
    const before = await metrics();
    const result = await generateForecasts(database.db, { model: 'ewma', version: '2' });
    expect(result).toMatchObject({ models: 1, forecasts: 4 });
    // the run announces its timings with NOTIFY: wait for them, boundedly
    const after = await until(metrics, (text) => count(text, 'generation') > count(before, 'generation'));
    expect(count(after, 'generation') - count(before, 'generation')).toBe(1);
    expect(count(after, 'inference') - count(before, 'inference')).toBe(1);
    const first = await ask();
    expect(first.body.data.instrument.latestForecast.model).toEqual({ name: 'ewma', version: '1', active: true });
    expect((await ask()).body.extensions.responseCache.hit).toBe(true);
    // the candidate can be compared with the active version side by side
    const compare = await server.post({
      query: `query($s: String!) { instrument(symbol: $s) {
        candidate: forecasts(model: "ewma", version: "2", horizonDays: 5) { model { version active } upper }
        current: forecasts(model: "ewma", horizonDays: 5) { model { version active } upper } } }`,
      variables: { s: symbol },
    });
    const { candidate, current } = compare.body.data.instrument;
    expect(candidate.map((f: { model: unknown }) => f.model)).toEqual([{ version: '2', active: false }]);
    expect(current.map((f: { model: unknown }) => f.model)).toEqual([{ version: '1', active: true }]);
    expect(candidate[0].upper).not.toBe(current[0].upper);
    const unnamed = await server.post({ query: `{ instrument(symbol: "${symbol}") { forecasts(version: "2") { asOf } } }` });
    expect(unnamed.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'version' });
  });

  it('answers from the activated version at once, and rolls back to the one it replaced', async () => {
    const v1 = (await ask()).body.data.instrument.latestForecast;

    expect(await activateVersion(database.db, 'ewma', '2')).toEqual({
      name: 'ewma',
      version: '2',
      previousVersion: '1',
      changed: true,
      instrumentIds: [instrumentId],
    });
    const after = await until(ask, (r) => r.body.data.instrument.latestForecast.model.version === '2');
    expect(after.body.data.instrument.latestForecast.model).toEqual({ name: 'ewma', version: '2', active: true });
    expect(after.body.data.instrument.latestForecast.upper).not.toBe(v1.upper);

    expect(await rollbackModel(database.db, 'ewma')).toEqual({
      name: 'ewma',
      version: '1',
      previousVersion: '2',
      changed: true,
      instrumentIds: [instrumentId],
    });
    const back = await until(ask, (r) => r.body.data.instrument.latestForecast.model.version === '1');
    expect(back.body.data.instrument.latestForecast).toEqual(v1);

    expect((await activationHistory(database.db, 'ewma')).map((a) => [a.version, a.previous_version, a.action])).toEqual([
      ['1', '2', 'rollback'],
      ['2', '1', 'activate'],
      ['1', null, 'initial'],
    ]);
  });

  it('says whether the default model can answer: an active version with forecasts', async () => {
    expect(await defaultModelStatus(database.db, 'ewma')).toBe('ready');
    expect(await defaultModelStatus(database.db, 'garch')).toBe('no-forecasts'); // too little history here
    expect(await defaultModelStatus(database.db, 'arima')).toBe('no-active-version');
  });

  it('does nothing when the version is already active', async () => {
    expect(await activateVersion(database.db, 'ewma', '1')).toMatchObject({ changed: false, instrumentIds: [] });
    expect(await activationHistory(database.db, 'ewma')).toHaveLength(3);
  });

  it('refuses what cannot be done, and changes nothing', async () => {
    const before = await rows<{ name: string; version: string; active: boolean }>(
      database.db,
      sql`select name, version, active from forecast_models order by id`,
    );
    await expect(activateVersion(database.db, 'ewma', '9')).rejects.toThrow(/ewma has no version "9"; registered: 1, 2/);
    await expect(activateVersion(database.db, 'arima', '1')).rejects.toThrow(/unknown model "arima"/);
    await expect(rollbackModel(database.db, 'garch')).rejects.toThrow(/nothing to roll back to/);
    await expect(registerVersion(database.db, 'ewma', '2', { lambdaDaily: 0.9 })).rejects.toThrow(RegistryError);
    await expect(registerVersion(database.db, 'ewma', '3', { lambdaDaily: 1.5 })).rejects.toThrow(/bad parameters for model "ewma": lambdaDaily/);
    await expect(registerVersion(database.db, 'ewma', '3', { smoothing: 1 })).rejects.toThrow(/bad parameters/);
    await expect(registerVersion(database.db, 'ewma', 'v 3; drop', {})).rejects.toThrow(/bad version/);
    await expect(generateForecasts(database.db, { version: '2' })).rejects.toThrow(/--version needs --model/);
    expect(await rows(database.db, sql`select name, version, active from forecast_models order by id`)).toEqual(before);
    // registering the same version with the same parameters is a no-op
    expect((await registerVersion(database.db, 'ewma', '2', { lambdaDaily: 0.5 })).version).toBe('2');
  });

  it.runIf(onPostgres)('serialises concurrent activations of one model: one active version, an unbroken history', async () => {
    await registerVersion(database.db, 'ewma', '3', { lambdaDaily: 0.8 });
    const results = await Promise.all([activateVersion(database.db, 'ewma', '2'), activateVersion(database.db, 'ewma', '3')]);
    const active = await rows<{ version: string }>(database.db, sql`select version from forecast_models where name = 'ewma' and active`);
    expect(active).toHaveLength(1);
    const history = await activationHistory(database.db, 'ewma');
    // each activation replaced the version the one before it made active
    for (let i = 0; i + 1 < history.length; i++) expect(history[i].previous_version, `activation ${i}`).toBe(history[i + 1].version);
    expect(history[0].version).toBe(active[0].version);
    expect(results.map((r) => r.changed)).toEqual([true, true]);
  });
});
