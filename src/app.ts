import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ApolloServer } from '@apollo/server';
import { InMemoryLRUCache } from '@apollo/utils.keyvaluecache';
import { createAdmission } from './admission/index.js';
import { createLoadControl, eventLoopDelay } from './admission/load.js';
import { createRedisApqStore, createRegistrationCharge } from './cache/apq.js';
import { createEnvelopGateway } from './cache/executor.js';
import { createDocumentProfiles, createHitPath } from './cache/hits.js';
import { createHotCache } from './cache/hot.js';
import { createInvalidationListener } from './cache/invalidation.js';
import { cacheNamespace } from './cache/namespace.js';
import { createRedisLink } from './cache/redis-link.js';
import { createResponseStore, type ResponseStore } from './cache/store/tiers.js';
import { instrumentOfTag } from './cache/tags.js';
import type { Config } from './config.js';
import type { Database } from './db/client.js';
import { createWritePositions, formatLsn, parseLsn, UNREACHABLE } from './db/causal.js';
import { createReadReplicas, createReadRouter, positionTtlMs, replicaChecks } from './db/replicas.js';
import { calibrationReader } from './domain/forecasting/scoring.js';
import { FIELD_PAGE_CAPS } from './domain/pagination.js';
import { createContextFactory, type Context, type RequestContext } from './graphql/context.js';
import { buildSchema } from './graphql/schema.js';
import { createApolloServer } from './graphql/server.js';
import { createDevTokenRoute } from './http/dev-token.js';
import { createHttpHandler } from './http/handler.js';
import { createReadiness } from './http/readiness.js';
import { createMemoryBudget, createRedisBudget, type CostBudget } from './limits/budget.js';
import { CostEstimator } from './limits/cost-estimate.js';
import { createCostPlugin } from './limits/cost-plugin.js';
import { createCostRecorder, type CostRecorder } from './limits/cost-recorder.js';
import { createNulGuardPlugin } from './limits/nul-guard.js';
import { limitRules } from './limits/rules.js';
import type { Logger } from './observability/logger.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { createModelTimingListener } from './observability/model-timings.js';
import { createOperationLogPlugin, createOperationRecorder } from './observability/operation-log.js';
import { createSlowSqlLog } from './observability/slow-sql.js';

export interface AppOptions {
  config: Config;
  database: Database;
  logger: Logger;
  /** Whether start-up work (migrations, first seed) is done; /readyz answers 503 until it is. */
  isStarted?: () => boolean;
  /** Cost budgets; by default from the config (Redis when REDIS_URL is set, else in process). */
  budget?: CostBudget;
  /** Prometheus metrics; a new registry by default. */
  metrics?: Metrics;
}

export interface App {
  httpServer: Server;
  apollo: ApolloServer<RequestContext>;
  recorder: CostRecorder;
  metrics: Metrics;
  /** The response cache, when on (tests and commands invalidate through it). */
  store: ResponseStore | null;
  /** Starts every service in order and listens; resolves with the URL of /graphql. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops taking requests, drains those in flight, and stops the services in reverse (the database is the caller's). */
  stop(): Promise<void>;
}

/** A part of the app with work to do when it starts and when it stops (a loop, a connection, a LISTEN). */
interface Service {
  name: string;
  start?(): Promise<void>;
  stop?(): Promise<void>;
}

const localhostOrigin = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/;
// The embedded Apollo Sandbox of the development landing page calls the API from these origins.
const sandboxOrigins = new Set(['https://sandbox.embed.apollographql.com', 'https://studio.apollographql.com']);

/**
 * The composition root: every part made once, in the order a request meets them, and the services
 * among them started in that order and stopped in reverse. Nothing here handles a request.
 */
