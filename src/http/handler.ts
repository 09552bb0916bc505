import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HeaderMap, type ApolloServer } from '@apollo/server';
import type { Admission, Admitted, Caller } from '../admission/index.js';
import { priorityOfRequest, type LoadControl } from '../admission/load.js';
import { parseLsn, type Lsn } from '../db/causal.js';
import { createDeadline, type Deadline } from '../db/deadline.js';
import type { Priority, SqlStats } from '../db/sql-stats.js';
import { CodedError, ErrorCode, type ShedReason } from '../errors.js';
import type { RequestContext, RequestInput } from '../graphql/context.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { inSpan } from '../observability/tracing.js';
import { BodyTooLarge, parseGraphQLRequest, readBody } from './body.js';
import { applyCors } from './cors.js';
import { answerBy, sendExpiry } from './deadline.js';
import { DEV_TOKEN_PATH } from './dev-token.js';
import { answerHealth, answerMetrics, answerReadiness } from './probes.js';
import type { Readiness } from './readiness.js';
import { sendCodedError, sendError, statusForClient } from './respond.js';
import { sendShed } from './shedding.js';

/**
 * Answers a request before it reaches Apollo when it can (a response-cache hit: see src/cache/hits.ts);
 * resolves to true when it did.
 */
export type EarlyAnswer = (
  res: ServerResponse,
  request: { req: IncomingMessage; requestId: string; admitted: Admitted; caller: Caller; arrived: number; text: string | null },
) => Promise<boolean>;

/**
 * Answers a POST without an API key before its body is even parsed, when the same bytes were answered
 * early before (see `remembered` in src/cache/hits.ts); resolves to true when it did.
 */
export type RememberedAnswer = (res: ServerResponse, request: { req: IncomingMessage; text: string; requestId: string; arrived: number }) => Promise<boolean>;

export interface HttpOptions {
  apollo: ApolloServer<RequestContext>;
  logger: Logger;
  metrics: Metrics;
  /** Credentials to caller: API keys, trusted documents, bearer and delegated tokens. */
  admission: Admission;
  /** Builds the context of one request once admission has settled who calls. */
  context: (request: RequestInput) => RequestContext;
  /** Charges an APQ registration to its caller's budget; the request comes back without it when refused. */
  registration?: (admitted: Admitted, caller: Caller) => Promise<Admitted>;
  /** Answers before parsing what can be (response-cache hits), after admission. */
  early?: EarlyAnswer;
  /** Answers before parsing and admission what was answered early before, byte for byte. */
  remembered?: RememberedAnswer;
  readiness: Readiness;
  /** The development token route (`POST /dev/token`, see dev-token.ts); absent in production. */
  devToken?: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  /** False while start-up work runs: GraphQL answers 503 with Retry-After instead of failing on a half-made database. */
  accepting: () => boolean;
  /** Admission by the database's health: whether a request may start now, by its priority (src/admission/load.ts). */
  load: Pick<LoadControl, 'refusal' | 'patienceMs' | 'arrivalOf'>;
  /** Browser origins allowed by CORS; a function so development can allow any localhost. */
  allowOrigin: (origin: string) => boolean;
  /** Largest request body accepted, in bytes. */
  maxBodyBytes: number;
  /**
   * A query still running after this is answered DEADLINE_EXCEEDED (504) and its loaders stop. A write
   * is not cut short: its transaction rolls back at the deadline and its own answer tells the truth.
   */
  timeoutMs: number;
}

// The target of nearly every request, parsed once (nothing below changes a URL it is given).
const GRAPHQL_TARGET = new URL('/graphql', 'http://localhost');

/** The request target as a URL, or null: node's parser accepts targets (`//:99999`, `//[`) that URL does not. */
function targetOf(req: IncomingMessage): URL | null {
  if (req.url === '/graphql') return GRAPHQL_TARGET;
  try {
    return new URL(req.url ?? '/', 'http://localhost');
  } catch {
    return null;
  }
}

const ROUTES = new Set(['/graphql', '/healthz', '/readyz', '/metrics']);
const METHODS = new Set(['GET', 'POST', 'OPTIONS']);

const requestIdOf = (req: IncomingMessage) => {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[\w.:-]{1,100}$/.test(given) ? given : randomUUID();
};

/**
 * The whole HTTP surface on node:http, each step in the order a request meets it: the target and a
 * request id, CORS, the probes (/healthz, /readyz, /metrics), the API key, the body and its shape,
 * admission (trusted documents, who calls), the early answer of a cached response, shedding by the
 * database's health and the request's priority, and then Apollo's executeHTTPGraphQLRequest under the
 * request's deadline. Nothing here knows GraphQL's internals.
 */
