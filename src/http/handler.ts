import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HeaderMap, type ApolloServer } from '@apollo/server';
import { createDeadline, type Deadline } from '../db/deadline.js';
import { withSqlStats, type SqlStats } from '../db/sql-stats.js';
import type { Context } from '../graphql/context.js';
import { CodedError, ErrorCode } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { inSpan } from '../observability/tracing.js';
import type { AuthenticatedPartner } from '../admission/partners.js';
import type { Admitted, PartnerGate } from '../admission/admit.js';
import { inputShapeProblem } from '../limits/variables.js';

export interface HttpOptions {
  apollo: ApolloServer<Context>;
  logger: Logger;
  /** Builds the GraphQL context of one request (auth, loaders); may throw a coded error. */
  context: (request: {
    req: IncomingMessage;
    requestId: string;
    sql: SqlStats;
    deadline: Deadline;
    partner: AuthenticatedPartner | null;
    /** The type of a partner's trusted document (query or mutation). */
    operationType?: string;
  }) => Promise<Context>;
  /** Told of every finished response: its route (a known path, else "other"), method, status and time. */
  onResponse?: (route: string, method: string, status: number, seconds: number) => void;
  /** Told of every request refused before Apollo or cut short (its error code), e.g. for metrics. */
  onRefusal?: (code: string) => void;
  /** Load shedding: a reason to answer OVERLOADED (503) at once, or null to go on. */
  shed?: () => string | null;
  /** Told of every request shed, with the reason (`starting` while start-up work runs). */
  onShed?: (reason: string) => void;
  /** Admission before Apollo: API keys, trusted documents, persisted-query hashes. */
  gate?: PartnerGate;
  /**
   * A query still running after this is answered DEADLINE_EXCEEDED (504) and its loaders stop. A write
   * is not cut short: its transaction rolls back at the deadline and its own answer tells the truth.
   */
  timeoutMs: number;
  /** Resolves when the server is ready; rejects otherwise, with a NotReady whose reason clients may see. */
  ready: () => Promise<void>;
  /** More for /readyz to show, ready or not (what it depends on but can serve without, e.g. Redis). */
  readyDetails?: () => Record<string, string>;
  /** The Prometheus text of /metrics. */
  metrics?: () => Promise<{ text: string; contentType: string }>;
  /** False while start-up work runs: GraphQL answers 503 with Retry-After instead of failing on a half-made database. */
  accepting: () => boolean;
  /** Browser origins allowed by CORS; a function so development can allow any localhost. */
  allowOrigin: (origin: string) => boolean;
  /** Largest request body accepted, in bytes. */
  maxBodyBytes: number;
}

const ALLOWED_HEADERS = [
  'content-type',
  'authorization',
  'x-api-key',
  'x-request-id',
  'apollo-require-preflight',
  'apollographql-client-name',
  'apollographql-client-version',
].join(', ');

class BodyTooLarge extends Error {}

/**
 * Why the server is not ready, as one word a client may see (`starting`, `database`); the cause, which
 * may name hosts or say why a login failed, goes to the log only.
 */
export class NotReady extends Error {
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`not ready: ${reason}`, options);
    this.name = 'NotReady';
  }
}

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new BodyTooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BodyTooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The execution's response, or 'expired' once the deadline passes: at once for a query (reading can
 * stop anywhere), but for a write that has begun only if it has not answered `graceMs` later (its
 * transaction rolls back at the deadline and says so itself; past the grace nobody knows its outcome).
 */
async function answerBy<T>(execution: Promise<T>, deadline: Deadline, graceMs: number): Promise<T | 'expired' | 'outcome unknown'> {
  const expired = new Promise<'expired'>((resolve) => deadline.signal.addEventListener('abort', () => resolve('expired'), { once: true }));
  const first = await Promise.race([execution, expired]);
  if (first !== 'expired' || !deadline.writing) return first;
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<'outcome unknown'>((resolve) => (timer = setTimeout(() => resolve('outcome unknown'), graceMs)));
  return Promise.race([execution, grace]).finally(() => clearTimeout(timer));
}

/** A GraphQL-shaped error answer for requests that never reach Apollo (bad JSON, huge bodies). */
function sendError(res: ServerResponse, status: number, message: string, code: string, extra: Record<string, unknown> = {}) {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.end(JSON.stringify({ errors: [{ message, extensions: { code, ...extra } }] }));
}

/** The request target as a URL, or null: node's parser accepts targets (`//:99999`, `//[`) that URL does not. */
function targetOf(req: IncomingMessage): URL | null {
  try {
    return new URL(req.url ?? '/', 'http://localhost');
  } catch {
    return null;
  }
}

const ROUTES = ['/graphql', '/healthz', '/readyz', '/metrics'];

