import { GraphQLError } from 'graphql';

/** Every code a client can see in `errors[].extensions.code` (see CONTRACT.md). */
export enum ErrorCode {
  UNAUTHENTICATED = 'UNAUTHENTICATED',
  FORBIDDEN = 'FORBIDDEN',
  NOT_FOUND = 'NOT_FOUND',
  BAD_USER_INPUT = 'BAD_USER_INPUT',
  QUERY_TOO_DEEP = 'QUERY_TOO_DEEP',
  QUERY_TOO_COSTLY = 'QUERY_TOO_COSTLY',
  PERSISTED_QUERY_NOT_FOUND = 'PERSISTED_QUERY_NOT_FOUND',
  PERSISTED_QUERY_REQUIRED = 'PERSISTED_QUERY_REQUIRED',
  RATE_LIMITED = 'RATE_LIMITED',
  OVERLOADED = 'OVERLOADED',
  INTERNAL_SERVER_ERROR = 'INTERNAL_SERVER_ERROR',
  /** Our addition to the contract: a persisted query's hash is not the SHA-256 of the query sent with it (400). */
  PERSISTED_QUERY_HASH_MISMATCH = 'PERSISTED_QUERY_HASH_MISMATCH',
  /** Our addition to the contract: the operation ran past REQUEST_TIMEOUT_MS and was cancelled (HTTP 504). */
  DEADLINE_EXCEEDED = 'DEADLINE_EXCEEDED',
  /** Our addition to the contract: the database cannot be reached; retry after `Retry-After` (HTTP 503). */
  DATABASE_UNAVAILABLE = 'DATABASE_UNAVAILABLE',
}

type Extensions = Record<string, unknown>;

/** A GraphQL error whose code (and, where the whole request fails, HTTP status) the contract fixes. */
export class CodedError extends GraphQLError {
  /**
   * `httpStatus` (and `headers`, such as Retry-After) become the response's when this error ends the
   * request, or is raised by a resolver: Apollo merges an error's `extensions.http` into the response.
   */
  constructor(code: ErrorCode, message: string, extensions: Extensions = {}, httpStatus?: number, headers?: Record<string, string>) {
    const http = httpStatus ? { http: { status: httpStatus, ...(headers ? { headers: new Map(Object.entries(headers)) } : {}) } } : {};
    super(message, { extensions: { ...extensions, code, ...http } });
    this.name = 'CodedError';
  }
}

export class BadUserInputError extends CodedError {
  /** `argument` names the input that was wrong, so clients can point at it. */
  constructor(message: string, argument?: string) {
    super(ErrorCode.BAD_USER_INPUT, message, argument ? { argument } : {});
  }
}

export class NotFoundError extends CodedError {
  constructor(what: string) {
    super(ErrorCode.NOT_FOUND, `${what} not found`);
  }
}

export class UnauthenticatedError extends CodedError {
  /** Thrown while building the context, the whole request fails with 401. */
  constructor(message = 'sign in first: send Authorization: Bearer <token>', httpStatus?: number) {
    super(ErrorCode.UNAUTHENTICATED, message, {}, httpStatus);
  }
}

/** Why a request stops once its deadline has passed: loaders refuse further batches, a mutation rolls back. */
export class DeadlineExceededError extends CodedError {
  constructor(ms: number, extensions: Extensions = {}) {
    super(ErrorCode.DEADLINE_EXCEEDED, `the operation ran longer than its deadline of ${ms} ms and was cancelled`, { limit: ms, ...extensions }, 504);
  }
}

/**
 * The coded error `error` wraps, if any: Drizzle wraps whatever a statement threw (the pool gate's
 * OVERLOADED or DATABASE_UNAVAILABLE among them) in a DrizzleQueryError, whose `cause` it is.
 */
export function codedCause(error: unknown): CodedError | undefined {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    if (e instanceof CodedError) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Seconds a client should wait before retrying when the database is unreachable. */
export const DATABASE_RETRY_AFTER_SECONDS = 1;

export class DatabaseUnavailableError extends CodedError {
  constructor(message = 'the database cannot be reached: retry in a moment', extensions: Extensions = {}) {
    super(ErrorCode.DATABASE_UNAVAILABLE, message, { retryAfter: DATABASE_RETRY_AFTER_SECONDS, ...extensions }, 503, {
      'retry-after': String(DATABASE_RETRY_AFTER_SECONDS),
    });
  }
}

/** Seconds a shed client should wait before retrying. */
export const OVERLOADED_RETRY_AFTER_SECONDS = 1;

/** Why a request was shed (see src/admission/load.ts, and the gate for `dropped`). */
export type ShedReason = 'starting' | 'db_wait' | 'db_queue' | 'cost_in_flight' | 'event_loop' | 'dropped';

const SHED_MESSAGES: Record<ShedReason, string> = {
  starting: 'the server is starting: retry in a moment',
  db_wait: 'the server is overloaded (the wait for a database connection is too long): retry in a moment',
  db_queue: 'the server is overloaded (too many statements wait for a database connection): retry in a moment',
  cost_in_flight: 'the server is overloaded (too much work in flight): retry in a moment',
  event_loop: 'the server is overloaded (its CPU is saturated): retry in a moment',
  dropped: 'the server is overloaded: this request could not get a database connection before its deadline; retry in a moment',
};

/**
 * Load shed (503, Retry-After): the request was refused, or dropped from the line for a database
 * connection, before it could change anything; `reason` says by which rule, `priority` at which level.
 */
export class OverloadedError extends CodedError {
  /** `wholeRequest: false` when a part of the request may already be applied: no 503 or Retry-After for the whole response then. */
  constructor(reason: ShedReason, priority?: string, options: { wholeRequest?: boolean } = {}) {
    const extensions = { reason, ...(priority ? { priority } : {}) };
    if (options.wholeRequest === false) super(ErrorCode.OVERLOADED, SHED_MESSAGES[reason], extensions);
    else super(ErrorCode.OVERLOADED, SHED_MESSAGES[reason], extensions, 503, { 'retry-after': String(OVERLOADED_RETRY_AFTER_SECONDS) });
  }
}

/**
 * A write whose commit was sent but never confirmed (the connection was lost, the deadline passed):
 * it may or may not be applied. Retrying with the same idempotency key is safe and tells which.
 */
export function outcomeUnknown(cause: CodedError, idempotencyKey: string | null): CodedError {
  const http = cause.extensions.http as { status?: number; headers?: Map<string, string> } | undefined;
  const retry = idempotencyKey ? `: retry with idempotencyKey ${JSON.stringify(idempotencyKey)} to learn it` : ': look before retrying';
  return new CodedError(
    cause.extensions.code as ErrorCode,
    `the outcome of this write is unknown (it may have been applied)${retry}`,
    { ...withoutHttp(cause.extensions), outcome: 'unknown', ...(idempotencyKey ? { idempotencyKey } : {}) },
    http?.status,
    http?.headers ? Object.fromEntries(http.headers) : undefined,
  );
}

function withoutHttp(extensions: Extensions): Extensions {
  const { http: _http, code: _code, ...rest } = extensions;
  return rest;
}
