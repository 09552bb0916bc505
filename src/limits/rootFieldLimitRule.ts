import { GraphQLError, Kind, type ASTVisitor, type SelectionSetNode, type ValidationContext } from 'graphql';
import { ErrorCode } from '../errors.js';

/**
 * At most `max` fields at the root of each operation (fragments on the root included, each counted
 * once however often it is spread, as execution merges them). Fragments come from graphql-js's own
 * index of the document (`getFragment`), so each operation costs what it reaches, not the document.
 */
export function rootFieldLimitRule(max: number) {
  return (context: ValidationContext): ASTVisitor => ({
    OperationDefinition(operation) {
      let count = 0;
      const seen = new Set<string>();
      const walk = (set: SelectionSetNode): void => {
        for (const s of set.selections) {
          if (s.kind === Kind.FIELD) count++;
          else if (s.kind === Kind.INLINE_FRAGMENT) walk(s.selectionSet);
          else if (!seen.has(s.name.value)) {
            seen.add(s.name.value);
            const fragment = context.getFragment(s.name.value);
            if (fragment) walk(fragment.selectionSet);
          }
        }
      };
      walk(operation.selectionSet);
      if (count > max) {
        context.reportError(
          new GraphQLError(`the operation asks for ${count} root fields; at most ${max} are allowed`, {
            nodes: [operation],
            extensions: { code: ErrorCode.BAD_USER_INPUT, limit: max },
          }),
        );
      }
      return false;
    },
  });
}
