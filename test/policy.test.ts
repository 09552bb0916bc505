import { describe, expect, it } from 'vitest';
import { parse } from 'graphql';
import { createScopeAnalyzer } from '../src/cache/policy.js';
import { buildSchema } from '../src/graphql/schema.js';

// Whether an operation can reach PRIVATE data (src/cache/policy.ts), which decides whether its answer
// is shared by everyone or cached per caller: read once per document, through the selection walker.

const isPrivate = createScopeAnalyzer(buildSchema());
const scopeOf = (text: string) => (isPrivate(parse(text)) ? 'private' : 'public');

describe('the privacy scope of an operation', () => {
  it.each([
    ['public fields only', '{ instrument(symbol: "A") { symbol latestPrice { close } } }', 'public'],
    ['introspection and __typename', '{ __typename __schema { queryType { name } } }', 'public'],
    ['a field with scope PRIVATE', '{ viewer { id } }', 'private'],
    ['a field returning a PRIVATE type', '{ portfolios(first: 1) { totalCount } }', 'private'],
    ['a private field behind a named fragment', '{ ...Q } fragment Q on Query { viewer { id } }', 'private'],
    ['a private field behind an inline fragment, with and without a type condition', '{ ... on Query { ... { viewer { id } } } }', 'private'],
    ['a public fragment spread twice', '{ ...I ...I } fragment I on Query { instrument(symbol: "A") { symbol } }', 'public'],
    ['an unknown fragment', '{ ...Missing instrument(symbol: "A") { symbol } }', 'public'],
    ['a private field past a cycle', '{ ...A } fragment A on Query { ...B } fragment B on Query { ...A viewer { id } }', 'private'],
    ['a mutation, whatever it selects', 'mutation { __typename }', 'private'],
    ['a private operation among public ones', 'query A { __typename } query B { ...V } fragment V on Query { viewer { id } }', 'private'],
    ['public operations sharing a fragment', 'query A { ...I } query B { ...I } fragment I on Query { instrument(symbol: "A") { symbol } }', 'public'],
  ])('%s: %s', (_name, text, scope) => {
    expect(scopeOf(text)).toBe(scope);
  });

  it('remembers its answer per document', () => {
    let reads = 0;
    const document = new Proxy(parse('{ viewer { id } }'), { get: (target, key) => (key === 'definitions' && reads++, Reflect.get(target, key)) });
    expect(isPrivate(document)).toBe(true);
    const walked = reads;
    expect(walked).toBeGreaterThan(0);
    expect(isPrivate(document)).toBe(true);
    expect(reads).toBe(walked);
  });
});
