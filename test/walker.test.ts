import { describe, expect, it } from 'vitest';
import { buildSchema, getOperationAST, Kind, parse, type DocumentNode, type OperationDefinitionNode } from 'graphql';
import { fragmentMemo, fragmentsOf, walkSelections, type SelectionFold } from '../src/limits/walker.js';

// The one selection walker (src/limits/walker.ts) under the cost estimate and the cache's privacy
// scope, on a small schema of its own: foliograph's has no interfaces or unions.

const schema = buildSchema(`
  interface Node { id: ID! }
  type User implements Node { id: ID! name: String friends: [User!]! }
  type Item implements Node { id: ID! title: String owner: User }
  union Result = User | Item
  type Query { node(id: ID!): Node me: User search: [Result!]! items: [Item!]! }
`);

/** A fold counting fields, that records each field hook it runs as `Parent.field@context`. */
function counting(context = (parentContext: string, _field: string) => parentContext) {
  const calls: string[] = [];
  const fold: SelectionFold<number, string> = {
    empty: 0,
    add: (total, next) => total + next,
    contextKey: (c) => c,
    field(node, _definition, parent, c, children) {
      calls.push(`${parent.name}.${node.name.value}${c ? `@${c}` : ''}`);
      return 1 + children(context(c, node.name.value));
    },
  };
  return { fold, calls };
}

/** The fold's value over the document's operation, from the query root, and the hooks it ran. */
function walk(text: string, context?: (parentContext: string, field: string) => string) {
  const document = parse(text);
  const { fold, calls } = counting(context);
  const value = walkSelections(schema, document, fold)(getOperationAST(document)!.selectionSet, schema.getQueryType()!, '');
  return { value, calls };
}

