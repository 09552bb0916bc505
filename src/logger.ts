import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs on stderr (stdout belongs to commands' results). Credentials never reach a
 * log line: the redaction below is a second guard behind code that does not log them at all.
 */
export function createLogger(level: string, name = 'foliograph'): Logger {
  return pino(
    {
      name,
      level,
      redact: {
        paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'headers.authorization', 'headers["x-api-key"]', 'token', 'apiKey'],
        censor: '[redacted]',
      },
    },
    pino.destination(2),
  );
}
