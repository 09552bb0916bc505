import type { GraphQLFormattedError } from 'graphql';
import { GraphQLError } from 'graphql';
import { ErrorCode } from '../errors.js';

const CONTRACT_CODES = new Set<string>(Object.values(ErrorCode));

// Apollo's own codes for documents and requests a client got wrong. The contract names these
// BAD_USER_INPUT; the original stays in extensions.reason for clients that know Apollo's codes.
const CLIENT_MISTAKES = new Set(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_REQUEST', 'OPERATION_RESOLUTION_FAILURE']);

/**
 * The innermost error that carries a code of ours (a validation rule's or a scalar's, say), through
 * GraphQL's `originalError` and the `cause` of a wrapper such as Drizzle's DrizzleQueryError;
 * `wrapped` when a wrapper that is no GraphQL error was passed on the way (its message names SQL).
 */
function ownError(error: unknown): { code: string; message: string; extensions: Record<string, unknown>; wrapped: boolean } | undefined {
  let wrapped = false;
  for (let e: unknown = error, depth = 0; e && depth < 8; depth++) {
    if (e instanceof GraphQLError) {
      const code = e.extensions?.code;
      if (typeof code === 'string' && CONTRACT_CODES.has(code)) {
        const { http: _http, ...extensions } = e.extensions;
        return { code, message: e.message, extensions, wrapped };
      }
    } else if (depth > 0) wrapped = true;
    e = (e as { originalError?: unknown }).originalError ?? (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export interface FormatErrorOptions {
  /** Replace the message of unexpected errors (no SQL, no stack, no paths reach clients). */
  mask: boolean;
}

/**
 * Every error leaves with a code from the contract. Unexpected errors (anything without such a code)
 * become INTERNAL_SERVER_ERROR and, when masking, say nothing about their cause.
 */
export function createFormatError({ mask }: FormatErrorOptions) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const given = formatted.extensions?.code;
    const own = ownError(error);
    let code: string;
    let extra: Record<string, unknown> = {};
    // Apollo's own request errors (a persisted query of an unknown version, a hash that does not
    // match) come without a code but with a 4xx status: they are the client's mistakes too.
    const status = (error as { extensions?: { http?: { status?: number } } } | null)?.extensions?.http?.status;
    if (own) code = own.code;
    else if (typeof given === 'string' && CONTRACT_CODES.has(given) && given !== ErrorCode.INTERNAL_SERVER_ERROR) code = given;
    else if (typeof given === 'string' && CLIENT_MISTAKES.has(given)) {
      code = ErrorCode.BAD_USER_INPUT;
      extra = { reason: given };
    } else if (typeof status === 'number' && status >= 400 && status < 500) {
      code = ErrorCode.BAD_USER_INPUT;
      extra = { reason: 'BAD_REQUEST' };
    } else code = ErrorCode.INTERNAL_SERVER_ERROR;

    const internal = code === ErrorCode.INTERNAL_SERVER_ERROR;
    const { stacktrace, ...extensions } = formatted.extensions ?? {};
    return {
      ...formatted,
      // the coded error's own message and extensions where a wrapper stood between (Drizzle's names the SQL it failed)
      message: internal && mask ? 'Internal server error' : own?.wrapped ? own.message : formatted.message,
      extensions: { ...extensions, ...(own?.wrapped ? own.extensions : {}), ...extra, code, ...(mask || !stacktrace ? {} : { stacktrace }) },
    };
  };
}
