import {
  getDirectiveValues,
  getNamedType,
  isCompositeType,
  Kind,
  type DocumentNode,
  type GraphQLDirective,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';

/**
 * Whether an operation can touch data whose @cacheControl scope is PRIVATE, read from the schema once
 * per document (not per resolved field): a field with scope PRIVATE, or returning a PRIVATE type,
 * anywhere in the operation. Private answers are cached per caller; the others are shared by all.
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

  function walk(set: SelectionSetNode, parent: GraphQLNamedType, fragments: Map<string, SelectionSetNode & { type: string }>, seen: Set<string>): boolean {
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) {
        if (selection.name.value.startsWith('__')) continue;
        const field = 'getFields' in parent ? (parent.getFields() as Record<string, GraphQLField<unknown, unknown>>)[selection.name.value] : undefined;
        if (!field) continue;
        const type = getNamedType(field.type);
        if (scopeOf(field) === 'PRIVATE' || privateTypes.has(type.name)) return true;
        if (selection.selectionSet && isCompositeType(type) && walk(selection.selectionSet, type, fragments, seen)) return true;
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent;
        if (type && walk(selection.selectionSet, type, fragments, seen)) return true;
      } else {
        const fragment = fragments.get(selection.name.value);
        if (!fragment || seen.has(selection.name.value)) continue;
        seen.add(selection.name.value);
        const type = schema.getType(fragment.type);
        if (type && walk(fragment, type, fragments, seen)) return true;
      }
    }
    return false;
  }

  return function isPrivate(document: DocumentNode): boolean {
    const known = memo.get(document);
    if (known !== undefined) return known;
    const fragments = new Map<string, SelectionSetNode & { type: string }>();
    for (const d of document.definitions) {
      if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, { ...d.selectionSet, type: d.typeCondition.name.value });
    }
    let result = false;
    // Each fragment is walked once for the whole document: one already walked held nothing private
    // (the walk stops at the first private field), so meeting it again, in any operation, adds nothing.
    const seen = new Set<string>();
    for (const d of document.definitions) {
      if (d.kind !== Kind.OPERATION_DEFINITION) continue;
      // a mutation always depends on who asks
      const root = d.operation === 'query' ? schema.getQueryType() : null;
      if (!root || walk(d.selectionSet, root, fragments, seen)) {
        result = true;
        break;
      }
    }
    memo.set(document, result);
    return result;
  };
}
