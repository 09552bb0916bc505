import { GraphQLError, type ASTVisitor, type ValidationContext } from 'graphql';
import { ErrorCode } from '../errors.js';

/** At most `max` aliased fields in a document: aliases are how one request asks the same field many times. */
export function aliasLimitRule(max: number) {
  return (context: ValidationContext): ASTVisitor => {
    let count = 0;
    return {
      Field(node) {
        if (node.alias && ++count === max + 1) {
          context.reportError(
            new GraphQLError(`the document uses more than ${max} aliases`, { nodes: [node], extensions: { code: ErrorCode.BAD_USER_INPUT, limit: max } }),
          );
        }
      },
    };
  };
}
