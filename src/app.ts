import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ApolloServer } from '@apollo/server';
import type { Config } from './config.js';
import type { Database, Db } from './db/client.js';
import { createReadReplicas, createReadRouter } from './db/replicas.js';
import { FIELD_PAGE_CAPS } from './domain/pagination.js';
import { newWorkStats, type Context } from './graphql/context.js';
import { buildSchema } from './graphql/schema.js';
import { createLoaders } from './loaders/index.js';
import type { Logger } from './observability/logger.js';
import { createApolloServer } from './graphql/server.js';
import { createMemoryBudget, createRedisBudget, type CostBudget } from './limits/budget.js';
import { addressCaller } from './admission/caller.js';
import { CostEstimator } from './limits/cost-estimate.js';
import { createCostPlugin } from './limits/cost-plugin.js';
import { createCostRecorder, type CostRecorder } from './limits/cost-recorder.js';
import { createHttpHandler, NotReady } from './http/handler.js';
import { createNulGuardPlugin } from './limits/nul-guard.js';
import { limitRules } from './limits/rules.js';
import { credentialFromHeaders } from './admission/credentials.js';
import { InMemoryLRUCache } from '@apollo/utils.keyvaluecache';
import { createPartnerGate } from './admission/admit.js';
import { createDelegation } from './admission/delegation.js';
import { createRedisApqStore } from './cache/apq.js';
import { createRedisLink } from './cache/redis-link.js';
import { boundedLabel, createMetrics, type Metrics } from './observability/metrics.js';
import { MODEL_TIMING_CHANNEL, parseModelTimings } from './observability/model-timings.js';
import { createOperationLogPlugin } from './observability/operation-log.js';
import { createSlowSqlLog } from './observability/slow-sql.js';
import { createResponseStore, type ResponseStore } from './cache/store.js';
import { cacheNamespace } from './cache/namespace.js';
import { createEnvelopGateway } from './cache/executor.js';
import { createHotCache } from './cache/hot.js';
import { INVALIDATION_CHANNEL, parseInvalidation } from './cache/invalidation.js';

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
  apollo: ApolloServer<Context>;
  recorder: CostRecorder;
  metrics: Metrics;
  /** The response cache, when on (tests and commands invalidate through it). */
  store: ResponseStore | null;
  /** Starts Apollo and listens; resolves with the URL of /graphql. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops taking requests, drains those in flight, and stops Apollo (the database is the caller's). */
  stop(): Promise<void>;
}

const localhostOrigin = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/;
// The embedded Apollo Sandbox of the development landing page calls the API from these origins.
const sandboxOrigins = new Set(['https://sandbox.embed.apollographql.com', 'https://studio.apollographql.com']);

