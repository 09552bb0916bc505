import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Availability } from '../db/availability.js';
import type { PoolGate } from '../db/gate.js';
import { totalStatements, type Priority } from '../db/sql-stats.js';
import type { LiveCalibration } from '../domain/forecasting/scoring.js';
import { createBoundedSet } from './bounded.js';

/**
 * Every metric of one process, in its own registry (tests build several apps in one process).
 * Label values stay bounded: operation and client names pass through `bounded` first.
 */
export interface MetricsOptions {
  defaultMetrics?: boolean;
  /** The gate in front of the database pool: statements running and waiting, and every wait. */
  pool?: PoolGate;
  /** This process's idle database connections as the database sees them, read at scrape time. */
  idleConnections?: () => Promise<number>;
  /** Whether the database can be reached (see src/db/availability.ts). */
  availability?: Availability;
  /** Whether REDIS_URL is set: foliograph_redis_up is NaN without it. */
  redis?: boolean;
  /** The forecasts' live calibration (src/domain/forecasting/scoring.ts), read at scrape time; cached by the caller. */
  forecastCalibration?: () => Promise<LiveCalibration[]>;
}

// the priorities requests run at (system and background work are the server's own)
const REQUEST_PRIORITIES: Priority[] = ['write', 'partner', 'user', 'anonymous'];

