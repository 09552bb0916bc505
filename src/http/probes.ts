import type { ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { NotReady, type Readiness } from './readiness.js';

/** GET /healthz: the process is alive (nothing else is asked). */
export function answerHealth(res: ServerResponse): void {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ status: 'ok' }));
}

/** GET /readyz: 200 when ready, else 503 with a one-word reason; the cause goes to the log. */
export async function answerReadiness(res: ServerResponse, readiness: Readiness, logger: Logger, requestId: string): Promise<void> {
  res.setHeader('content-type', 'application/json');
  try {
    await readiness.check();
    res.end(JSON.stringify({ status: 'ready', ...readiness.details() }));
  } catch (e) {
    const reason = e instanceof NotReady ? e.reason : 'unavailable';
    if (reason !== 'starting') logger.warn({ err: e, requestId }, 'not ready');
    res.statusCode = 503;
    res.end(JSON.stringify({ status: 'not ready', reason, ...readiness.details() }));
  }
}

/** GET /metrics: Prometheus text. */
export async function answerMetrics(res: ServerResponse, metrics: Metrics): Promise<void> {
  const text = await metrics.registry.metrics();
  res.setHeader('content-type', metrics.registry.contentType);
  res.end(text);
}
