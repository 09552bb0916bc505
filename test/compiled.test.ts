import { parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createCompilePolicy } from '../src/cache/compiled.js';
import { buildSchema } from '../src/graphql/schema.js';

describe('which executions run compiled', () => {
  const schema = buildSchema();
  const args = (source: string) => ({ schema, document: parse(source) });

  it('compiles a document from its second execution on, not a one-off', () => {
    const compile = createCompilePolicy();
    const dashboard = args('{ viewer { portfolios { nodes { name } } } }');
    expect(compile(dashboard)).toBe(false);
    expect(compile(dashboard)).toBe(true);
    expect(compile(dashboard)).toBe(true);
    // another document object is another document, even of the same text
    expect(compile(args('{ viewer { portfolios { nodes { name } } } }'))).toBe(false);
  });

  it('never compiles a document whose fragments multiply past the bound', () => {
    const compile = createCompilePolicy({ minRuns: 1, maxSelections: 2000 });
    const doubling = (levels: number) =>
      `query { ...F0 } ${Array.from({ length: levels }, (_, i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }`).join(' ')} fragment F${levels} on Query { __typename }`;
    expect(compile(args(doubling(8)))).toBe(true); // 2^9 + ... selections: under the bound
    expect(compile(args(doubling(40)))).toBe(false);
  });
});