export function createApp({
  config,
  database,
  logger,
  isStarted = () => true,
  budget,
  metrics = createMetrics({
    pool: database.pool,
    availability: database.availability,
    idleConnections: () => database.idleConnections(),
    redis: Boolean(config.redis.url),
    forecastCalibration: calibrationReader(database.db, config.forecasts.calibrationWindow),
  }),
}: AppOptions): App {
  const httpServer = createServer({
    // node's own defaults (60 s for headers, 300 s for a request, checked every 30 s) let a few
    // hundred clients that trickle bytes hold every socket the process may open
    headersTimeout: config.http.headersTimeoutMs,
    requestTimeout: config.http.requestTimeoutMs,
    keepAliveTimeout: config.http.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(config.http.headersTimeoutMs / 4))),
  });
  // past the cap node closes new connections at once, and the sockets already open go on being served
  httpServer.maxConnections = config.http.maxConnections;
  const schema = buildSchema();

  // shared state: one Redis client for the response cache, budgets and APQ, behind one breaker
  // (user 7 of one database is not user 7 of another sharing it: every key carries the namespace)
  const redis = config.redis.url
    ? createRedisLink({ url: config.redis.url, commandTimeoutMs: config.redis.commandTimeoutMs, logger, onState: (up) => metrics.redisUp.set(up ? 1 : 0) })
    : null;
  const namespace = cacheNamespace(database);

  // admission and limits
  const admission = createAdmission({ db: database.db, jwtSecret: config.auth.jwtSecret, cacheTtlMs: config.auth.partnerCacheTtlMs });
  const costBudget =
    budget ??
    (redis
      ? createRedisBudget(redis, { costPerMinute: config.limits.rateLimitCostPerMinute, namespace })
      : createMemoryBudget({ costPerMinute: config.limits.rateLimitCostPerMinute }));
  const recorder = createCostRecorder(database.db);

  // caches: automatic persisted queries for everyone but partners (bounded, shared through Redis when
  // there is one), whole answers, and hot entities below them
  const apqBounds = {
    maxBytes: config.apq.maxBytes,
    maxEntries: config.apq.maxEntries,
    maxEntryBytes: config.apq.maxEntryBytes,
    ttlSeconds: config.apq.ttlSeconds,
  };
  const apqCache = redis
    ? createRedisApqStore(redis, { namespace, ...apqBounds })
    : new InMemoryLRUCache<string>({
        maxSize: apqBounds.maxBytes,
        max: apqBounds.maxEntries,
        maxEntrySize: apqBounds.maxEntryBytes,
        ttl: apqBounds.ttlSeconds * 1000,
      });
  const store = config.cache.response
    ? createResponseStore({
        maxEntries: config.cache.responseMaxEntries,
        maxBytes: config.cache.responseMaxBytes,
        redis: redis ?? undefined,
        namespace,
        logger,
        metrics,
      })
    : null;
  // what a hit before parsing needs to know of each query (learnt when the executor runs it)
  const profiles = store ? createDocumentProfiles() : undefined;
  const hot = config.cache.hotTtlMs > 0 ? createHotCache({ ttlMs: config.cache.hotTtlMs }) : undefined;
  if (hot) store?.onInvalidate((tags) => hot.invalidate(tags));

  // where reads go: replicas for queries, once they have replayed what the read must see (a writer's
  // last commit, a client's X-Consistent-After, public data's last change); else the primary
  const replicas = config.database.readReplicaUrls.length
    ? createReadReplicas(config.database.readReplicaUrls, {
        primaryPosition: database.walPosition,
        dbPoolMax: config.database.poolMax,
        statementTimeoutMs: config.limits.requestTimeoutMs,
        planCacheMode: config.database.planCacheMode,
        // a read a replica cannot run for a connection reason runs again on the primary: a dying replica costs no query
        primary: database.gated,
        onNotStandby: (i) =>
          logger.warn(
            { replica: i },
            "a read replica is not a standby (not in recovery): it never receives the primary's writes, so what it serves to readers who need no position can be arbitrarily old",
          ),
        onFailover: (i) => {
          metrics.replicaFailovers.inc({ replica: String(i) });
          metrics.replicaUp.set({ replica: String(i) }, 0);
        },
      })
    : null;
  if (replicas) metrics.watchReplicaPools(replicas.pools);
  const positions = replicas
    ? createWritePositions({ redis: redis ?? undefined, namespace, ttlMs: positionTtlMs(config.database.readReplicaMaxLagMs) })
    : undefined;
  const router = createReadRouter({
    replicas: replicas?.dbs ?? [],
    maxLagMs: config.database.readReplicaMaxLagMs,
    health: replicas?.health,
    checks: replicas ?? undefined,
    positions,
  });
  /**
   * After a user's mutation: the primary's WAL position, which their reads must see from now on,
   * asked over the connection of its own the replicas' checks sample it on (not behind the requests
   * in the pool: a busy primary must not make the write's answer wait, or fail, after its commit).
   */
  const settleWrite = async (ctx: Context): Promise<string | undefined> => {
    if (!positions || !database.walPosition || ctx.viewer.kind !== 'user') return undefined;
    const { userId } = ctx.viewer;
    let lsn: bigint | null = null;
    try {
      // the write committed before this asks: WAL inserted so far holds its commit record (what is
      // written or flushed may not yet, with synchronous_commit off)
      lsn = parseLsn((await database.walPosition()).inserted);
    } catch (e) {
      logger.warn({ err: e }, "the primary's WAL position could not be read after a write: the writer reads from the primary for a while");
    }
    // unknown (or not within 2 s: the write's answer must not wait on it): a position no replica
    // reaches, so this writer reads from the primary on every instance until it is forgotten
    await positions.record(userId, lsn ?? UNREACHABLE);
    return lsn === null ? undefined : formatLsn(lsn);
  };
  /** Public data changed (an invalidation naming an instrument): reads wait for a replica past the primary's next sample. */
  const noticeChanges = (tags: string[]) => {
    if (tags.some((tag) => instrumentOfTag(tag) !== null)) router.publicDataChanged();
  };
  // The response cache's invalidations (this instance's and, through Redis, the others') and
  // PostgreSQL's NOTIFY (commands: price imports, forecast runs). Writers need neither: settleWrite
  // records their exact position.
  if (router.enabled) store?.onInvalidate(noticeChanges);

  // admission by the database's health: the lines of every pool a request may use, and the cost in
  // flight; and, when asked, by the process's own CPU (the event loop's delay, which then also dates
  // a request's arrival for its patience)
  // (only when asked: the monitor's own timer cost uncached dashboards a fifth of their throughput
  // in `npm run bench -- dashboard`)
  const loopDelay = config.admission.maxEventLoopDelayMs > 0 ? eventLoopDelay() : undefined;
  const load = createLoadControl({
    pools: () => (replicas ? [database.pool, ...replicas.pools] : [database.pool]),
    targetWaitMs: config.admission.targetWaitMs,
    queueMax: config.database.queueMax,
    maxCostInFlight: config.admission.maxCostInFlight,
    ...(loopDelay ? { loopDelayMs: loopDelay.delayMs, maxEventLoopDelayMs: config.admission.maxEventLoopDelayMs } : {}),
  });
  metrics.watchCostInFlight(() => load.costInFlight);
  for (const pool of replicas?.pools ?? []) pool.onDrop((priority) => metrics.shed.inc({ reason: 'dropped', priority }));

  const recordOperation = createOperationRecorder({ logger, metrics, slowMs: config.observability.slowOperationMs });

  // execution: Apollo parses and validates (the limit rules) and runs the plugins; envelop executes
  const apollo = createApolloServer({
    schema,
    gateway: createEnvelopGateway({ schema, store, profiles, metrics, onWrite: settleWrite }),
    logger,
    production: config.production,
    allowIntrospection: config.limits.allowIntrospection,
    httpServer,
    maxTokens: config.limits.maxTokens,
    persistedQueries: { cache: apqCache, ttl: config.apq.ttlSeconds },
    documentStore: { maxEntries: config.cache.documentMaxEntries, maxBytes: config.cache.documentMaxBytes },
    validationRules: limitRules(config),
    plugins: [
      createOperationLogPlugin(recordOperation),
      createNulGuardPlugin(),
      createCostPlugin({
        estimator: new CostEstimator(schema),
        maxCost: config.limits.maxCost,
        caps: FIELD_PAGE_CAPS,
        budget: costBudget,
        recorder,
        observe: (estimated, actual) => {
          metrics.operationCost.observe({ kind: 'estimated' }, estimated);
          metrics.operationCost.observe({ kind: 'actual' }, actual);
        },
        load,
        onShed: (reason, priority) => metrics.shed.inc({ reason, priority }),
      }),
    ],
  });
  const createContext = createContextFactory({
    db: database.db,
    metrics,
    defaultModel: config.forecasts.defaultModel,
    hot,
    router,
    batching: config.cache.loaderBatching,
    onBatch: createSlowSqlLog({
      logger,
      explain: (query, params) => database.explain(query, params),
      slowMs: config.observability.slowSqlMs,
      planMs: config.observability.slowSqlPlanMs,
      planSample: config.observability.slowSqlPlanSample,
    }),
  });

  // response-cache hits answered before Apollo parses anything (src/cache/hits.ts)
  const hitPath =
    store && profiles ? createHitPath({ store, profiles, budget: costBudget, maxCost: config.limits.maxCost, record: recordOperation, metrics }) : undefined;
  const readiness = createReadiness({ database, metrics, isStarted, details: redis ? () => ({ redis: redis.up ? 'up' : 'down' }) : undefined });
  const handler = createHttpHandler({
    apollo,
    logger,
    metrics,
    admission,
    context: createContext,
    registration: createRegistrationCharge({
      store: apqCache,
      budget: costBudget,
      onCharge: (allowed) => metrics.apqRegistrations.inc({ outcome: allowed ? 'registered' : 'refused' }),
    }),
    early: hitPath?.answer,
    remembered: hitPath?.remembered,
    readiness,
    // npm run token asks the running embedded server in development (it holds PGlite's directory)
    devToken: !config.production && database.driver === 'pglite' ? createDevTokenRoute(database.db, config.auth.jwtSecret) : undefined,
    accepting: isStarted,
    load,
    allowOrigin: (origin) => config.http.corsOrigins.includes(origin) || (!config.production && (localhostOrigin.test(origin) || sandboxOrigins.has(origin))),
    maxBodyBytes: config.http.maxBodyBytes,
    timeoutMs: config.limits.requestTimeoutMs,
  });
  // the handler answers its own errors; this is for a bug in that answering: never an unobserved
  // promise (whose rejection would end the process), and never a client left waiting on a half answer
  httpServer.on('request', (req, res) =>
    handler(req, res).catch((e: unknown) => {
      logger.error({ err: e }, 'the HTTP handler failed: closing the connection');
      res.destroy();
    }),
  );

  let address = { port: config.port, host: config.host };
  const http: Service = {
    name: 'http',
    async start() {
      await apollo.start();
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(address.port, address.host, () => resolve());
      });
    },
    async stop() {
      // Apollo's drain plugin closes the server and waits for the requests in flight; executions whose
      // clients have gone (or were answered at their deadline) are waited for too
      await apollo.stop();
      if (httpServer.listening) await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      await handler.settle(10_000);
    },
  };
  // started in this order, stopped in reverse
  const services: Service[] = [
    { name: 'redis', stop: async () => redis?.close() },
    { name: 'budgets', stop: () => costBudget.close() },
    { name: 'event loop delay', start: async () => loopDelay?.start(), stop: async () => loopDelay?.stop() },
    {
      name: 'replicas',
      ...(replicas
        ? replicaChecks(
            replicas,
            (health) =>
              health.forEach((h, i) => {
                metrics.replicaUp.set({ replica: String(i) }, h.up ? 1 : 0);
                if (h.lagSeconds !== null) metrics.replicaLag.set({ replica: String(i) }, h.lagSeconds);
                if (h.lagBytes !== null) metrics.replicaLagBytes.set({ replica: String(i) }, h.lagBytes);
              }),
            config.database.readReplicaCheckMs,
          )
        : {}),
    },
    {
      name: 'redis readiness',
      // serve at once without Redis if it does not answer soon: it is used as soon as it does
      async start() {
        if (redis && !(await redis.whenUp(2000))) logger.warn('redis does not answer: serving without it until it does');
      },
    },
    { name: 'cost recorder', start: async () => recorder.start(config.observability.costFlushIntervalMs), stop: () => recorder.stop() },
    { name: 'readiness', ...readiness },
    {
      name: 'invalidations',
      ...createInvalidationListener({ database, store, hot, onTags: router.enabled ? noticeChanges : undefined, logger }),
    },
    { name: 'model timings', ...createModelTimingListener({ database, metrics, logger }) },
    http,
  ];
  let started: Service[] = [];

  return {
    httpServer,
    apollo,
    recorder,
    metrics,
    store,
    async listen(port = config.port, host = config.host) {
      address = { port, host };
      for (const service of services) {
        await service.start?.();
        started.push(service);
      }
      const bound = httpServer.address() as AddressInfo;
      const shownHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
      return `http://${shownHost}:${bound.port}/graphql`;
    },
    async stop() {
      const order = started.reverse();
      started = [];
      for (const service of order) await service.stop?.();
    },
  };
}
