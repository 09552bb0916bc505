import {
  getNamedType,
  isCompositeType,
  isInterfaceType,
  isObjectType,
  Kind,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLInterfaceType,
  type GraphQLNamedType,
  type GraphQLObjectType,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';

const fragmentMaps = new WeakMap<DocumentNode, ReadonlyMap<string, FragmentDefinitionNode>>();

/** A document's fragment definitions by name, made once per document (Apollo reuses parsed documents). */
export function fragmentsOf(document: DocumentNode): ReadonlyMap<string, FragmentDefinitionNode> {
  let fragments = fragmentMaps.get(document);
  if (!fragments) {
    const byName = new Map<string, FragmentDefinitionNode>();
    for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) byName.set(d.name.value, d);
    fragmentMaps.set(document, (fragments = byName));
  }
  return fragments;
}

/**
 * Each fragment's value computed once per key, for one walk of a document: a spread of an unknown
 * fragment, or of one still being computed further up (a cycle), is `empty` and computes nothing
 * (graphql-js's own rules report both). A value computed while a cycle was cut is remembered as it is.
 * With it, a walk is linear in the document however its fragments spread one another; the depth and
 * selection rules use it over `ValidationContext.getFragment`, the walker below over `fragmentsOf`.
 */
export function fragmentMemo<T>(lookup: (name: string) => FragmentDefinitionNode | undefined | null, empty: T) {
  const values = new Map<string, T>();
  const open = new Set<string>();
  return (name: string, compute: (fragment: FragmentDefinitionNode) => T, key = ''): T => {
    const memoKey = key === '' ? name : `${name}\u0000${key}`;
    if (values.has(memoKey)) return values.get(memoKey) as T;
    const fragment = lookup(name);
    if (!fragment || open.has(name)) return empty;
    open.add(name);
    const value = compute(fragment);
    open.delete(name);
    values.set(memoKey, value);
    return value;
  };
}

/** A type whose fields can be selected. */
export type FieldsType = GraphQLObjectType | GraphQLInterfaceType;

/** How a value is folded over selections, for `walkSelections`. `C` is what a parent hands its children. */
export interface SelectionFold<T, C> {
  /** The value of no selections: an empty set, an unknown or cyclic spread. */
  readonly empty: T;
  /** Sibling values together, left to right. */
  add(total: T, next: T): T;
  /** Whether a total is final, so the set's remaining siblings are not walked. */
  settled?(total: T): boolean;
  /**
   * A field the schema knows on its parent type. `children` walks its selections (on the field's
   * named type) with the context given; a field without selections, or of a leaf type, gets `empty`.
   */
  field(node: FieldNode, definition: GraphQLField<unknown, unknown>, parent: FieldsType, context: C, children: (context: C) => T): T;
  /** What of the context a fragment's value depends on, beside its name and type (default: nothing). */
  contextKey?(context: C): string;
}

/**
 * One walk over an operation's selections, typed by the schema, folding a value over them. It
 * guarantees, for the walk it returns (one per document and fixed inputs, such as variables):
 *
 * - selections are folded depth-first in document order; a field's hook decides when (and whether)
 *   its children are walked, and a fold with `settled` stops a set at its first settled total;
 * - fields the schema does not know on their parent (unknown ones, `__typename`, `__schema`,
 *   `__type`) and fields on types without fields (unions, leaves) fold to `empty`;
 * - an inline fragment lands on its type condition, or on its parent without one; a named fragment on
 *   its type condition; a type condition the schema lacks leaves the parent (validation reports it);
 * - fragment spreads are resolved from a map made once per document, and each fragment is folded
 *   once per (name, type it lands on, `contextKey`): later spreads reuse the value, and the hooks
 *   (and their side effects) do not run again for them, so the walk is linear in the document;
 * - a spread of an unknown fragment, or of one being walked further up (a cycle), folds to `empty`.
 */
export function walkSelections<T, C>(schema: GraphQLSchema, document: DocumentNode, fold: SelectionFold<T, C>) {
  const fragments = fragmentsOf(document);
  const fragment = fragmentMemo((name) => fragments.get(name), fold.empty);

  const walk = (set: SelectionSetNode, parent: GraphQLNamedType, context: C): T => {
    let total = fold.empty;
    for (const selection of set.selections) {
      let value: T;
      switch (selection.kind) {
        case Kind.FIELD:
          value = field(selection, parent, context);
          break;
        case Kind.INLINE_FRAGMENT:
          value = walk(selection.selectionSet, typeNamed(selection.typeCondition?.name.value, parent), context);
          break;
        case Kind.FRAGMENT_SPREAD: {
          const name = selection.name.value;
          const landing = typeNamed(fragments.get(name)?.typeCondition.name.value, parent);
          value = fragment(name, (f) => walk(f.selectionSet, landing, context), `${landing.name}\u0000${fold.contextKey?.(context) ?? ''}`);
        }
      }
      total = fold.add(total, value);
      if (fold.settled?.(total)) break;
    }
    return total;
  };

  const field = (node: FieldNode, parent: GraphQLNamedType, context: C): T => {
    if (!isObjectType(parent) && !isInterfaceType(parent)) return fold.empty;
    const definition = parent.getFields()[node.name.value];
    if (!definition) return fold.empty;
    const named = getNamedType(definition.type);
    const children = (inner: C) => (node.selectionSet && isCompositeType(named) ? walk(node.selectionSet, named, inner) : fold.empty);
    return fold.field(node, definition, parent, context, children);
  };

  const typeNamed = (name: string | undefined, parent: GraphQLNamedType) => (name === undefined ? parent : (schema.getType(name) ?? parent));

  return walk;
}
