import { GraphQLError, Kind, type ASTVisitor, type ValidationContext } from 'graphql';
import { ErrorCode } from '../../errors.js';

/** At most `max` fields at the root of each operation (fragments on the root included). */
export function rootFieldLimitRule(max: number) {
  return (context: ValidationContext): ASTVisitor => ({
    OperationDefinition(operation) {
      const fragments = new Map(
        context
          .getDocument()
          .definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION)
          .map((d) => [(d as { name: { value: string } }).name.value, d]),
      );
      let count = 0;
      const seen = new Set<string>();
      const walk = (selections: readonly { kind: string }[]): void => {
        for (const s of selections) {
          if (s.kind === Kind.FIELD) count++;
          else if (s.kind === Kind.INLINE_FRAGMENT) walk((s as unknown as { selectionSet: { selections: { kind: string }[] } }).selectionSet.selections);
          else if (s.kind === Kind.FRAGMENT_SPREAD) {
            const name = (s as unknown as { name: { value: string } }).name.value;
            const fragment = fragments.get(name) as { selectionSet: { selections: { kind: string }[] } } | undefined;
            if (fragment && !seen.has(name)) {
              seen.add(name);
              walk(fragment.selectionSet.selections);
            }
          }
        }
      };
      walk(operation.selectionSet.selections);
      if (count > max) {
        context.reportError(
          new GraphQLError(`the operation asks for ${count} root fields; at most ${max} are allowed`, {
            nodes: [operation],
            extensions: { code: ErrorCode.BAD_USER_INPUT, limit: max },
          }),
        );
      }
    },
  });
}
