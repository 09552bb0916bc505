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
