import { hash as digest } from 'node:crypto';
import { LRUCache } from 'lru-cache';

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

// The texts clients send again and again (a dashboard's query, every few seconds, from every user)
// are hashed once: bounded in count and in characters, since the texts are the clients' to choose.
const hashes = new LRUCache<string, string>({ max: 1000, maxSize: 4_000_000, sizeCalculation: (_hash, text) => Math.max(1, text.length) });

/** The SHA-256 of a document's text: how the cache, Apollo and persisted queries name a document. */
export function documentHash(text: string): string {
  let hash = hashes.get(text);
  if (hash === undefined) {
    hash = digest('sha256', text, 'hex');
    hashes.set(text, hash);
  }
  return hash;
}

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
  return digest('sha256', `${session ?? ''}\u0000${documentKey}\u0000${operationName ?? ''}\u0000${stableJson(variables ?? {})}`, 'hex');
}
