import { z } from 'zod';

/** The development signing key, used only outside production and announced with a warning. */
export const DEV_JWT_SECRET = 'foliograph-development-secret-do-not-use-in-production';

const csv = z
  .string()
  .optional()
  .transform((s) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean));

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const schema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    PORT: z.coerce.number().int().min(0).max(65535).default(4000),
    HOST: z.string().min(1).default('127.0.0.1'),
    DATABASE_URL: z.string().url().optional(),
    PGLITE_DATA_DIR: z.string().min(1).default('.data/pglite'),
    READ_REPLICA_URLS: csv,
    READ_YOUR_WRITES_MS: z.coerce.number().int().min(0).default(5000),
    REDIS_URL: z.string().url().optional(),
    REDIS_COMMAND_TIMEOUT_MS: positiveInt(100),
    DB_POOL_MAX: positiveInt(10),
    DB_QUEUE_MAX: positiveInt(100),
    DB_CONNECT_TIMEOUT_MS: positiveInt(2000),
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
    ALLOW_INTROSPECTION: z.enum(['true', 'false']).default('false'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    FORECAST_DEFAULT_MODEL: z.string().min(1).default('ewma'),
  })
  .superRefine((env, ctx) => {
    if (env.NODE_ENV === 'production' && !env.JWT_SECRET) {
      ctx.addIssue({ code: 'custom', path: ['JWT_SECRET'], message: 'JWT_SECRET is required when NODE_ENV=production' });
    }
    // node:http refuses a header deadline later than the whole request's
    if (env.HTTP_HEADERS_TIMEOUT_MS > env.HTTP_REQUEST_TIMEOUT_MS) {
      ctx.addIssue({ code: 'custom', path: ['HTTP_HEADERS_TIMEOUT_MS'], message: 'HTTP_HEADERS_TIMEOUT_MS must not be above HTTP_REQUEST_TIMEOUT_MS' });
    }
  });

