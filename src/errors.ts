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
}

type Extensions = Record<string, unknown>;

/** A GraphQL error whose code (and, where the whole request fails, HTTP status) the contract fixes. */
export class CodedError extends GraphQLError {
  constructor(code: ErrorCode, message: string, extensions: Extensions = {}, httpStatus?: number) {
    super(message, {
      extensions: { ...extensions, code, ...(httpStatus ? { http: { status: httpStatus } } : {}) },
    });
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
