import { activateVersion, activationHistory, ensureBuiltInModels, listVersions, registerVersion, rollbackModel } from '../../domain/forecasting/registry.js';
import { MODELS } from '../../domain/forecasting/models/index.js';
import { option, runCommand, say } from './common.js';
import { clearSharedInstrumentAnswers } from './shared-cache.js';

const USAGE = `usage:
  npm run forecasts:models                                    every model version, its parameters and forecasts
  npm run forecasts:models -- register --model NAME --version V [--params JSON]
  npm run forecasts:models -- history --model NAME            activations, newest first
  npm run forecasts:activate -- --model NAME --version V      make V the version that answers
  npm run forecasts:rollback -- --model NAME                  back to the version the last activation replaced`;

// The package scripts pass the action first: `forecasts-models.ts list|activate|rollback [...]`;
// `npm run forecasts:models -- register ...` arrives as `list register ...`.
const argv = process.argv.slice(2);
const action = argv[0] === 'list' && argv[1] && !argv[1].startsWith('--') ? argv[1] : argv[0];
const args = argv.slice(action === argv[0] ? 1 : 2);
const model = option(args, 'model');
const version = option(args, 'version');

function required(name: string, value: string | undefined): string {
  if (!value) throw new Error(`--${name} is required\n${USAGE}`);
  return value;
}

await runCommand(
  async ({ config, database }) => {
    const db = database.db;
    await ensureBuiltInModels(db);
    let result: unknown;
    switch (action) {
      case 'list': {
        const versions = await listVersions(db);
        for (const v of versions)
          say(`${v.active ? '*' : ' '} ${v.name} ${v.version}  ${v.forecasts} forecasts to ${v.latestAsOf ?? '-'}  ${JSON.stringify(v.parameters)}`);
        for (const m of Object.values(MODELS)) say(`  ${m.name}: ${m.summary}`);
        result = versions;
        break;
      }
      case 'register': {
        const params = option(args, 'params');
        let parsed: object = {};
        try {
          parsed = params ? JSON.parse(params) : {};
        } catch {
          throw new Error(`--params must be a JSON object, got ${params}`);
        }
        const row = await registerVersion(db, required('model', model), required('version', version), parsed);
        say(`registered ${row.name} ${row.version} (inactive until activated): ${row.parameters}`);
        result = { name: row.name, version: row.version, active: row.active, parameters: JSON.parse(row.parameters) };
        break;
      }
      case 'history':
        result = await activationHistory(db, required('model', model));
        break;
      case 'activate':
      case 'rollback': {
        const { instrumentIds, ...switched } =
          action === 'activate'
            ? await activateVersion(db, required('model', model), required('version', version))
            : await rollbackModel(db, required('model', model));
        say(
          switched.changed
            ? `${switched.name}: ${switched.previousVersion ?? 'none'} → ${switched.version}`
            : `${switched.name} ${switched.version} is already active`,
        );
        await clearSharedInstrumentAnswers(config, database, instrumentIds);
        result = switched;
        break;
      }
      default:
        throw new Error(`unknown action "${action}"\n${USAGE}`);
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
  },
  { migrate: true },
);
