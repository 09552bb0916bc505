import type { ServerResponse } from 'node:http';
import { CodedError } from '../errors.js';

/** A GraphQL-shaped error answer for requests that never reach Apollo (bad JSON, refusals, shedding). */
export function sendError(res: ServerResponse, status: number, message: string, code: string, extra: Record<string, unknown> = {}): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.end(JSON.stringify({ errors: [{ message, extensions: { code, ...extra } }] }));
}

/** Answers a coded error with the status and headers it carries (a refusal before Apollo). */
export function sendCodedError(res: ServerResponse, error: CodedError): void {
  const { http, ...extensions } = error.extensions as { http?: { status?: number; headers?: Map<string, string> } } & Record<string, unknown>;
  for (const [name, value] of http?.headers ?? []) res.setHeader(name, value);
  sendError(res, http?.status ?? 400, error.message, String(extensions.code), extensions);
}

/** Sends a JSON body that is already a string, as GraphQL over HTTP answers (content type negotiated by the caller). */
export function sendJson(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.statusCode = status;
  res.setHeader('content-type', contentType);
  res.end(body);
}

// Errors of the document itself, found before anything ran: parsing, validation, and the coercion of
// variables (Apollo answers the last BAD_USER_INPUT without a reason).
const DOCUMENT_ERRORS = new Set(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED']);

/**
 * The status of a GraphQL answer to a client that asked for `application/json`. GraphQL over HTTP
 * recommends 200 for a document that fails to parse, validate or coerce its variables when the answer
 * is `application/json` (older clients read the body only on 200), and 400 under
 * `application/graphql-response+json`; Apollo answers 400 to both. The contract's limit refusals
 * (QUERY_TOO_DEEP, QUERY_TOO_COSTLY, …) and malformed requests keep their status.
 */
export function statusForClient(status: number, contentType: string | undefined, body: string): number {
  if (status !== 400 || !contentType?.startsWith('application/json')) return status;
  let answer: { data?: unknown; errors?: { extensions?: { code?: unknown; reason?: unknown } }[] };
  try {
    answer = JSON.parse(body);
  } catch {
    return status;
  }
  const errors = answer.errors ?? [];
  const documentError = (e: (typeof errors)[number]) =>
    e.extensions?.code === 'BAD_USER_INPUT' && (e.extensions.reason === undefined || DOCUMENT_ERRORS.has(String(e.extensions.reason)));
  return !('data' in answer) && errors.length > 0 && errors.every(documentError) ? 200 : status;
}
