import { describe, expect, it } from 'vitest';
import { buildSchema as buildSdl, parse } from 'graphql';
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

  describe('on a schema with an interface and a union', () => {
    const schema = buildSdl(`
      enum CacheControlScope { PUBLIC PRIVATE }
      directive @cacheControl(maxAge: Int, scope: CacheControlScope) on FIELD_DEFINITION | OBJECT | INTERFACE | UNION
      interface Node { id: ID! }
      type Account implements Node @cacheControl(scope: PRIVATE) { id: ID! email: String }
      type Listing implements Node { id: ID! title: String }
      union Found = Account | Listing
      type Query { node(id: ID!): Node search: [Found!]! }
    `);
    const analyzer = createScopeAnalyzer(schema);
    const scope = (text: string) => (analyzer(parse(text)) ? 'private' : 'public');

    it('is public where the selections stay on public types', () => {
      expect(scope('{ node(id: "1") { id ... on Listing { title } } search { __typename ... on Listing { title } } }')).toBe('public');
    });

    it('is private where a type condition selects fields of a PRIVATE type', () => {
      expect(scope('{ node(id: "1") { ... on Account { email } } }')).toBe('private');
      expect(scope('{ search { ...A } } fragment A on Account { id }')).toBe('private');
    });
  });
});