describe('walkSelections', () => {
  it('folds depth-first in document order, fragments where they are spread', () => {
    const { value, calls } = walk('{ me { id ...U friends { id } } node(id: "1") { id } } fragment U on User { name }');
    expect(calls).toEqual(['Query.me', 'User.id', 'User.name', 'User.friends', 'User.id', 'Query.node', 'Node.id']);
    expect(value).toBe(7);
  });

  it('folds a fragment once per type and context key, and reuses its value at every other spread', () => {
    const text = '{ a: me { ...U } b: me { ...U } items { owner { ...U } } } fragment U on User { id name }';
    const { value, calls } = walk(text);
    // U's hooks run once; its value (2) counts at each of its three spreads
    expect(calls).toEqual(['Query.me', 'User.id', 'User.name', 'Query.me', 'Query.items', 'Item.owner']);
    expect(value).toBe(4 + 3 * 2);
    // a context that differs under `items` prices U again there, and only there
    const keyed = walk(text, (c, field) => (field === 'items' ? 'listed' : c));
    expect(keyed.calls).toEqual(['Query.me', 'User.id', 'User.name', 'Query.me', 'Query.items', 'Item.owner@listed', 'User.id@listed', 'User.name@listed']);
    expect(keyed.value).toBe(4 + 3 * 2);
  });

  it('is linear in the document when each fragment spreads the next twice', () => {
    const levels = 40;
    const chain = Array.from({ length: levels }, (_, i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }`).join(' ');
    const { value, calls } = walk(`{ ...F0 } ${chain} fragment F${levels} on Query { me { id } }`);
    expect(value).toBe(2 ** levels * 2);
    expect(calls).toEqual(['Query.me', 'User.id']);
  });

  it('folds a cyclic spread to nothing, cutting the cycle where a fragment comes round again', () => {
    const { value, calls } = walk('{ me { ...A } } fragment A on User { id ...B } fragment B on User { name ...A friends { ...A } }');
    expect(calls).toEqual(['Query.me', 'User.id', 'User.name', 'User.friends']);
    expect(value).toBe(4);
  });

  it('folds unknown fragments, unknown fields and fields without definitions to nothing', () => {
    const { value, calls } = walk('{ __typename me { ...Missing id nope __typename } nope { id } search { __typename } }');
    expect(calls).toEqual(['Query.me', 'User.id', 'Query.search']);
    expect(value).toBe(3);
  });

  it('lands inline fragments on their type condition, or on the parent without one', () => {
    const { calls } = walk('{ node(id: "1") { id ... on User { name } ... { id } ... on Item { owner { name } } } }');
    expect(calls).toEqual(['Query.node', 'Node.id', 'User.name', 'Node.id', 'Item.owner', 'User.name']);
  });

  it('reaches the members of a union only through type conditions', () => {
    const { calls } = walk('{ search { ... on Item { title } ...U } } fragment U on User { name }');
    expect(calls).toEqual(['Query.search', 'Item.title', 'User.name']);
  });

  it('lands a named fragment on its type condition, and keeps the parent where the schema lacks the type', () => {
    const { calls } = walk('{ node(id: "1") { ...I ... on Nope { id } } } fragment I on Item { title }');
    expect(calls).toEqual(['Query.node', 'Item.title', 'Node.id']);
    // the same fragment, by a type condition the schema lacks, on two parents: folded once on each
    const lacking = walk('{ me { ...X } items { ...X } } fragment X on Nope { id }');
    expect(lacking.calls).toEqual(['Query.me', 'User.id', 'Query.items', 'Item.id']);
  });

  it('stops a set at the first settled total, without walking the rest', () => {
    const document = parse('{ me { id } items { title } node(id: "1") { id } }');
    const seen: string[] = [];
    const anyItems = walkSelections<boolean, undefined>(schema, document, {
      empty: false,
      add: (total, next) => total || next,
      settled: (total) => total,
      field(node, _definition, parent, _context, children) {
        seen.push(`${parent.name}.${node.name.value}`);
        return node.name.value === 'title' || children(undefined);
      },
    });
    expect(anyItems(getOperationAST(document)!.selectionSet, schema.getQueryType()!, undefined)).toBe(true);
    expect(seen).toEqual(['Query.me', 'User.id', 'Query.items', 'Item.title']);
  });

  it('walks several operations of one document with one memo', () => {
    const document = parse('query A { me { ...U } } query B { me { ...U } } fragment U on User { id name }');
    const { fold, calls } = counting();
    const walk = walkSelections(schema, document, fold);
    const operations = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
    const values = operations.map((o) => walk(o.selectionSet, schema.getQueryType()!, ''));
    expect(values).toEqual([3, 3]);
    expect(calls).toEqual(['Query.me', 'User.id', 'User.name', 'Query.me']);
  });
});

describe('fragmentsOf and fragmentMemo', () => {
  const document: DocumentNode = parse('{ ...A } fragment A on Query { ...B } fragment B on Query { ...A me { id } }');

  it('makes the fragment map once per document', () => {
    expect([...fragmentsOf(document).keys()]).toEqual(['A', 'B']);
    expect(fragmentsOf(document)).toBe(fragmentsOf(document));
  });

  it('computes each (fragment, key) once, and gives `empty` for unknown and cyclic spreads', () => {
    const computed: string[] = [];
    const memo = fragmentMemo((name) => fragmentsOf(document).get(name), null as number | null);
    const value = (name: string, key = ''): number | null =>
      memo(
        name,
        (f) => {
          computed.push(`${f.name.value}${key}`);
          return name === 'A' ? (value('B') ?? -1) : (value('A') ?? 100);
        },
        key,
      );
    expect(value('A')).toBe(100); // A → B → A is cut: B sees `empty` (null) for A
    expect(value('A')).toBe(100);
    expect(value('B')).toBe(100); // B was computed inside A, and is remembered so
    expect(value('A', 'other')).toBe(100); // another key computes A again; B is known
    expect(value('Missing')).toBeNull();
    expect(computed).toEqual(['A', 'B', 'Aother']);
  });
});
