import { z } from 'zod';

/** The development signing key, used only outside production and announced with a warning. */
export const DEV_JWT_SECRET = 'foliograph-development-secret-do-not-use-in-production';

const csv = z
  .string()
  .optional()
  .transform((s) =>
    (s ?? '')
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  );

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const schema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    PORT: z.coerce.number().int().min(0).max(65535).default(4000),
    HOST: z.string().min(1).default('127.0.0.1'),
    DATABASE_URL: z.string().url().optional(),
    DATABASE_DIRECT_URL: z.string().url().optional(),
    PGLITE_DATA_DIR: z.string().min(1).default('.data/pglite'),
    READ_REPLICA_URLS: csv,
    // the replicas' checks remember 120 s of the primary's positions: a lag allowed longer could not be measured
    READ_REPLICA_MAX_LAG_MS: z.coerce.number().int().min(0).max(60_000).default(10_000),
    READ_REPLICA_CHECK_MS: z.coerce.number().int().min(20).max(60_000).default(200),
    REDIS_URL: z.string().url().optional(),
    REDIS_COMMAND_TIMEOUT_MS: positiveInt(100),
    DB_POOL_MAX: positiveInt(10),
    DB_QUEUE_MAX: positiveInt(100),
    ADMISSION_TARGET_WAIT_MS: positiveInt(250),
    ADMISSION_MAX_COST_IN_FLIGHT: positiveInt(2_000_000),
    ADMISSION_MAX_EVENT_LOOP_DELAY_MS: z.coerce.number().int().min(0).default(0),
    DB_CONNECT_TIMEOUT_MS: positiveInt(2000),
    DB_PLAN_CACHE_MODE: z.enum(['force_generic_plan', 'auto', 'force_custom_plan']).default('force_generic_plan'),
    JWT_SECRET: z.string().min(16, 'JWT_SECRET must be at least 16 characters').optional(),
    CORS_ORIGINS: csv,
    MAX_DEPTH: positiveInt(12),
    MAX_COST: positiveInt(50_000),
    RATE_LIMIT_COST_PER_MINUTE: positiveInt(500_000),
    REQUEST_TIMEOUT_MS: positiveInt(10_000),
    MAX_ALIASES: positiveInt(30),
    MAX_ROOT_FIELDS: positiveInt(20),
    MAX_DIRECTIVES: positiveInt(50),
    MAX_TOKENS: positiveInt(5_000),
    MAX_SELECTIONS: positiveInt(10_000),
    MAX_BODY_BYTES: positiveInt(100_000),
    HTTP_HEADERS_TIMEOUT_MS: positiveInt(10_000),
    HTTP_REQUEST_TIMEOUT_MS: positiveInt(20_000),
    HTTP_KEEP_ALIVE_TIMEOUT_MS: positiveInt(5_000),
    HTTP_MAX_CONNECTIONS: positiveInt(800),
    DOCUMENT_CACHE_MAX_ENTRIES: positiveInt(1_000),
    DOCUMENT_CACHE_MAX_BYTES: positiveInt(32 * 1024 * 1024),
    PARTNER_CACHE_TTL_MS: z.coerce.number().int().min(0).default(10_000),
    APQ_TTL_SECONDS: positiveInt(24 * 60 * 60),
    APQ_MAX_BYTES: positiveInt(16 * 1024 * 1024),
    APQ_MAX_ENTRIES: positiveInt(10_000),
    APQ_MAX_ENTRY_BYTES: positiveInt(32 * 1024),
    COST_FLUSH_INTERVAL_MS: positiveInt(30_000),
    SLOW_OPERATION_MS: positiveInt(1_000),
    SLOW_SQL_MS: z.coerce.number().int().min(0).default(250),
    SLOW_SQL_PLAN_MS: z.coerce.number().int().min(0).default(1000),
    SLOW_SQL_PLAN_SAMPLE: z.coerce.number().min(0).max(1).default(0.1),
    OTEL_EXPORTER_OTLP_ENDPOINT: z.string().url().optional(),
    RESPONSE_CACHE: z.enum(['on', 'off']).default('on'),
    RESPONSE_CACHE_MAX_ENTRIES: positiveInt(10_000),
    RESPONSE_CACHE_MAX_BYTES: positiveInt(64 * 1024 * 1024),
    HOT_CACHE_TTL_MS: z.coerce.number().int().min(0).default(30_000),
    LOADER_BATCHING: z.enum(['on', 'off']).default('on'),
    ALLOW_INTROSPECTION: z.enum(['true', 'false']).default('false'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    FORECAST_DEFAULT_MODEL: z.string().min(1).default('fhs'),
    FORECAST_CALIBRATION_WINDOW: z.coerce.number().int().min(10).max(100_000).default(500),
  })
  .superRefine((env, ctx) => {
    if (env.NODE_ENV === 'production' && !env.JWT_SECRET) {
      ctx.addIssue({ code: 'custom', path: ['JWT_SECRET'], message: 'JWT_SECRET is required when NODE_ENV=production' });
    }
    if (env.DATABASE_DIRECT_URL && !env.DATABASE_URL) {
      ctx.addIssue({ code: 'custom', path: ['DATABASE_DIRECT_URL'], message: 'DATABASE_DIRECT_URL bypasses a pooler at DATABASE_URL: set DATABASE_URL too' });
    }
    // node:http refuses a header deadline later than the whole request's
    if (env.HTTP_HEADERS_TIMEOUT_MS > env.HTTP_REQUEST_TIMEOUT_MS) {
      ctx.addIssue({ code: 'custom', path: ['HTTP_HEADERS_TIMEOUT_MS'], message: 'HTTP_HEADERS_TIMEOUT_MS must not be above HTTP_REQUEST_TIMEOUT_MS' });
    }
  });

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * The settings, grouped by concern, from the validated environment: every default is the schema's
 * above, every name here says which variable it comes from (a group's prefix is the variable's, so
 * `http.requestTimeoutMs` is HTTP_REQUEST_TIMEOUT_MS and `limits.requestTimeoutMs` REQUEST_TIMEOUT_MS).
 */
