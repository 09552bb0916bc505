import type { IncomingMessage } from 'node:http';
import { CodedError, ErrorCode } from '../errors.js';
import type { GraphQLParams, IncomingGraphQL } from '../admission/request.js';
import { inputShapeProblem } from '../limits/variables.js';

/** A request body larger than MAX_BODY_BYTES: answered 413 and the connection closed. */
export class BodyTooLarge extends Error {}

/**
 * Reads the whole body, refusing at once one that says or turns out to be over `limit` bytes (the
 * rest is not read: the handler answers 413 and closes the connection). A client that goes away
 * before the end rejects with the stream's error. Listeners, not an async iterator: a small body
 * arrives in one chunk, and costs one promise.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.reject(new BodyTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (settle: () => void) => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      settle();
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        return done(() => reject(new BodyTooLarge()));
      }
      chunks.push(chunk);
    };
    const onEnd = () => done(() => resolve(chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8')));
    const onError = (e: Error) => done(() => reject(e));
    const onClose = () =>
      done(() => reject(Object.assign(new Error('the client closed the connection before sending its whole body'), { code: 'ECONNRESET' })));
    req.on('data', onData).once('end', onEnd).once('error', onError).once('close', onClose);
  });
}

const JSON_TYPE = /^application\/(graphql-response\+)?json\b/i;

function searchJson(url: URL, name: string): unknown {
  const text = url.searchParams.get(name);
  if (text === null) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined; // Apollo answers a malformed parameter itself
  }
}

/**
 * The GraphQL request of a GET or POST: the body (`text`, read with readBody; null for a GET) parsed,
 * and its variables and extensions checked for shape before anything walks them (without recursion:
 * a value nested 100,000 deep must be refused, not overflow a stack). Throws a coded error.
 */
export function parseGraphQLRequest(req: IncomingMessage, url: URL, text: string | null): IncomingGraphQL {
  const method = req.method === 'POST' && text !== null ? 'POST' : 'GET';
  let body: unknown = undefined;
  let params: GraphQLParams = {};
  if (method === 'POST' && text !== null) {
    if (JSON_TYPE.test(req.headers['content-type'] ?? '')) {
      try {
        body = JSON.parse(text);
      } catch {
        throw new CodedError(ErrorCode.BAD_USER_INPUT, 'the request body is not valid JSON', { reason: 'BAD_REQUEST' }, 400);
      }
    } else body = text;
    if (body && typeof body === 'object' && !Array.isArray(body)) params = body as GraphQLParams;
  } else {
    const query = url.searchParams.get('query');
    const operationName = url.searchParams.get('operationName');
    params = {
      query: query ?? undefined,
      variables: searchJson(url, 'variables'),
      operationName: operationName ?? undefined,
      extensions: searchJson(url, 'extensions') as GraphQLParams['extensions'],
    };
  }
  for (const argument of ['variables', 'extensions'] as const) {
    const problem = inputShapeProblem(params[argument]);
    if (problem) throw new CodedError(ErrorCode.BAD_USER_INPUT, `the request's ${argument} ${problem}`, { argument }, 400);
  }
  return { method, body, search: url.search, params };
}