export interface Config {
  env: 'development' | 'production' | 'test';
  production: boolean;
  port: number;
  host: string;
  /** PostgreSQL primary; undefined means the embedded PGlite database. */
  databaseUrl?: string;
  /** PGlite data directory, or `memory://` for a throw-away database. */
  pgliteDataDir: string;
  readReplicaUrls: string[];
  /** How long after a write its writer (and, after public data changed, everyone) reads from the primary: longer than the replicas' lag. */
  readYourWritesMs: number;
  redisUrl?: string;
  /** Longest wait for one Redis command; past it the command fails and Redis is skipped until a probe answers. */
  redisCommandTimeoutMs: number;
  dbPoolMax: number;
  /** When more statements than this wait for a database connection, new requests are shed (503 OVERLOADED). */
  dbQueueMax: number;
  /** A database connection not made within this is given up: an unreachable database costs a request this much at most. */
  dbConnectTimeoutMs: number;
  jwtSecret: string;
  /** True when JWT_SECRET was not set and the development secret is in use. */
  jwtSecretIsDefault: boolean;
  corsOrigins: string[];
  /** Introspection in production (always on in development). */
  allowIntrospection: boolean;
  maxDepth: number;
  maxCost: number;
  rateLimitCostPerMinute: number;
  /** An operation running longer is answered DEADLINE_EXCEEDED and its SQL cancelled. */
  requestTimeoutMs: number;
  maxAliases: number;
  maxRootFields: number;
  maxDirectives: number;
  /** Most lexical tokens a document may have; the parser stops past it. */
  maxTokens: number;
  /** Most selections a document may have once its fragment spreads are written out in place. */
  maxSelections: number;
  /** Largest request body, in bytes. */
  maxBodyBytes: number;
  /** A client that has not sent a request's whole headers this long after it began is answered 408 and closed. */
  httpHeadersTimeoutMs: number;
  /** A client that has not sent a whole request (headers and body) this long after it began is answered 408 and closed. */
  httpRequestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  httpKeepAliveTimeoutMs: number;
  /** Most open client connections; past it new ones are closed at once (keep it well under the file limit). */
  httpMaxConnections: number;
  /** Parsed and validated documents kept for reuse: most entries, and most bytes of heap (estimated). */
  documentCacheMaxEntries: number;
  documentCacheMaxBytes: number;
  /** How long an API key's, trusted document's or user's grant's lookup is reused: revocations act within it (0: never reused). */
  partnerCacheTtlMs: number;
  /** How long an automatic persisted query stays registered without use, and the store's size bound. */
  apqTtlSeconds: number;
  apqMaxBytes: number;
  /** Most automatic persisted queries kept, and the largest one kept (a larger one is run but not registered). */
  apqMaxEntries: number;
  apqMaxEntryBytes: number;
  /** How often observed costs are written to cost_observations. */
  costFlushIntervalMs: number;
  /** Operations slower than this are logged with the loader batches they ran. */
  slowOperationMs: number;
  /** Loader batches (one SQL statement each) slower than this are logged with their loader's name. */
  slowSqlMs: number;
  /** Slow SQL above this also has its plan logged, for a sample (slowSqlPlanSample, 0–1) of the batches. */
  slowSqlPlanMs: number;
  slowSqlPlanSample: number;
  /** Where spans go over OTLP/HTTP; unset: no tracing, at no cost. */
  otlpEndpoint?: string;
  /** Whole-operation response cache (and single flight); `off` runs every operation. */
  responseCache: boolean;
  responseCacheMaxEntries: number;
  responseCacheMaxBytes: number;
  /** How long instruments and latest prices are shared across requests (0: not at all). */
  hotCacheTtlMs: number;
  logLevel: string;
  /** Model whose active version answers `Instrument.latestForecast`. */
  forecastDefaultModel: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Reads and validates the environment once; every problem is reported, not only the first. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means "not set", as in most shells' `VAR= cmd`.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || 'environment'}: ${i.message}`));
  }
  const e = parsed.data;
  return {
    env: e.NODE_ENV,
    production: e.NODE_ENV === 'production',
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    pgliteDataDir: e.PGLITE_DATA_DIR,
    readReplicaUrls: e.READ_REPLICA_URLS,
    readYourWritesMs: e.READ_YOUR_WRITES_MS,
    redisUrl: e.REDIS_URL,
    redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    dbPoolMax: e.DB_POOL_MAX,
    dbQueueMax: e.DB_QUEUE_MAX,
    dbConnectTimeoutMs: e.DB_CONNECT_TIMEOUT_MS,
    jwtSecret: e.JWT_SECRET ?? DEV_JWT_SECRET,
    jwtSecretIsDefault: !e.JWT_SECRET,
    corsOrigins: e.CORS_ORIGINS,
    allowIntrospection: e.ALLOW_INTROSPECTION === 'true',
    maxDepth: e.MAX_DEPTH,
    maxCost: e.MAX_COST,
    rateLimitCostPerMinute: e.RATE_LIMIT_COST_PER_MINUTE,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    maxAliases: e.MAX_ALIASES,
    maxRootFields: e.MAX_ROOT_FIELDS,
    maxDirectives: e.MAX_DIRECTIVES,
    maxTokens: e.MAX_TOKENS,
    maxSelections: e.MAX_SELECTIONS,
    maxBodyBytes: e.MAX_BODY_BYTES,
    httpHeadersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
    httpRequestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
    httpKeepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    httpMaxConnections: e.HTTP_MAX_CONNECTIONS,
    documentCacheMaxEntries: e.DOCUMENT_CACHE_MAX_ENTRIES,
    documentCacheMaxBytes: e.DOCUMENT_CACHE_MAX_BYTES,
    partnerCacheTtlMs: e.PARTNER_CACHE_TTL_MS,
    apqTtlSeconds: e.APQ_TTL_SECONDS,
    apqMaxBytes: e.APQ_MAX_BYTES,
    apqMaxEntries: e.APQ_MAX_ENTRIES,
    apqMaxEntryBytes: e.APQ_MAX_ENTRY_BYTES,
    costFlushIntervalMs: Math.min(e.COST_FLUSH_INTERVAL_MS, 2 ** 31 - 1),
    slowOperationMs: e.SLOW_OPERATION_MS,
    slowSqlMs: e.SLOW_SQL_MS,
    slowSqlPlanMs: e.SLOW_SQL_PLAN_MS,
    slowSqlPlanSample: e.SLOW_SQL_PLAN_SAMPLE,
    otlpEndpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT,
    responseCache: e.RESPONSE_CACHE === 'on',
    responseCacheMaxEntries: e.RESPONSE_CACHE_MAX_ENTRIES,
    responseCacheMaxBytes: e.RESPONSE_CACHE_MAX_BYTES,
    hotCacheTtlMs: e.HOT_CACHE_TTL_MS,
    logLevel: e.LOG_LEVEL,
    forecastDefaultModel: e.FORECAST_DEFAULT_MODEL,
  };
}