function settle(e: z.output<typeof schema>) {
  return {
    env: e.NODE_ENV,
    production: e.NODE_ENV === 'production',
    port: e.PORT,
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    database: {
      /** PostgreSQL primary; undefined means the embedded PGlite database. */
      url: e.DATABASE_URL,
      /** The primary not through a pooler: with it, DATABASE_URL is a pooler in transaction mode (PgBouncer). */
      directUrl: e.DATABASE_DIRECT_URL,
      /** PGlite data directory, or `memory://` for a throw-away database. */
      pgliteDataDir: e.PGLITE_DATA_DIR,
      poolMax: e.DB_POOL_MAX,
      /** When this many statements wait ahead of a new request for a database connection, it is shed (503 OVERLOADED, reason db_queue). */
      queueMax: e.DB_QUEUE_MAX,
      /** A database connection not made within this is given up: an unreachable database costs a request this much at most. */
      connectTimeoutMs: e.DB_CONNECT_TIMEOUT_MS,
      /** PostgreSQL's plan_cache_mode on the pools' connections: how a prepared statement is planned (see db/prepare.ts). */
      planCacheMode: e.DB_PLAN_CACHE_MODE,
      readReplicaUrls: e.READ_REPLICA_URLS,
      /** A replica further behind the primary serves nobody's reads; a writer's reads follow their commit position whatever this says. */
      readReplicaMaxLagMs: e.READ_REPLICA_MAX_LAG_MS,
      /** How often the primary's WAL position and each replica's replay position and health are sampled (one loop per process). */
      readReplicaCheckMs: e.READ_REPLICA_CHECK_MS,
    },
    redis: {
      url: e.REDIS_URL,
      /** Longest wait for one Redis command; past it the command fails and Redis is skipped until a probe answers. */
      commandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    },
    auth: {
      jwtSecret: e.JWT_SECRET ?? DEV_JWT_SECRET,
      /** True when JWT_SECRET was not set and the development secret is in use. */
      jwtSecretIsDefault: !e.JWT_SECRET,
      /** How long an API key's, trusted document's or user's grant's lookup is reused: revocations act within it (0: never reused). */
      partnerCacheTtlMs: e.PARTNER_CACHE_TTL_MS,
    },
    http: {
      corsOrigins: e.CORS_ORIGINS,
      /** Largest request body, in bytes. */
      maxBodyBytes: e.MAX_BODY_BYTES,
      /** A client that has not sent a request's whole headers this long after it began is answered 408 and closed. */
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
      /** A client that has not sent a whole request (headers and body) this long after it began is answered 408 and closed. */
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      /** An idle keep-alive connection is closed after this long. */
      keepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      /** Most open client connections; past it new ones are closed at once (keep it well under the file limit). */
      maxConnections: e.HTTP_MAX_CONNECTIONS,
    },
    admission: {
      /**
       * The expected wait for a database connection past which an anonymous request is shed (503
       * OVERLOADED, reason db_wait); signed-in users wait up to 2×, partners 4×, writes are never shed for their wait.
       */
      targetWaitMs: e.ADMISSION_TARGET_WAIT_MS,
      /** The most estimated cost running at once: past its share (half for anonymous callers, all for writes) a request is shed (cost_in_flight). */
      maxCostInFlight: e.ADMISSION_MAX_COST_IN_FLIGHT,
      /** The event loop's recent p99 delay past which an anonymous request is shed (event_loop; users 2×, partners 4×, writes never); 0: off. */
      maxEventLoopDelayMs: e.ADMISSION_MAX_EVENT_LOOP_DELAY_MS,
    },
    limits: {
      /** An operation running longer is answered DEADLINE_EXCEEDED and its SQL cancelled. */
      requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
      maxDepth: e.MAX_DEPTH,
      maxCost: e.MAX_COST,
      rateLimitCostPerMinute: e.RATE_LIMIT_COST_PER_MINUTE,
      maxAliases: e.MAX_ALIASES,
      maxRootFields: e.MAX_ROOT_FIELDS,
      maxDirectives: e.MAX_DIRECTIVES,
      /** Most lexical tokens a document may have; the parser stops past it. */
      maxTokens: e.MAX_TOKENS,
      /** Most selections a document may have once its fragment spreads are written out in place. */
      maxSelections: e.MAX_SELECTIONS,
      /** Introspection in production (always on in development). */
      allowIntrospection: e.ALLOW_INTROSPECTION === 'true',
    },
    cache: {
      /** Whole-operation response cache (and single flight); `off` runs every operation. */
      response: e.RESPONSE_CACHE === 'on',
      responseMaxEntries: e.RESPONSE_CACHE_MAX_ENTRIES,
      responseMaxBytes: e.RESPONSE_CACHE_MAX_BYTES,
      /** How long instruments and latest prices are shared across requests (0: not at all). */
      hotTtlMs: e.HOT_CACHE_TTL_MS,
      /** Loaders batch keys into one statement; `off` sends one per key (the naive N+1 design, for npm run bench -- incident). */
      loaderBatching: e.LOADER_BATCHING === 'on',
      /** Parsed and validated documents kept for reuse: most entries, and most bytes of heap (estimated). */
      documentMaxEntries: e.DOCUMENT_CACHE_MAX_ENTRIES,
      documentMaxBytes: e.DOCUMENT_CACHE_MAX_BYTES,
    },
    apq: {
      /** How long an automatic persisted query stays registered without use, and the store's size bound. */
      ttlSeconds: e.APQ_TTL_SECONDS,
      maxBytes: e.APQ_MAX_BYTES,
      /** Most automatic persisted queries kept, and the largest one kept (a larger one is run but not registered). */
      maxEntries: e.APQ_MAX_ENTRIES,
      maxEntryBytes: e.APQ_MAX_ENTRY_BYTES,
    },
    observability: {
      /** How often observed costs are written to cost_observations. */
      costFlushIntervalMs: Math.min(e.COST_FLUSH_INTERVAL_MS, 2 ** 31 - 1),
      /** Operations slower than this are logged with the loader batches they ran. */
      slowOperationMs: e.SLOW_OPERATION_MS,
      /** Loader batches (one SQL statement each) slower than this are logged with their loader's name. */
      slowSqlMs: e.SLOW_SQL_MS,
      /** Slow SQL above this also has its plan logged, for a sample (slowSqlPlanSample, 0–1) of the batches. */
      slowSqlPlanMs: e.SLOW_SQL_PLAN_MS,
      slowSqlPlanSample: e.SLOW_SQL_PLAN_SAMPLE,
      /** Where spans go over OTLP/HTTP; unset: no tracing, at no cost. */
      otlpEndpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT,
    },
    forecasts: {
      /** Model whose active version answers `Instrument.latestForecast`. */
      defaultModel: e.FORECAST_DEFAULT_MODEL,
      /** The live calibration's window: each model version's latest this many scored forecasts per horizon. */
      calibrationWindow: e.FORECAST_CALIBRATION_WINDOW,
    },
  };
}

/** The configuration's type is what `settle` makes of the schema: written once, in one place. */
export type Config = ReturnType<typeof settle>;

/** Reads and validates the environment once; every problem is reported, not only the first. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means "not set", as in most shells' `VAR= cmd`.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || 'environment'}: ${i.message}`));
  }
  return settle(parsed.data);
}