export function createMetrics(options: MetricsOptions = {}) {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'foliograph_' });
  const operationDuration = new Histogram({
    name: 'foliograph_graphql_operation_duration_seconds',
    help: 'GraphQL operations by name, type, client, partner and outcome (ok or the first error code)',
    labelNames: ['operation', 'type', 'client', 'partner', 'outcome'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const errors = new Counter({
    name: 'foliograph_graphql_errors_total',
    help: 'GraphQL errors by code',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const cacheRequests = new Counter({
    name: 'foliograph_response_cache_requests_total',
    help: 'Response cache lookups by result (hit or miss) and tier (local or redis)',
    labelNames: ['result', 'tier'] as const,
    registers: [registry],
  });
  const cacheEvictions = new Counter({
    name: 'foliograph_response_cache_evictions_total',
    help: 'Cached answers dropped to stay within the entry and byte bounds',
    registers: [registry],
  });
  const cacheInvalidations = new Counter({
    name: 'foliograph_response_cache_invalidations_total',
    help: "Invalidations by the type of what changed (Session for a caller's private answers, Instrument, ...)",
    labelNames: ['type'] as const,
    registers: [registry],
  });
  const earlyHits = new Counter({
    name: 'foliograph_response_cache_early_hits_total',
    help: 'Response-cache hits answered before parsing (the stored bytes written out by the HTTP layer), among the local hits',
    registers: [registry],
  });
  const apqRegistrations = new Counter({
    name: 'foliograph_apq_registrations_total',
    help: "Automatic persisted query registrations charged to their callers' budgets, by outcome (registered, or refused: run unregistered)",
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const singleFlightJoins = new Counter({
    name: 'foliograph_single_flight_joined_total',
    help: 'Operations that waited for an identical operation already running instead of executing',
    registers: [registry],
  });
  // SQL statements this process sent (counted by the Drizzle logger), read at every scrape
  let reported = 0;
  new Counter({
    name: 'foliograph_sql_statements_total',
    help: 'SQL statements sent to the database by this process',
    registers: [registry],
    collect() {
      const now = totalStatements();
      this.inc(Math.max(0, now - reported));
      reported = now;
    },
  });
  const httpDuration = new Histogram({
    name: 'foliograph_http_request_duration_seconds',
    help: 'HTTP requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const loaderBatchDuration = new Histogram({
    name: 'foliograph_loader_batch_duration_seconds',
    help: 'Time of one DataLoader batch (its one SQL statement, or a hot-cache answer) by loader',
    labelNames: ['loader'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const loaderBatchSize = new Histogram({
    name: 'foliograph_loader_batch_keys',
    help: 'Keys in one DataLoader batch by loader',
    labelNames: ['loader'] as const,
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    registers: [registry],
  });
  const operationCost = new Histogram({
    name: 'foliograph_operation_cost',
    help: 'Operation cost: estimated (from @cost/@listSize) and actual (rows fetched)',
    labelNames: ['kind'] as const,
    buckets: [1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000, 100_000],
    registers: [registry],
  });
  const pool = options.pool;
  new Gauge({
    name: 'foliograph_db_pool_connections',
    help: "This process's database connections by state: in_use (running a statement or a transaction), idle (open, as PostgreSQL sees them), waiting (statements queued for a connection)",
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      if (!pool) return;
      this.set({ state: 'in_use' }, pool.active);
      this.set({ state: 'waiting' }, pool.waiting);
      const idle = await options.idleConnections?.().catch(() => null);
      if (idle !== null && idle !== undefined) this.set({ state: 'idle' }, idle);
    },
  });
  new Gauge({
    name: 'foliograph_db_pool_max',
    help: 'Most database connections this process uses at once (DB_POOL_MAX; 1 on PGlite)',
    registers: [registry],
    collect() {
      this.set(pool?.permits ?? 1);
    },
  });
  new Gauge({
    name: 'foliograph_db_available',
    help: '1 while the database answers, 0 while it cannot be reached (requests that need it are answered 503 DATABASE_UNAVAILABLE at once)',
    registers: [registry],
    collect() {
      this.set(options.availability?.down ? 0 : 1);
    },
  });
  const poolWait = new Histogram({
    name: 'foliograph_db_pool_wait_seconds',
    help: 'Time a statement or transaction waited for a database connection (0 when one was free)',
    buckets: [0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  pool?.onWait((seconds) => poolWait.observe(seconds));
  const sqlDuration = new Histogram({
    name: 'foliograph_sql_duration_seconds',
    help: 'Time of each SQL statement by kind (select, insert, update, delete, other), and of each whole transaction (transaction), from getting a connection to the answer',
    labelNames: ['kind'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  pool?.onDone((kind, seconds) => sqlDuration.observe({ kind }, seconds));
  const shed = new Counter({
    name: 'foliograph_shed_requests_total',
    help:
      'Requests answered OVERLOADED (503) before they could change anything, by reason (starting; db_wait: the expected wait for a connection too long for the ' +
      "request's priority; db_queue: DB_QUEUE_MAX statements waiting ahead; cost_in_flight: too much estimated cost running; dropped: pushed back in the line " +
      'past its deadline) and priority (write, partner, user, anonymous; unknown while starting)',
    labelNames: ['reason', 'priority'] as const,
    registers: [registry],
  });
  pool?.onDrop((priority) => shed.inc({ reason: 'dropped', priority }));
  new Gauge({
    name: 'foliograph_db_pool_expected_wait_seconds',
    help: "How long a new statement would wait for a database connection now, by the request's priority (the line ahead of it × the recent time a connection is held)",
    labelNames: ['priority'] as const,
    registers: [registry],
    collect() {
      if (!pool) return;
      for (const priority of REQUEST_PRIORITIES) this.set({ priority }, pool.expectedWaitMs(priority) / 1000);
    },
  });
  let costInFlight: (() => number) | undefined;
  new Gauge({
    name: 'foliograph_admission_cost_in_flight',
    help: 'Estimated cost of the operations admitted and not yet answered (capped by ADMISSION_MAX_COST_IN_FLIGHT)',
    registers: [registry],
    collect() {
      this.set(costInFlight?.() ?? 0);
    },
  });
  const readRoutes = new Counter({
    name: 'foliograph_db_read_routes_total',
    help: 'Where requests read with READ_REPLICA_URLS set, by target (primary or replica) and reason (replica, mutation, read_your_writes, catch_up, no_healthy_replica)',
    labelNames: ['target', 'reason'] as const,
    registers: [registry],
  });
  const replicaUp = new Gauge({
    name: 'foliograph_db_replica_up',
    help: 'With READ_REPLICA_URLS: 1 while a replica (by its position in the list) answers its health check every 5 s, else 0',
    labelNames: ['replica'] as const,
    registers: [registry],
  });
  const replicaFailovers = new Counter({
    name: 'foliograph_db_replica_failovers_total',
    help: 'With READ_REPLICA_URLS: reads a replica could not run for a connection reason, run again on the primary (the replica is marked down until its next check answers)',
    labelNames: ['replica'] as const,
    registers: [registry],
  });
  let replicaPools: readonly PoolGate[] = [];
  new Gauge({
    name: 'foliograph_db_replica_pool_connections',
    help: "With READ_REPLICA_URLS: each replica's connections in use and statements waiting for one, by the replica's position in the list",
    labelNames: ['replica', 'state'] as const,
    registers: [registry],
    collect() {
      replicaPools.forEach((p, i) => {
        this.set({ replica: String(i), state: 'in_use' }, p.active);
        this.set({ replica: String(i), state: 'waiting' }, p.waiting);
      });
    },
  });
  const replicaLag = new Gauge({
    name: 'foliograph_db_replica_lag_seconds',
    help: 'With READ_REPLICA_URLS: how old the newest data a replica has not replayed is (0 while it has replayed all the primary had written when asked; a replica further behind than READ_REPLICA_MAX_LAG_MS gets no reads)',
    labelNames: ['replica'] as const,
    registers: [registry],
  });
  const replicaLagBytes = new Gauge({
    name: 'foliograph_db_replica_lag_bytes',
    help: "With READ_REPLICA_URLS: bytes of the primary's WAL a standby had not replayed when last checked",
    labelNames: ['replica'] as const,
    registers: [registry],
  });
  const ready = new Gauge({
    name: 'foliograph_ready',
    help: '1 while the server is ready (database answering, migrations and first seed done), else 0',
    registers: [registry],
  });
  const processErrors = new Counter({
    name: 'foliograph_process_errors_total',
    help: 'Errors that reached the process itself (kind: unhandled_rejection, logged and survived; uncaught_exception, followed by an exit)',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const redisUp = new Gauge({
    name: 'foliograph_redis_up',
    help: 'With REDIS_URL: 1 while Redis answers and is used, 0 while it is failing and skipped (answers then come from PostgreSQL, budgets are open); NaN without REDIS_URL',
    registers: [registry],
  });
  // without Redis there is nothing to be up or down: NaN, which no comparison (the alert's == 0) matches
  if (!options.redis) redisUp.set(NaN);
  const modelDuration = new Histogram({
    name: 'foliograph_forecast_model_duration_seconds',
    help: 'Forecast model work by model, version and stage (inference: one series; generation: a whole run)',
    labelNames: ['model', 'version', 'stage'] as const,
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60],
    registers: [registry],
  });
  // the live calibration, as the caller's reader has it (one read serves many scrapes); null when it
  // failed or has not answered within 250 ms: a scrape never waits on a saturated pool, and the read
  // it started answers a later one
  const calibrationLabels = { model: boundedLabel(50), version: boundedLabel(200) };
  const calibration = async (): Promise<LiveCalibration[] | null> => {
    const read = options.forecastCalibration?.();
    if (!read) return [];
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), 250)));
    try {
      return await Promise.race([read.catch(() => null), late]);
    } finally {
      clearTimeout(timer);
    }
  };
  const labelsOf = (c: LiveCalibration) => ({
    model: calibrationLabels.model(c.model),
    version: calibrationLabels.version(c.version),
    horizon_days: String(c.horizonDays),
  });
  new Gauge({
    name: 'foliograph_forecast_scored_outcomes',
    help: 'Scored forecasts in the live calibration window (FORECAST_CALIBRATION_WINDOW latest per model version and horizon), by model, version and horizon_days',
    labelNames: ['model', 'version', 'horizon_days'] as const,
    registers: [registry],
    async collect() {
      const found = await calibration();
      if (!found) return; // the database did not answer: the last values stand
      this.reset();
      for (const c of found) this.set(labelsOf(c), c.outcomes);
    },
  });
  new Gauge({
    name: 'foliograph_forecast_realised_coverage',
    help: 'Share of scored outcomes in the window inside the central interval at each level (50, 80, 90, 95, 99), by model, version and horizon_days',
    labelNames: ['model', 'version', 'horizon_days', 'level'] as const,
    registers: [registry],
    async collect() {
      const found = await calibration();
      if (!found) return;
      this.reset();
      for (const c of found) for (const [level, share] of Object.entries(c.coverage)) this.set({ ...labelsOf(c), level }, share);
    },
  });
  new Gauge({
    name: 'foliograph_forecast_realised_tail_share',
    help: 'Share of scored outcomes in the window below (tail="below") or above (tail="above") the 95% interval, by model, version and horizon_days',
    labelNames: ['model', 'version', 'horizon_days', 'tail'] as const,
    registers: [registry],
    async collect() {
      const found = await calibration();
      if (!found) return;
      this.reset();
      for (const c of found) {
        this.set({ ...labelsOf(c), tail: 'below' }, c.belowLower95);
        this.set({ ...labelsOf(c), tail: 'above' }, c.aboveUpper95);
      }
    },
  });
  return {
    registry,
    /** The replicas' pools, for foliograph_db_replica_pool_connections (they are opened after the metrics). */
    watchReplicaPools(pools: readonly PoolGate[]) {
      replicaPools = pools;
    },
    /** Where foliograph_admission_cost_in_flight reads from (admission is made after the metrics). */
    watchCostInFlight(read: () => number) {
      costInFlight = read;
    },
    ready,
    processErrors,
    redisUp,
    shed,
    readRoutes,
    replicaUp,
    replicaLag,
    replicaLagBytes,
    replicaFailovers,
    poolWait,
    modelDuration,
    operationDuration,
    errors,
    httpDuration,
    loaderBatchDuration,
    loaderBatchSize,
    operationCost,
    cacheRequests,
    cacheEvictions,
    cacheInvalidations,
    earlyHits,
    apqRegistrations,
    singleFlightJoins,
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Keeps a label's distinct values bounded: at most `max` values at once (each cut to 100 characters),
 * new ones beyond that become "other", and a value unused for an hour frees its place, so a client
 * inventing names can neither grow the metrics without end nor keep others' names out for good.
 */
export function boundedLabel(max: number, fallback = 'unknown', idleMs = 3_600_000) {
  const seen = createBoundedSet({ max, idleMs });
  return (value: string | null | undefined): string => {
    const v = (value ?? '').slice(0, 100) || fallback;
    return seen.admit(v) ? v : 'other';
  };
}
