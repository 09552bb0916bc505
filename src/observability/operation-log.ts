import type { ApolloServerPlugin } from '@apollo/server';
import { trace } from '@opentelemetry/api';
import type { RequestContext } from '../graphql/context.js';
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

/** One finished operation, however it was answered (executed, or a response-cache hit before parsing). */
export interface OperationRecord {
  requestId: string | undefined;
  operationName: string | null;
  /** query, mutation, or null when it never got that far. */
  type: string | null;
  client: string | null;
  clientVersion: string | null;
  /** The caller's budget key (`user:7`): only its kind is logged. */
  caller: string | undefined;
  partner: string | null;
  cost: number | null;
  sql: number;
  rows: number;
  seconds: number;
  /** ok, or the first error code. */
  outcome: string;
  /** Every error code of the answer, counted by code. */
  codes: string[];
  /** For the slow-operation log. */
  batches?: unknown;
  models?: unknown;
}

/**
 * One log line and one histogram observation per operation: who (client name, caller kind, partner),
 * what (operation name and type), what it cost (estimate, SQL statements, rows) and how it ended.
 * Never variables, never credentials. Each label is bounded alone, and so is their product: a series
 * idle for an hour is removed, and past `maxSeries` a new combination is counted under operation and
 * client "other".
 */
export function createOperationRecorder({ logger, metrics, slowMs = 1000, maxSeries = 2000 }: OperationLogOptions) {
  const operationLabel = boundedLabel(500, 'anonymous');
  const clientLabel = boundedLabel(100);
  const partnerLabel = boundedLabel(100, '');
  const series = createBoundedSet({
    max: maxSeries,
    idleMs: 3_600_000,
    onLeave: (key) => metrics.operationDuration.remove(JSON.parse(key) as OperationLabels),
  });
  const labelsOf = (labels: OperationLabels): OperationLabels =>
    series.admit(JSON.stringify(labels, LABELS as unknown as string[])) ? labels : { ...labels, operation: 'other', client: 'other' };

  return function record(op: OperationRecord): void {
    for (const code of op.codes) metrics.errors.inc({ code });
    metrics.operationDuration.observe(
      labelsOf({
        operation: operationLabel(op.operationName),
        type: op.type ?? 'unknown',
        client: clientLabel(op.client),
        partner: partnerLabel(op.partner ?? ''),
        outcome: op.outcome,
      }),
      op.seconds,
    );
    if (!logger.isLevelEnabled('info') && op.seconds * 1000 <= slowMs) return;
    const line = {
      requestId: op.requestId,
      operation: op.operationName,
      type: op.type,
      client: op.client,
      clientVersion: op.clientVersion,
      caller: op.caller?.split(':')[0] ?? 'unknown',
      partner: op.partner,
      cost: op.cost,
      sql: op.sql,
      rows: op.rows,
      ms: Math.round(op.seconds * 1000 * 10) / 10,
      outcome: op.outcome,
    };
    logger.info(line, 'operation');
    if (op.seconds * 1000 > slowMs) logger.warn({ ...line, batches: op.batches ?? {}, models: op.models ?? {} }, 'slow operation');
  };
}

export type OperationRecorder = ReturnType<typeof createOperationRecorder>;

/** The Apollo plugin that records every operation Apollo answers (see createOperationRecorder). */
export function createOperationLogPlugin(record: OperationRecorder): ApolloServerPlugin<RequestContext> {
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
          const outcome = codes[0] ?? 'ok';
          const type = operation?.operation ?? null;
          const span = trace.getActiveSpan();
          span?.updateName(`graphql ${type ?? 'operation'} ${operationName ?? ''}`.trim());
          span?.setAttributes({
            'graphql.operation.name': operationName ?? '',
            'graphql.operation.type': type ?? '',
            'foliograph.outcome': outcome,
            'foliograph.sql': contextValue?.sql.statements ?? 0,
            'foliograph.cost': contextValue?.cost.estimated ?? 0,
          });
          record({
            requestId: contextValue?.requestId,
            operationName: operationName ?? null,
            type,
            client,
            clientVersion,
            caller: contextValue?.caller,
            partner: contextValue?.partner?.name ?? null,
            cost: contextValue?.cost.estimated ?? null,
            sql: contextValue?.sql.statements ?? 0,
            rows: contextValue?.work.rows ?? 0,
            seconds,
            outcome,
            codes,
            batches: contextValue?.work.byLoader,
            models: contextValue?.work.models,
          });
        },
      };
    },
  };
}
