import type { ApolloServerPlugin } from '@apollo/server';
import { trace } from '@opentelemetry/api';
import type { Context } from '../graphql/context.js';
import type { Logger } from './logger.js';
import { createBoundedSet } from './bounded.js';
import { boundedLabel, type Metrics } from './metrics.js';

export interface OperationLogOptions {
  logger: Logger;
  metrics: Metrics;
  /** Above this, the operation is also logged at warn level with the loader batches it ran. */
  slowMs?: number;
  /** Most label combinations (series) of the operation histogram at once; beyond, operation and client read "other". */
  maxSeries?: number;
}

const LABELS = ['operation', 'type', 'client', 'partner', 'outcome'] as const;
type OperationLabels = Record<(typeof LABELS)[number], string>;

/**
 * One log line and one histogram observation per operation: who (client name, caller kind, partner),
 * what (operation name and type), what it cost (estimate, SQL statements, rows) and how it ended.
 * Never variables, never credentials.
 */
export function createOperationLogPlugin({ logger, metrics, slowMs = 1000, maxSeries = 2000 }: OperationLogOptions): ApolloServerPlugin<Context> {
  const operationLabel = boundedLabel(500, 'anonymous');
  const clientLabel = boundedLabel(100);
  const partnerLabel = boundedLabel(100, '');
  // Each label is bounded alone, and so is their product: a series idle for an hour is removed, and
  // past `maxSeries` a new combination is counted under operation and client "other".
  const series = createBoundedSet({
    max: maxSeries,
    idleMs: 3_600_000,
    onLeave: (key) => metrics.operationDuration.remove(JSON.parse(key) as OperationLabels),
  });
  const labelsOf = (labels: OperationLabels): OperationLabels =>
    series.admit(JSON.stringify(labels, LABELS as unknown as string[])) ? labels : { ...labels, operation: 'other', client: 'other' };
  return {
    async requestDidStart({ request }) {
      const started = performance.now();
      const client = request.http?.headers.get('apollographql-client-name') ?? null;
      const clientVersion = request.http?.headers.get('apollographql-client-version') ?? null;
      return {
        async willSendResponse({ response, contextValue, operationName, operation }) {
          const seconds = (performance.now() - started) / 1000;
          const errors = response.body.kind === 'single' ? (response.body.singleResult.errors ?? []) : [];
          const codes = errors.map((e) => String(e.extensions?.code ?? 'INTERNAL_SERVER_ERROR'));
          for (const code of codes) metrics.errors.inc({ code });
          const outcome = codes[0] ?? 'ok';
          const partner = contextValue?.partner?.name ?? '';
          metrics.operationDuration.observe(
            labelsOf({ operation: operationLabel(operationName), type: operation?.operation ?? 'unknown', client: clientLabel(client), partner: partnerLabel(partner), outcome }),
            seconds,
          );
          const line = {
              requestId: contextValue?.requestId,
              operation: operationName ?? null,
              type: operation?.operation ?? null,
              client,
              clientVersion,
              caller: contextValue?.caller?.split(':')[0] ?? 'unknown',
              partner: partner || null,
              cost: contextValue?.cost?.estimated ?? null,
              sql: contextValue?.sql.statements ?? 0,
              rows: contextValue?.work.rows ?? 0,
              ms: Math.round(seconds * 1000 * 10) / 10,
              outcome,
          };
          const span = trace.getActiveSpan();
          span?.updateName(`graphql ${operation?.operation ?? 'operation'} ${operationName ?? ''}`.trim());
          span?.setAttributes({ 'graphql.operation.name': operationName ?? '', 'graphql.operation.type': operation?.operation ?? '', 'foliograph.outcome': outcome, 'foliograph.sql': line.sql, 'foliograph.cost': line.cost ?? 0 });
          logger.info(line, 'operation');
          if (seconds * 1000 > slowMs) logger.warn({ ...line, batches: contextValue?.work.byLoader ?? {}, models: contextValue?.work.models ?? {} }, 'slow operation');
        },
      };
    },
  };
}
