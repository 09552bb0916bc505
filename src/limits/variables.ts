import type { OperationDefinitionNode } from 'graphql';

/** Deepest nesting of objects and arrays accepted in a request's variables (the schema's inputs need 2). */
export const MAX_INPUT_DEPTH = 32;
/** Most values (objects, arrays and scalars alike) accepted in a request's variables. */
export const MAX_INPUT_VALUES = 10_000;

/**
 * Why a request's variables are refused before anything reads them, or null when they are fine.
 * Walked with a stack of its own, never by recursion: a value nested 100,000 deep (JSON.parse builds
 * one happily) must be refused, not overflow the call stack of the code that keys or checks it.
 */
export function inputShapeProblem(value: unknown): string | null {
  const stack: [unknown, number][] = [[value, 1]];
  let values = 0;
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (++values > MAX_INPUT_VALUES) return `hold more than ${MAX_INPUT_VALUES} values`;
    if (v === null || typeof v !== 'object') continue;
    if (depth > MAX_INPUT_DEPTH) return `are nested deeper than ${MAX_INPUT_DEPTH} levels`;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return null;
}

/**
 * The variables the operation declares, and only those: an undeclared one can change nothing in the
 * answer, so it must not change a cache or single-flight key either (a client adding a random
 * `$nonce` would otherwise miss the cache on purpose). Null-prototype, so `__proto__` stays a name.
 */
export function declaredVariables(operation: OperationDefinitionNode, variables: Record<string, unknown> | undefined): Record<string, unknown> {
  const kept: Record<string, unknown> = Object.create(null);
  if (!variables) return kept;
  for (const definition of operation.variableDefinitions ?? []) {
    const name = definition.variable.name.value;
    if (Object.hasOwn(variables, name)) kept[name] = variables[name];
  }
  return kept;
}
