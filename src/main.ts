import { loadConfig, ConfigError } from './config.js';
import { createDatabase, type Database } from './db/client.js';
import { migrate } from './db/migrate.js';
import { isDemoSeeded, seedDemo } from './tools/seed/demo.js';
import { generateForecasts } from './domain/forecasting/generate.js';
import { defaultModelStatus, ensureBuiltInModels } from './domain/forecasting/registry.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createApp } from './app.js';
import { startTracing } from './observability/tracing.js';

// The one place that wires everything: config -> database -> migrations (-> first seed) -> server.
async function main() {
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`foliograph refuses to start: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
  const logger = createLogger(config.logLevel);
  if (config.auth.jwtSecretIsDefault) logger.warn('JWT_SECRET is not set: using the fixed development secret (never do this in production)');
  if (process.env.READ_YOUR_WRITES_MS !== undefined) {
    logger.warn(
      'READ_YOUR_WRITES_MS is no longer read: writers read their own writes by WAL position, and READ_REPLICA_MAX_LAG_MS bounds the lag of everyone else',
    );
  }

  const stopTracing = await startTracing(config.observability.otlpEndpoint);
  if (config.observability.otlpEndpoint) logger.info({ endpoint: config.observability.otlpEndpoint }, 'exporting traces over OTLP');
  const database = await createDatabase({
    databaseUrl: config.database.url,
    directUrl: config.database.directUrl,
    pgliteDataDir: config.database.pgliteDataDir,
    dbPoolMax: config.database.poolMax,
    statementTimeoutMs: config.limits.requestTimeoutMs,
    connectTimeoutMs: config.database.connectTimeoutMs,
    planCacheMode: config.database.planCacheMode,
    onAvailability(state, previous, cause) {
      if (state === 'down') logger.error({ err: cause }, 'the database cannot be reached: answering DATABASE_UNAVAILABLE until it answers again');
      else if (previous === 'down') logger.warn('the database answers again');
      // a single connection lost (a terminated backend, a restart already over): checked, and fine
      else logger.info({ state }, state === 'checking' ? 'a statement lost its connection: checking the database' : 'the database answers');
    },
  });
  let started = false;
  const app = createApp({ config, database, logger, isStarted: () => started });

  let stopping = false;
  /** Drains and exits with `code` (1 when the process is no longer trustworthy). */
  const shutdown = async (signal: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: draining requests');
    const force = setTimeout(() => {
      logger.error('shutdown took longer than 10 s; exiting anyway');
      process.exit(1);
    }, 10_000);
    force.unref();
    try {
      await app.stop();
      await database.close();
      await stopTracing().catch(() => {});
      logger.info('stopped');
      process.exit(code);
    } catch (e) {
      logger.error({ err: e }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  // Last resort. A rejected promise that nobody observes is a bug, but the bug of one request or one
  // background task: it is logged and counted, and the server keeps serving everyone else (Node's
  // default would end the process, and every request in flight with it).
  process.on('unhandledRejection', (reason) => {
    app.metrics.processErrors.inc({ kind: 'unhandled_rejection' });
    logger.error({ err: reason }, 'unhandled promise rejection (a bug): logged, and the server keeps serving');
  });
  // An exception that unwound to the event loop may have left anything half-done (a pool's count, a
  // lock, a stream mid-write), so the process is not trusted to go on: it stops taking connections,
  // drains what runs (at most 10 s) and exits 1, for the supervisor to start a clean one.
  process.on('uncaughtException', (e) => {
    app.metrics.processErrors.inc({ kind: 'uncaught_exception' });
    logger.fatal({ err: e }, 'uncaught exception: draining and exiting');
    void shutdown('uncaughtException', 1);
  });

  // Listen first, so that /healthz answers while migrations and the first seed run (and /readyz says 503).
  const url = await app.listen();
  logger.info({ url, database: database.driver }, 'listening');
  const { applied } = await migrate(database);
  logger.info({ applied }, 'migrations applied');
  if (database.driver === 'pglite' && !(await isDemoSeeded(database.db))) {
    logger.info('first start on the embedded database: seeding the demo data set');
    await seedDemo(database.db, (message) => logger.info(message));
  }
  await checkDefaultModel(database, config.forecasts.defaultModel, logger);
  started = true;
  logger.info({ url }, 'ready');
}

/**
 * A database seeded before the default model existed (an upgrade) has no forecasts from it, and
 * `latestForecast` would answer null. The embedded demo database catches up here (the built-in
 * models over six instruments take about a second); on PostgreSQL, where several instances may start
 * at once and the instruments may be many, that is `npm run forecasts:generate`'s job, and the log says so.
 */
async function checkDefaultModel(database: Database, model: string, logger: Logger) {
  const status = await defaultModelStatus(database.db, model);
  if (status === 'ready') return;
  if (database.driver === 'pglite') {
    logger.info({ model, status }, 'the default forecast model has no forecasts yet: generating them');
    await ensureBuiltInModels(database.db);
    await generateForecasts(database.db);
    return;
  }
  logger.warn(
    { model, status },
    'the default forecast model has no active version with forecasts: latestForecast answers null until npm run forecasts:generate runs',
  );
}

main().catch((e) => {
  process.stderr.write(`foliograph failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
