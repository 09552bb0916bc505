import { GraphQLError, type ASTVisitor, type ValidationContext } from 'graphql';
import { ErrorCode } from '../errors.js';

/** A subscription against a schema without subscriptions is the client's mistake, not a server error. */
export function noSubscriptionRule(context: ValidationContext): ASTVisitor {
  return {
    OperationDefinition(node) {
      if (node.operation === 'subscription' && !context.getSchema().getSubscriptionType()) {
        context.reportError(new GraphQLError('this API has no subscriptions', { nodes: [node], extensions: { code: ErrorCode.BAD_USER_INPUT } }));
      }
    },
  };
}
