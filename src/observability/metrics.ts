import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import { totalStatements } from '../db/sql-stats.js';

/**
 * Every metric of one process, in its own registry (tests build several apps in one process).
 * Label values stay bounded: operation and client names pass through `bounded` first.
 */
export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
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
    help: 'Invalidations by the type of what changed (Session for a caller\'s private answers, Instrument, ...)',
    labelNames: ['type'] as const,
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
  return { registry, operationDuration, errors, cacheRequests, cacheEvictions, cacheInvalidations, singleFlightJoins };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Keeps a label's distinct values bounded: the first `max` values seen are kept, later new ones
 * become "other", so a client inventing operation names cannot grow the metrics without end.
 */
export function boundedLabel(max: number, fallback = 'unknown') {
  const seen = new Set<string>();
  return (value: string | null | undefined): string => {
    const v = (value ?? '').slice(0, 100) || fallback;
    if (seen.has(v)) return v;
    if (seen.size >= max) return 'other';
    seen.add(v);
    return v;
  };
}
