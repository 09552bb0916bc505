import { getDirectiveValues, getNamedType, Kind, type DocumentNode, type GraphQLDirective, type GraphQLSchema } from 'graphql';
import { walkSelections } from '../limits/walker.js';

/**
 * Whether an operation can touch data whose @cacheControl scope is PRIVATE, read from the schema once
 * per document (not per resolved field): a field with scope PRIVATE, returning a PRIVATE type, or
 * selected on one (an interface or union field's type condition naming a PRIVATE member), anywhere in
 * the operation; a mutation always. Private answers are cached per caller; the others are shared by all.
 */
export function createScopeAnalyzer(schema: GraphQLSchema) {
  const directive = schema.getDirective('cacheControl') as GraphQLDirective | undefined;
  const memo = new WeakMap<DocumentNode, boolean>();
  const scopeOf = (node: { astNode?: unknown } | undefined): string | undefined => {
    const ast = node?.astNode as Parameters<typeof getDirectiveValues>[1] | undefined;
    if (!directive || !ast || !('directives' in ast)) return undefined;
    return (getDirectiveValues(directive, ast) as { scope?: string } | undefined)?.scope;
  };
  const privateTypes = new Set(
    Object.values(schema.getTypeMap())
      .filter((t) => scopeOf(t) === 'PRIVATE')
      .map((t) => t.name),
  );

  return function isPrivate(document: DocumentNode): boolean {
    const known = memo.get(document);
    if (known !== undefined) return known;
    // One walk for all the document's operations: each fragment is walked once, and stops at its
    // first private field, so meeting it again, in any operation, repeats its answer.
    const reachesPrivate = walkSelections<boolean, undefined>(schema, document, {
      empty: false,
      add: (total, next) => total || next,
      settled: (total) => total,
      field: (_node, field, parent, _context, children) =>
        scopeOf(field) === 'PRIVATE' || privateTypes.has(getNamedType(field.type).name) || privateTypes.has(parent.name) || children(undefined),
    });
    const query = schema.getQueryType();
    const result = document.definitions.some(
      (d) => d.kind === Kind.OPERATION_DEFINITION && (d.operation !== 'query' || !query || reachesPrivate(d.selectionSet, query, undefined)),
    );
    memo.set(document, result);
    return result;
  };
}
