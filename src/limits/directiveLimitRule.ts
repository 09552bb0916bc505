import { GraphQLError, type ASTVisitor, type ValidationContext } from 'graphql';
import { ErrorCode } from '../errors.js';

/** At most `max` directive uses in a document (repeated @include/@skip cost parsing and execution work). */
export function directiveLimitRule(max: number) {
  return (context: ValidationContext): ASTVisitor => {
    let count = 0;
    return {
      Directive(node) {
        if (++count === max + 1) {
          context.reportError(
            new GraphQLError(`the document uses more than ${max} directives`, { nodes: [node], extensions: { code: ErrorCode.BAD_USER_INPUT, limit: max } }),
          );
        }
      },
    };
  };
}
