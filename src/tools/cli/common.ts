import { loadConfig, ConfigError, type Config } from '../../config.js';
import { createDatabase, type Database } from '../../db/client.js';
import { migrate } from '../../db/migrate.js';
import { DataDirBusyError } from '../../db/pglite-lock.js';

/** Progress for people on stderr; stdout carries only a command's result. */
export const say = (message: string) => process.stderr.write(`${message}\n`);

/**
 * Runs a command with the configured database (migrated first when asked), closing it after. Every
 * failure is one clear line on stderr and exit code 1; PGlite's directory is never opened twice.
 */
export async function runCommand(
  fn: (ctx: { config: Config; database: Database }) => Promise<void>,
  options: {
    migrate?: boolean;
    /** Runs instead of `fn` when a running server holds PGlite's directory (else that is an error). */
    whenBusy?: (config: Config) => Promise<void>;
  } = {},
) {
  let database: Database | undefined;
  try {
    const config = loadConfig();
    try {
      database = await createDatabase({
        databaseUrl: config.database.url,
        directUrl: config.database.directUrl,
        pgliteDataDir: config.database.pgliteDataDir,
        dbPoolMax: config.database.poolMax,
      });
    } catch (e) {
      if (!(e instanceof DataDirBusyError && options.whenBusy)) throw e;
      await options.whenBusy(config);
      return;
    }
    if (options.migrate) {
      const { applied } = await migrate(database);
      say(`migrations: ${applied} applied`);
    }
    await fn({ config, database });
    await database.close();
  } catch (e) {
    await database?.close().catch(() => {});
    say(`error: ${e instanceof ConfigError || e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  }
}

/** The value after `--name` in argv, or undefined. */
export function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}