export function createHttpHandler(options: HttpOptions) {
  const { logger, metrics, admission, readiness, timeoutMs } = options;
  // executions still running, even for clients that have gone (or were answered DEADLINE_EXCEEDED):
  // shutdown waits for them before the database closes under them
  const running = new Set<Promise<unknown>>();
  // A write that has begun answers for itself (its transaction rolls back at the deadline); this is
  // how long after the deadline the handler still waits for that answer before saying it is unknown.
  const writeGraceMs = Math.min(timeoutMs, 5000);

  /** A refusal before Apollo: answered with the error's own status and headers, and counted. */
  function refuse(res: ServerResponse, error: CodedError, requestId: string): void {
    const code = String(error.extensions.code);
    logger.info({ requestId, outcome: code }, 'refused before execution');
    metrics.errors.inc({ code });
    sendCodedError(res, error);
  }

  /** A request shed before it starts: 503 OVERLOADED at once, counted by reason and priority. */
  function shed(res: ServerResponse, reason: ShedReason, priority?: Priority): void {
    metrics.shed.inc({ reason, priority: priority ?? 'unknown' });
    metrics.errors.inc({ code: ErrorCode.OVERLOADED });
    sendShed(res, reason, priority);
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const arrived = performance.now();
    const url = targetOf(req);
    const route = url && ROUTES.has(url.pathname) ? url.pathname : 'other';
    const method = METHODS.has(req.method ?? '') ? req.method! : 'other';
    res.once('finish', () => metrics.httpDuration.observe({ route, method, status: String(res.statusCode) }, (performance.now() - arrived) / 1000));
    const requestId = requestIdOf(req);
    res.setHeader('x-request-id', requestId);

    try {
      if (!url) {
        sendError(res, 400, 'the request target is not a valid URL path', 'BAD_USER_INPUT', { reason: 'BAD_REQUEST' });
        return;
      }
      if (applyCors(req, res, options.allowOrigin)) return;
      if (url.pathname === '/healthz') return answerHealth(res);
      if (url.pathname === '/readyz') return await answerReadiness(res, readiness, logger, requestId);
      if (url.pathname === '/metrics') return await answerMetrics(res, metrics);
      if (url.pathname === DEV_TOKEN_PATH && options.devToken) return await options.devToken(req, res);
      if (url.pathname !== '/graphql') {
        sendError(res, 404, `no such endpoint: ${url.pathname.slice(0, 100)}; GraphQL is at /graphql`, 'NOT_FOUND');
        return;
      }
      if (!options.accepting()) return shed(res, 'starting');
      if (req.method !== 'GET' && req.method !== 'POST') {
        res.setHeader('allow', 'GET, POST');
        sendError(res, 405, 'GraphQL accepts GET and POST only', 'BAD_USER_INPUT');
        return;
      }

      // the request's deadline runs from here: admission's lookups count toward it
      const deadline = createDeadline(timeoutMs);
      try {
        await serve(req, res, url, requestId, arrived, deadline);
      } finally {
        deadline.cancel();
      }
    } catch (e) {
      if (e instanceof BodyTooLarge && !res.headersSent) {
        res.setHeader('connection', 'close');
        metrics.errors.inc({ code: ErrorCode.BAD_USER_INPUT });
        sendError(res, 413, `the request body is larger than ${options.maxBodyBytes} bytes`, 'BAD_USER_INPUT');
        return;
      }
      if (req.destroyed && !req.complete) {
        // the client went away (or node's request timeout cut it off) while sending its body
        logger.debug({ requestId }, 'the client closed the connection before sending its whole request');
        res.destroy();
        return;
      }
      logger.error({ err: e, requestId }, 'request failed outside GraphQL');
      metrics.errors.inc({ code: ErrorCode.INTERNAL_SERVER_ERROR });
      if (!res.headersSent) sendError(res, 500, 'Internal server error', 'INTERNAL_SERVER_ERROR', { requestId });
      else res.destroy();
    }
  };

  /** A GraphQL request, from its API key to its answer, under its deadline. */
  async function serve(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    requestId: string,
    arrived: number,
    deadline: Deadline & { cancel(): void },
  ): Promise<void> {
    let admitted: Admitted;
    let caller: Caller;
    let text: string | null;
    let consistentAfter: Lsn | undefined;
    try {
      // an API key is checked before anything else of the request is read
      const apiKeyHeader = req.headers['x-api-key'];
      const apiKey = Array.isArray(apiKeyHeader) ? apiKeyHeader[0] : apiKeyHeader;
      const partner = apiKey === undefined ? null : await admission.authenticate(apiKey);
      consistentAfter = readConsistentAfter(req);
      text = req.method === 'POST' ? await readBody(req, options.maxBodyBytes) : null;
      if (text !== null && partner === null && options.remembered && (await options.remembered(res, { req, text, requestId, arrived }))) return;
      admitted = await admission.admit(parseGraphQLRequest(req, url, text), partner);
      caller = await admission.callerOf(req, admitted);
      if (options.registration) admitted = await options.registration(admitted, caller);
    } catch (e) {
      if (!(e instanceof CodedError)) throw e;
      refuse(res, e, requestId);
      return;
    }
    if (options.early && (await options.early(res, { req, requestId, admitted, caller, arrived, text }))) return;
    // what the cache could not answer needs the database: it starts only if the line lets it (by what
    // it claims to be; once parsed and priced, the cost plugin asks again with what it is)
    const priority = priorityOfRequest(admitted, caller);
    const shedReason = options.load.refusal(priority, deadline.remainingMs());
    if (shedReason === 'deadline') {
      metrics.errors.inc({ code: ErrorCode.DEADLINE_EXCEEDED });
      sendExpiry(res, 'expired', timeoutMs);
      return;
    }
    if (shedReason) return shed(res, shedReason, priority);

    const { request } = admitted;
    const headers = new HeaderMap();
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
    }
    // a partner's trusted document goes to Apollo as a plain JSON POST
    if (admitted.partner) headers.set('content-type', 'application/json');
    if (deadline.remainingMs() <= 0) {
      metrics.errors.inc({ code: ErrorCode.DEADLINE_EXCEEDED });
      sendExpiry(res, 'expired', timeoutMs);
      return;
    }
    // Every statement the operation sends (through the database handle its context gives it) is
    // counted in `sql`, and its waits for a database connection give up at its deadline and stand in
    // line at its priority (the cost plugin settles it once the operation is parsed).
    const sql: SqlStats = { statements: 0, deadline, priority, patienceMs: options.load.patienceMs(priority), arrivedAt: options.load.arrivalOf(arrived) };
    const context = options.context({ requestId, caller, sql, deadline, consistentAfter });
    // the operation's span: loader spans nest under it; the operation log plugin names it
    const execution = inSpan(
      'graphql',
      { 'foliograph.request_id': requestId, ...(admitted.partner ? { 'foliograph.partner': admitted.partner.name } : {}) },
      () =>
        options.apollo.executeHTTPGraphQLRequest({
          httpGraphQLRequest: { method: request.method, headers, search: request.search, body: request.body },
          context: async () => context,
        }),
    );
    running.add(execution);
    void execution.catch(() => {}).finally(() => running.delete(execution));
    const response = await answerBy(execution, deadline, writeGraceMs);
    if (response === 'expired' || response === 'outcome unknown') {
      // A query goes on only until its next loader batch (which refuses to start) or until
      // PostgreSQL's statement_timeout stops its current statement; its answer is dropped.
      metrics.errors.inc({ code: ErrorCode.DEADLINE_EXCEEDED });
      sendExpiry(res, response, timeoutMs);
      return;
    }
    for (const [key, value] of response.headers) res.setHeader(key, value);
    // the server's own time for this answer (W3C Server-Timing), so clients can tell it from the network's
    res.setHeader('server-timing', `app;dur=${(performance.now() - arrived).toFixed(2)}`);
    res.statusCode = response.status ?? 200;
    if (response.body.kind === 'complete') {
      res.statusCode = statusForClient(res.statusCode, response.headers.get('content-type'), response.body.string);
      res.end(response.body.string);
    } else {
      for await (const chunk of response.body.asyncIterator) res.write(chunk);
      res.end();
    }
  }

  return Object.assign(handle, {
    /** Resolves when every execution has ended, or after `ms`. */
    settle: (ms: number) => Promise.race([Promise.allSettled([...running]), new Promise((r) => setTimeout(r, ms).unref())]),
  });
}

/**
 * The WAL position a client's reads must see (`X-Consistent-After`, as a mutation's `X-Commit-LSN`
 * gave it): its writes made in another session or on another device. A malformed one changes nothing
 * and is refused.
 */
function readConsistentAfter(req: IncomingMessage): Lsn | undefined {
  const given = req.headers['x-consistent-after'];
  if (given === undefined) return undefined;
  const lsn = parseLsn(Array.isArray(given) ? given[0] : given);
  if (lsn === null) {
    throw new CodedError(
      ErrorCode.BAD_USER_INPUT,
      'X-Consistent-After must be a WAL position as a mutation answered it (X-Commit-LSN), such as 0/16B3748',
      { reason: 'BAD_REQUEST' },
      400,
    );
  }
  return lsn;
}
