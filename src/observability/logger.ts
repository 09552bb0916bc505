import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Fields of database errors that hold a statement's parameters, i.e. what a client sent (mutation
 * variables, names, idempotency keys): DrizzleQueryError and PGlite's errors `params` (and PGlite's
 * `queryOptions`), postgres.js errors `parameters` and `args` (enumerable in its debug mode), and
 * PostgreSQL's `detail`, which quotes key values ("Key (name)=(…) already exists").
 */
const PARAMETER_FIELDS = ['params', 'parameters', 'args', 'queryOptions', 'detail'];

/** Errors reachable from `err`: its causes, a GraphQL error's original error, an aggregate's errors. */
function errorChain(err: unknown): object[] {
  const found: object[] = [];
  const pending: unknown[] = [err];
  while (pending.length > 0 && found.length < 20) {
    const e = pending.pop();
    if (e === null || typeof e !== 'object' || found.includes(e)) continue;
    found.push(e);
    const { cause, originalError, errors } = e as { cause?: unknown; originalError?: unknown; errors?: unknown };
    pending.push(cause, originalError, ...(Array.isArray(errors) ? errors : []));
  }
  return found;
}

/**
 * pino's error serializer, minus statement parameters. DrizzleQueryError also writes them into its
 * message (`Failed query: …\nparams: …`), which graphql-js copies into the GraphQLError wrapping it
 * and pino into the message and stack of every error caused by it; and PostgreSQL quotes a value it
 * could not take (`invalid input syntax for type integer: "…"`). So that exact params text, and
 * then every text parameter (or text in an array parameter) of 4 characters or more, is cut out of
 * every string of the result.
 */
export function serializeError(err: unknown): unknown {
  const serialized = pino.stdSerializers.err(err as Error) as unknown;
  if (serialized === err || serialized === null || typeof serialized !== 'object') return serialized;
  const lists = errorChain(err).flatMap((e) => {
    const { params, parameters } = e as { params?: unknown; parameters?: unknown };
    return [params, parameters].filter(Array.isArray);
  });
  const cuts: [string, string][] = [
    ...lists.filter((p) => p.length > 0).map((p): [string, string] => [`\nparams: ${String(p)}`, '\nparams: [redacted]']),
    ...lists
      .flat(2)
      .filter((p): p is string => typeof p === 'string' && p.length >= 4)
      .map((p): [string, string] => [p, '[redacted]']),
  ];
  const scrub = (value: unknown, depth: number): unknown => {
    if (typeof value === 'string') return cuts.reduce((s, [text, by]) => s.split(text).join(by), value);
    if (value === null || typeof value !== 'object' || depth > 5) return value;
    if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) if (!PARAMETER_FIELDS.includes(key)) out[key] = scrub(v, depth + 1);
    return out;
  };
  return scrub(serialized, 0);
}

/**
 * Structured JSON logs on stderr (stdout belongs to commands' results). Credentials never reach a
 * log line: the redaction below is a second guard behind code that does not log them at all. Nor do
 * statement parameters, which errors of the database drivers carry (see `serializeError`).
 */
export function createLogger(level: string, name = 'foliograph', destination: DestinationStream = pino.destination(2)): Logger {
  return pino(
    {
      name,
      level,
      serializers: { err: serializeError },
      redact: {
        paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'headers.authorization', 'headers["x-api-key"]', 'token', 'apiKey'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