/** A JSON parameter of a GET request's search string (variables, extensions), or undefined; Apollo answers a bad one. */
function searchJson(url: URL, name: string): unknown {
  const text = url.searchParams.get(name);
  if (text === null) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const requestIdOf = (req: IncomingMessage) => {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[\w.:-]{1,100}$/.test(given) ? given : randomUUID();
};

/**
 * The whole HTTP surface on node:http: /graphql through Apollo's executeHTTPGraphQLRequest (GET, POST,
 * and the Sandbox landing page), /healthz, /readyz, and CORS. Nothing here knows GraphQL's internals.
 */
export function createHttpHandler(options: HttpOptions) {
  // executions still running, even for clients that have gone (or were answered DEADLINE_EXCEEDED):
  // shutdown waits for them before the database closes under them
  const running = new Set<Promise<unknown>>();
  const { maxBodyBytes: maxBody, timeoutMs } = options;
  // A write that has begun answers for itself (its transaction rolls back at the deadline); this is
  // how long after the deadline the handler still waits for that answer before saying it is unknown.
  const writeGraceMs = Math.min(timeoutMs, 5000);
  /** Answers a refusal from the gate (a coded error with its status); false for any other error. */
  function refused(e: unknown, res: ServerResponse): boolean {
    if (!(e instanceof CodedError)) return false;
    const http = e.extensions.http as { status?: number } | undefined;
    const { http: _http, ...extensions } = e.extensions;
    options.logger.info({ requestId: res.getHeader('x-request-id'), outcome: extensions.code }, 'refused before execution');
    options.onRefusal?.(String(extensions.code));
    sendError(res, http?.status ?? 400, e.message, String(extensions.code), extensions);
    return true;
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const arrived = performance.now();
    const url = targetOf(req);
    if (options.onResponse) {
      const route = url && ROUTES.includes(url.pathname) ? url.pathname : 'other';
      const method = ['GET', 'POST', 'OPTIONS'].includes(req.method ?? '') ? req.method! : 'other';
      res.once('finish', () => options.onResponse!(route, method, res.statusCode, (performance.now() - arrived) / 1000));
    }
    const requestId = requestIdOf(req);
    res.setHeader('x-request-id', requestId);

    try {
      if (!url) {
        sendError(res, 400, 'the request target is not a valid URL path', 'BAD_USER_INPUT', { reason: 'BAD_REQUEST' });
        return;
      }
      const origin = req.headers.origin;
      if (origin && options.allowOrigin(origin)) {
        res.setHeader('access-control-allow-origin', origin);
        res.setHeader('vary', 'Origin');
        if (req.method === 'OPTIONS') {
          res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
          res.setHeader('access-control-allow-headers', ALLOWED_HEADERS);
          res.setHeader('access-control-max-age', '600');
          res.statusCode = 204;
          res.end();
          return;
        }
      }

      if (url.pathname === '/healthz') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ status: 'ok' }));
        return;
      }
      if (url.pathname === '/readyz') {
        res.setHeader('content-type', 'application/json');
        try {
          await options.ready();
          res.end(JSON.stringify({ status: 'ready', ...options.readyDetails?.() }));
        } catch (e) {
          const reason = e instanceof NotReady ? e.reason : 'unavailable';
          if (reason !== 'starting') options.logger.warn({ err: e, requestId }, 'not ready');
          res.statusCode = 503;
          res.end(JSON.stringify({ status: 'not ready', reason, ...options.readyDetails?.() }));
        }
        return;
      }
      if (url.pathname === '/metrics' && options.metrics) {
        const { text, contentType } = await options.metrics();
        res.setHeader('content-type', contentType);
        res.end(text);
        return;
      }
      if (url.pathname !== '/graphql') {
        sendError(res, 404, `no such endpoint: ${url.pathname.slice(0, 100)}; GraphQL is at /graphql`, 'NOT_FOUND');
        return;
      }
      const shedReason = options.accepting() ? (options.shed?.() ?? null) : 'starting';
      if (shedReason) {
        options.onShed?.(shedReason);
        options.onRefusal?.(ErrorCode.OVERLOADED);
        res.setHeader('retry-after', '1');
        const message = shedReason === 'starting' ? 'the server is starting: retry in a moment' : 'the server is overloaded: retry in a moment';
        sendError(res, 503, message, ErrorCode.OVERLOADED, { reason: shedReason });
        return;
      }
      if (req.method !== 'GET' && req.method !== 'POST') {
        res.setHeader('allow', 'GET, POST');
        sendError(res, 405, 'GraphQL accepts GET and POST only', 'BAD_USER_INPUT');
        return;
      }

      // an API key is checked before anything else of the request is read
      const apiKeyHeader = req.headers['x-api-key'];
      const apiKey = Array.isArray(apiKeyHeader) ? apiKeyHeader[0] : apiKeyHeader;
      let partner: AuthenticatedPartner | null = null;
      if (apiKey !== undefined && options.gate) {
        try {
          partner = await options.gate.authenticate(apiKey);
        } catch (e) {
          if (refused(e, res)) return;
          throw e;
        }
      }

      let body: unknown = undefined;
      if (req.method === 'POST') {
        const text = await readBody(req, maxBody);
        const type = req.headers['content-type'] ?? '';
        if (/^application\/(graphql-response\+)?json\b/i.test(type) || /^application\/json/i.test(type)) {
          try {
            body = JSON.parse(text);
          } catch {
            sendError(res, 400, 'the request body is not valid JSON', 'BAD_USER_INPUT', { reason: 'BAD_REQUEST' });
            return;
          }
        } else body = text;
      }
      // before anything walks them (keys, checks, coercion), and without recursion
      for (const argument of ['variables', 'extensions'] as const) {
        const value = req.method === 'POST' ? (body as Record<string, unknown> | null)?.[argument] : searchJson(url, argument);
        const problem = inputShapeProblem(value);
        if (problem) {
          options.onRefusal?.(ErrorCode.BAD_USER_INPUT);
          sendError(res, 400, `the request's ${argument} ${problem}`, ErrorCode.BAD_USER_INPUT, { argument });
          return;
        }
      }

      const headers = new HeaderMap();
      for (const [key, value] of Object.entries(req.headers)) {
        if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
      }
      let request: Admitted = { method: req.method, body, search: url.search, partner };
      if (options.gate) {
        try {
          request = await options.gate.admit({ method: req.method, body, search: url.search, partner });
        } catch (e) {
          if (refused(e, res)) return;
          throw e;
        }
        // a partner's trusted document goes to Apollo as a plain JSON POST
        if (request.partner) headers.set('content-type', 'application/json');
      }
      // Every statement the request causes, wherever it is sent from, is counted in `sql`, and waits
      // for a database connection give up at its deadline.
      const deadline = createDeadline(timeoutMs);
      const sql: SqlStats = { statements: 0, deadline };
      const execution = withSqlStats(sql, () =>
        // the operation's span: loader spans nest under it; the operation log plugin names it
        inSpan('graphql', { 'foliograph.request_id': requestId, ...(request.partner ? { 'foliograph.partner': request.partner.name } : {}) }, () =>
          options.apollo.executeHTTPGraphQLRequest({
            httpGraphQLRequest: { method: request.method, headers, search: request.search, body: request.body },
            context: () => options.context({ req, requestId, sql, deadline, partner: request.partner, operationType: request.document?.type }),
          }),
        ),
      );
      running.add(execution);
      void execution.catch(() => {}).finally(() => running.delete(execution));
      const response = await answerBy(execution, deadline, writeGraceMs).finally(() => deadline.cancel());
      if (response === 'expired' || response === 'outcome unknown') {
        // A query goes on only until its next loader batch (which refuses to start) or until
        // PostgreSQL's statement_timeout stops its current statement; its answer is dropped.
        options.onRefusal?.(ErrorCode.DEADLINE_EXCEEDED);
        const unknown = response === 'outcome unknown' ? { outcome: 'unknown' } : {};
        const message = unknown.outcome
          ? `the write did not finish within its deadline of ${timeoutMs} ms: its outcome is unknown (retrying with the same idempotencyKey tells)`
          : `the operation ran longer than its deadline of ${timeoutMs} ms and was cancelled`;
        sendError(res, 504, message, ErrorCode.DEADLINE_EXCEEDED, { limit: timeoutMs, ...unknown });
        return;
      }
      for (const [key, value] of response.headers) res.setHeader(key, value);
      // the server's own time for this answer (W3C Server-Timing), so clients can tell it from the network's
      res.setHeader('server-timing', `app;dur=${(performance.now() - arrived).toFixed(2)}`);
      res.statusCode = response.status ?? 200;
      if (response.body.kind === 'complete') {
        res.end(response.body.string);
      } else {
        for await (const chunk of response.body.asyncIterator) res.write(chunk);
        res.end();
      }
    } catch (e) {
      if (e instanceof BodyTooLarge && !res.headersSent) {
        res.setHeader('connection', 'close');
        sendError(res, 413, `the request body is larger than ${maxBody} bytes`, 'BAD_USER_INPUT');
        return;
      }
      if (req.destroyed && !req.complete) {
        // the client went away (or node's request timeout cut it off) while sending its body
        options.logger.debug({ requestId }, 'the client closed the connection before sending its whole request');
        res.destroy();
        return;
      }
      options.logger.error({ err: e, requestId }, 'request failed outside GraphQL');
      options.onRefusal?.(ErrorCode.INTERNAL_SERVER_ERROR);
      if (!res.headersSent) sendError(res, 500, 'Internal server error', 'INTERNAL_SERVER_ERROR', { requestId });
      else res.destroy();
    }
  };

  return Object.assign(handle, {
    /** Resolves when every execution has ended, or after `ms`. */
    settle: (ms: number) => Promise.race([Promise.allSettled([...running]), new Promise((r) => setTimeout(r, ms).unref())]),
  });
}