export function createApp({
  config,
  database,
  logger,
  isStarted = () => true,
  budget,
  metrics = createMetrics({ pool: database.pool, availability: database.availability, idleConnections: () => database.idleConnections(), redis: Boolean(config.redisUrl) }),
}: AppOptions): App {
  const httpServer = createServer({
    // node's own defaults (60 s for headers, 300 s for a request, checked every 30 s) let a few
    // hundred clients that trickle bytes hold every socket the process may open
    headersTimeout: config.httpHeadersTimeoutMs,
    requestTimeout: config.httpRequestTimeoutMs,
    keepAliveTimeout: config.httpKeepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(config.httpHeadersTimeoutMs / 4))),
  });
  // past the cap node closes new connections at once, and the sockets already open go on being served
  httpServer.maxConnections = config.httpMaxConnections;
  const schema = buildSchema();
  // one Redis client for the response cache, budgets and APQ, behind one breaker (see cache/redis.ts)
  const redis = config.redisUrl
    ? createRedisLink({ url: config.redisUrl, commandTimeoutMs: config.redisCommandTimeoutMs, logger, onState: (up) => metrics.redisUp?.set(up ? 1 : 0) })
    : null;
  // user 7 of one database is not user 7 of another sharing the Redis
  const namespace = cacheNamespace(database);
  const costBudget =
    budget ??
    (redis
      ? createRedisBudget(redis, { costPerMinute: config.rateLimitCostPerMinute, namespace })
      : createMemoryBudget({ costPerMinute: config.rateLimitCostPerMinute }));
  const recorder = createCostRecorder(database.db);
  const gate = createPartnerGate({ db: database.db, cacheTtlMs: config.partnerCacheTtlMs });
  const delegation = createDelegation({ db: database.db, cacheTtlMs: config.partnerCacheTtlMs });
  // Automatic persisted queries for everyone but partners: a bounded store that forgets unused
  // entries, shared by instances through Redis when there is one.
  const apqBounds = { maxBytes: config.apqMaxBytes, maxEntries: config.apqMaxEntries, maxEntryBytes: config.apqMaxEntryBytes, ttlSeconds: config.apqTtlSeconds };
  const apqCache = redis
    ? createRedisApqStore(redis, { namespace, ...apqBounds })
    : new InMemoryLRUCache<string>({ maxSize: apqBounds.maxBytes, max: apqBounds.maxEntries, maxEntrySize: apqBounds.maxEntryBytes, ttl: apqBounds.ttlSeconds * 1000 });
  const store = config.responseCache
    ? createResponseStore({
        maxEntries: config.responseCacheMaxEntries,
        maxBytes: config.responseCacheMaxBytes,
        redis: redis ?? undefined,
        namespace,
        logger,
        metrics,
      })
    : null;
  const hot = config.hotCacheTtlMs > 0 ? createHotCache({ ttlMs: config.hotCacheTtlMs }) : undefined;
  if (hot) store?.onInvalidate((tags) => hot.invalidate(tags));
  // reads of queries may go to replicas; writers and fresh public data read from the primary
  const replicas = config.readReplicaUrls.length
    ? createReadReplicas(config.readReplicaUrls, { dbPoolMax: config.dbPoolMax, statementTimeoutMs: config.requestTimeoutMs })
    : null;
  const router = createReadRouter({ replicas: replicas?.dbs ?? [], readYourWritesMs: config.readYourWritesMs, health: replicas?.health });
  let replicaChecks: NodeJS.Timeout | undefined;
  const checkReplicas = async () => {
    if (!replicas) return;
    await replicas.check();
    replicas.health.forEach((h, i) => {
      metrics.replicaUp.set({ replica: String(i) }, h.up ? 1 : 0);
      if (h.lagSeconds !== null) metrics.replicaLag.set({ replica: String(i) }, h.lagSeconds);
    });
  };
  const noticeChanges = (tags: string[]) => {
    for (const tag of tags) {
      const writer = /^Session:user:(\d+)$/.exec(tag);
      if (writer) router.wrote(Number(writer[1]));
      else if (tag.startsWith('Instrument')) router.publicDataChanged();
    }
  };
  // other instances' mutations reach this one as cache invalidations (through Redis)
  if (router.enabled) store?.onInvalidate(noticeChanges);
  let stopListening: (() => Promise<void>) | undefined;
  let stopTimings: (() => Promise<void>) | undefined;
  // model names and versions come from the database: bounded all the same
  const modelLabel = boundedLabel(50);
  const versionLabel = boundedLabel(200);
  const apollo = createApolloServer({
    schema,
    gateway: createEnvelopGateway({ schema, store, metrics, onWrite: (userId) => router.wrote(userId) }),
    logger,
    production: config.production,
    allowIntrospection: config.allowIntrospection,
    httpServer,
    maxTokens: config.maxTokens,
    persistedQueries: { cache: apqCache, ttl: config.apqTtlSeconds },
    documentStore: { maxEntries: config.documentCacheMaxEntries, maxBytes: config.documentCacheMaxBytes },
    validationRules: limitRules(config),
    plugins: [
      createOperationLogPlugin({ logger, metrics, slowMs: config.slowOperationMs }),
      createNulGuardPlugin(),
      createCostPlugin({
        estimator: new CostEstimator(schema),
        maxCost: config.maxCost,
        caps: FIELD_PAGE_CAPS,
        budget: costBudget,
        recorder,
        observe: (estimated, actual) => {
          metrics.operationCost.observe({ kind: 'estimated' }, estimated);
          metrics.operationCost.observe({ kind: 'actual' }, actual);
        },
      }),
    ],
  });

  async function checkReady(): Promise<void> {
    try {
      if (!isStarted()) throw new NotReady('starting');
      // known to be down: no need to wait for a ping (the availability probe watches for its return)
      if (database.availability.down) throw new NotReady('database', { cause: new Error('the database cannot be reached') });
      // over a connection of its own: it never waits behind the requests in the pool
      await Promise.race([
        database.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('the database did not answer within 2 s')), 2000).unref()),
      ]).catch((e: unknown) => {
        throw new NotReady('database', { cause: e });
      });
      metrics.ready.set(1);
    } catch (e) {
      metrics.ready.set(0);
      throw e;
    }
  }
  let readiness: NodeJS.Timeout | undefined;

  const slowSql = createSlowSqlLog({
    logger,
    explain: (query, params) => database.explain(query, params),
    slowMs: config.slowSqlMs,
    planMs: config.slowSqlPlanMs,
    planSample: config.slowSqlPlanSample,
  });

  const handler = createHttpHandler({
    apollo,
    logger,
    maxBodyBytes: config.maxBodyBytes,
    timeoutMs: config.requestTimeoutMs,
    gate,
    onRefusal: (code) => metrics.errors.inc({ code }),
    // a long line for database connections means the database is saturated: more requests would
    // only wait longer, so they are answered 503 at once until the line shortens
    shed: () => (database.pool.waiting >= config.dbQueueMax || replicas?.pools.some((p) => p.waiting >= config.dbQueueMax) ? 'db_queue' : null),
    onShed: (reason) => metrics.shed.inc({ reason }),
    onResponse: (route, method, status, seconds) => metrics.httpDuration.observe({ route, method, status: String(status) }, seconds),
    async context({ req, requestId, sql, deadline, partner, operationType }) {
      // a partner acts for a user only with a token delegated to it, within its scopes, while the
      // user's grant lives; a delegated token without its partner's key is refused
      const credential = await credentialFromHeaders(req.headers.authorization, config.jwtSecret);
      const viewer = await delegation.viewerFor(credential, partner, operationType);
      const work = newWorkStats();
      const loadersOver = (db: Db) => createLoaders(db, viewer, {
        defaultModel: config.forecastDefaultModel,
        signal: deadline.signal,
        hot,
        observe(event) {
          const { loader, keys, rows, ms } = event;
          metrics.loaderBatchDuration.observe({ loader }, ms / 1000);
          slowSql(requestId, event);
          metrics.loaderBatchSize.observe({ loader }, keys);
          work.batches++;
          work.keys += keys;
          work.rows += rows;
          work.loaderMs += ms;
          const mine = (work.byLoader[loader] ??= { batches: 0, keys: 0, rows: 0 });
          mine.batches++;
          mine.keys += keys;
          mine.rows += rows;
        },
      });
      // each partner has its own budget, whoever it acts for
      const caller = partner ? `partner:${partner.id}` : viewer.kind === 'user' ? `user:${viewer.userId}` : `ip:${addressCaller(req.socket.remoteAddress)}`;
      const timeModel = <T>(model: string, version: string, run: () => T): T => {
        const started = performance.now();
        try {
          return run();
        } finally {
          const ms = performance.now() - started;
          metrics.modelDuration.observe({ model, version, stage: 'request' }, ms / 1000);
          const mine = (work.models[`${model}@${version}`] ??= { runs: 0, ms: 0 });
          mine.runs++;
          mine.ms += ms;
        }
      };
      return {
        requestId,
        viewer,
        caller,
        partner: partner && { id: partner.id, name: partner.name },
        db: database.db,
        sql,
        deadline,
        work,
        loaders: loadersOver(database.db),
        timeModel,
        routeReads(mutation) {
          if (!router.enabled) return;
          const route = router.route(mutation ? 'mutation' : 'query', viewer);
          metrics.readRoutes.inc({ target: route.target, reason: route.reason });
          // `this`: the context the executor holds (Apollo may hand resolvers a copy of the one made here)
          if (route.db) {
            this.db = route.db;
            this.loaders = loadersOver(route.db);
          }
        },
      } satisfies Context;
    },
    accepting: isStarted,
    metrics: () => metrics.registry.metrics().then((text) => ({ text, contentType: metrics.registry.contentType })),
    ready: checkReady,
    readyDetails: redis ? () => ({ redis: redis.up ? 'up' : 'down' }) : undefined,
    allowOrigin: (origin) =>
      config.corsOrigins.includes(origin) || (!config.production && (localhostOrigin.test(origin) || sandboxOrigins.has(origin))),
  });
  // the handler answers its own errors; this is for a bug in that answering: never an unobserved
  // promise (whose rejection would end the process), and never a client left waiting on a half answer
  httpServer.on('request', (req, res) =>
    handler(req, res).catch((e: unknown) => {
      logger.error({ err: e }, 'the HTTP handler failed: closing the connection');
      res.destroy();
    }),
  );

  return {
    httpServer,
    apollo,
    recorder,
    metrics,
    store,
    async listen(port = config.port, host = config.host) {
      await apollo.start();
      // serve at once without Redis if it does not answer soon: it is used as soon as it does
      if (redis && !(await redis.whenUp(2000))) logger.warn('redis does not answer: serving without it until it does');
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host, () => resolve());
      });
      recorder.start(config.costFlushIntervalMs);
      // replicas are checked before the first request and every 5 s: a down or lagging one gets no reads
      if (replicas) {
        await checkReplicas();
        replicaChecks = setInterval(() => void checkReplicas().catch(() => {}), 5000);
        replicaChecks.unref();
      }
      // foliograph_ready follows the database between scrapes of /readyz
      void checkReady().catch(() => {});
      // a statement that succeeded since the last tick already says the database answers: the ping
      // is only for quiet times (so a busy server adds nothing to the database's load)
      readiness = setInterval(() => {
        if (isStarted() && !database.availability.down && performance.now() - database.pool.lastSuccess < 5000) metrics.ready.set(1);
        else void checkReady().catch(() => {});
      }, 5000);
      readiness.unref();
      // writers in other processes (forecasts:generate, seeds) announce stale entities with NOTIFY
      stopListening = await database
        .listen(INVALIDATION_CHANNEL, (payload) => {
          const tags = parseInvalidation(payload);
          // through the store (which tells the hot cache and the router): its generations in Redis
          // too, so no instance can copy a pre-write answer back from the shared tier
          if (store) void store.invalidate(tags);
          else {
            hot?.invalidate(tags);
            if (router.enabled) noticeChanges(tags);
          }
        })
        .catch((e) => {
          logger.warn({ err: e }, 'cannot LISTEN for invalidations: cached public data refreshes at its TTL');
          return undefined;
        });
      // model runs of commands on this database, for the model-duration histogram
      stopTimings = await database
        .listen(MODEL_TIMING_CHANNEL, (payload) => {
          for (const t of parseModelTimings(payload)) metrics.modelDuration.observe({ model: modelLabel(t.model), version: versionLabel(t.version), stage: t.stage }, t.seconds);
        })
        .catch((e) => {
          logger.warn({ err: e }, 'cannot LISTEN for model timings: forecasts:generate runs will not show in /metrics');
          return undefined;
        });
      const address = httpServer.address() as AddressInfo;
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `http://${shownHost}:${address.port}/graphql`;
    },
    async stop() {
      clearInterval(readiness);
      clearInterval(replicaChecks);
      await apollo.stop();
      if (httpServer.listening) await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      await handler.settle(10_000);
      await recorder.stop();
      await stopListening?.().catch(() => {});
      await stopTimings?.().catch(() => {});
      await costBudget.close();
      await redis?.close();
      await replicas?.close();
    },
  };
}
