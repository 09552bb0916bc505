import { GraphQLError, Kind, type ASTVisitor, type DocumentNode, type FragmentDefinitionNode, type SelectionSetNode, type ValidationContext } from 'graphql';
import { ErrorCode } from '../errors.js';
import { fragmentMemo, fragmentsOf } from './walker.js';

/**
 * At most `max` selections (fields, inline fragments and fragment spreads) in a document once every
 * fragment spread is written out in place, over all its operations: what a walker that follows
 * fragments without remembering them would visit. A fragment that spreads the next one twice, level
 * after level, is a short document of astronomically many selections; it is refused here, counted in
 * one pass with each fragment's size remembered (the walker's `fragmentMemo`), before anything walks
 * it again (Apollo Server's RecursiveSelectionsLimit counts the same way, per operation). Unknown and
 * cyclic fragments count nothing: graphql-js's own rules report them. Untyped on purpose: it bounds
 * the work of every later walker, graphql-js's included, so it counts fields the schema lacks too.
 */
/** Counts selections with spreads written out, each fragment's size computed once. */
function selectionCounter(lookup: (name: string) => FragmentDefinitionNode | undefined | null) {
  const sizeOfFragment = fragmentMemo(lookup, 0);
  const sizeOf = (set: SelectionSetNode): number => {
    let size = set.selections.length;
    for (const selection of set.selections) {
      if (selection.kind === Kind.FRAGMENT_SPREAD) size += sizeOfFragment(selection.name.value, (f) => sizeOf(f.selectionSet));
      else if (selection.selectionSet) size += sizeOf(selection.selectionSet);
    }
    return size;
  };
  return sizeOf;
}

const expanded = new WeakMap<DocumentNode, number>();

/** The same count for a whole document (every operation), remembered per document. */
export function expandedSelections(document: DocumentNode): number {
  let count = expanded.get(document);
  if (count === undefined) {
    const fragments = fragmentsOf(document);
    const sizeOf = selectionCounter((name) => fragments.get(name));
    count = 0;
    for (const d of document.definitions) if (d.kind === Kind.OPERATION_DEFINITION) count += sizeOf(d.selectionSet);
    expanded.set(document, count);
  }
  return count;
}

export function selectionLimitRule(max: number) {
  return (context: ValidationContext): ASTVisitor => {
    const sizeOf = selectionCounter((name) => context.getFragment(name));

    let total = 0;
    return {
      OperationDefinition(operation) {
        const before = total;
        total += sizeOf(operation.selectionSet);
        if (before <= max && total > max) {
          context.reportError(
            new GraphQLError(`the document asks for more than ${max} selections once its fragment spreads are written out`, {
              nodes: [operation],
              extensions: { code: ErrorCode.BAD_USER_INPUT, limit: max },
            }),
          );
        }
        return false;
      },
      FragmentDefinition: () => false,
    };
  };
}
