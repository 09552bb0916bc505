import { createHash } from 'node:crypto';

/**
 * Variables in a stable order, so that {a,b} and {b,a} name one answer. Recursive: the HTTP layer
 * refuses variables nested deeper than MAX_INPUT_DEPTH before any of this runs.
 */
export function stableJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  return `{${Object.keys(value as object)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stableJson((value as Record<string, unknown>)[k])}`)
    .join(',')}}`;
}

/** The SHA-256 of a document's text: how the cache, Apollo and persisted queries name a document. */
export const documentHash = (text: string): string => createHash('sha256').update(text).digest('hex');

export interface OperationKeyParts {
  /** Whose answer: `user:<id>`, `anonymous`, or null for a public one shared by everyone. */
  session: string | null;
  /** The document's SHA-256. */
  documentKey: string;
  operationName: string | null | undefined;
  /** The operation's declared variables only (an undeclared one changes nothing in the answer). */
  variables: Record<string, unknown> | null | undefined;
}

/**
 * The one name of an operation's answer, for single flight and the response cache alike, on every
 * path that looks one up: the executor's, and the HTTP layer's before anything is parsed.
 */
export function operationKey({ session, documentKey, operationName, variables }: OperationKeyParts): string {
  return createHash('sha256')
    .update(`${session ?? ''}\u0000${documentKey}\u0000${operationName ?? ''}\u0000${stableJson(variables ?? {})}`)
    .digest('hex');
}
