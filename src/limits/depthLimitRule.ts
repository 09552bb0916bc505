import { GraphQLError, Kind, type ASTVisitor, type OperationDefinitionNode, type SelectionNode, type SelectionSetNode, type ValidationContext } from 'graphql';
import { ErrorCode } from '../errors.js';
import { fragmentMemo } from './walker.js';

/**
 * At most `maxDepth` levels of fields in each operation, counted as graphql-depth-limit 1.1 counts
 * them (the contract's MAX_DEPTH): the operation's own selections sit at depth 0, a field's selections
 * one deeper, fragments (named or inline) add nothing, and introspection fields (`__schema`, `__type`,
 * `__typename`) are not looked into. An operation is too deep when any selection sits deeper than
 * `maxDepth`; it gets one error, at the first selection past the limit. Unlike the library, each
 * selection set is measured once and each fragment once, however often it is spread, so the rule is
 * linear in the document (graphql-js's MaxIntrospectionDepthRule is the model). An operation that
 * reaches an unknown or cyclic fragment is left to graphql-js's own rules, which report those.
 */
export function depthLimitRule(maxDepth: number) {
  return (context: ValidationContext): ASTVisitor => {
    // how far below its own selections a selection set reaches; null: an unknown or cyclic fragment beneath
    const depths = new Map<SelectionSetNode, number | null>();
    const fragmentDepth = fragmentMemo((name) => context.getFragment(name), null as number | null);

    const fragmentSet = (name: string): SelectionSetNode | undefined => context.getFragment(name)?.selectionSet;

    const depthOf = (selection: SelectionNode): number | null => {
      if (selection.kind === Kind.FIELD)
        return selection.selectionSet && !selection.name.value.startsWith('__') ? plusOne(depthBelow(selection.selectionSet)) : 0;
      if (selection.kind === Kind.INLINE_FRAGMENT) return depthBelow(selection.selectionSet);
      return fragmentDepth(selection.name.value, (fragment) => depthBelow(fragment.selectionSet));
    };

    const depthBelow = (set: SelectionSetNode): number | null => {
      if (depths.has(set)) return depths.get(set)!;
      let deepest: number | null = 0;
      for (const selection of set.selections) {
        const depth = depthOf(selection);
        if (depth === null) {
          deepest = null;
          break;
        }
        deepest = Math.max(deepest, depth);
      }
      depths.set(set, deepest);
      return deepest;
    };

    // The first selection at `target` levels below `set`, following the depths measured above.
    const selectionAt = (set: SelectionSetNode, target: number): SelectionNode | undefined => {
      for (const selection of set.selections) {
        if ((depthOf(selection) ?? -1) < target) continue;
        if (target === 0) return selection;
        if (selection.kind === Kind.FIELD) return selectionAt(selection.selectionSet!, target - 1);
        return selectionAt(selection.kind === Kind.INLINE_FRAGMENT ? selection.selectionSet : fragmentSet(selection.name.value)!, target);
      }
      return undefined;
    };

    const report = (operation: OperationDefinitionNode) => {
      const name = operation.name ? `'${operation.name.value}' ` : '';
      const node = selectionAt(operation.selectionSet, maxDepth + 1) ?? operation;
      context.reportError(
        new GraphQLError(`operation ${name}exceeds maximum operation depth of ${maxDepth}`, {
          nodes: [node],
          extensions: { code: ErrorCode.QUERY_TOO_DEEP, limit: maxDepth },
        }),
      );
    };

    return {
      OperationDefinition(operation) {
        const depth = depthBelow(operation.selectionSet);
        if (depth !== null && depth > maxDepth) report(operation);
        return false;
      },
      FragmentDefinition: () => false,
    };
  };
}

const plusOne = (depth: number | null) => (depth === null ? null : depth + 1);
