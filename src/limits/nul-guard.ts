import { BREAK, visit, type DocumentNode } from 'graphql';
import type { ApolloServerPlugin } from '@apollo/server';
import { CodedError, ErrorCode } from '../errors.js';
import type { RequestContext } from '../graphql/context.js';

function hasNul(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (value === null || typeof value !== 'object' || depth > 50) return false;
  return Object.values(value).some((v) => hasNul(v, depth + 1));
}

const checked = new WeakMap<DocumentNode, boolean>();

/** Documents are parsed once and reused (Apollo's document store), so each is walked once. */
function documentHasNul(document: DocumentNode): boolean {
  const known = checked.get(document);
  if (known !== undefined) return known;
  let found = false;
  visit(document, {
    StringValue(node) {
      if (!node.value.includes('\u0000')) return undefined;
      found = true;
      return BREAK;
    },
  });
  checked.set(document, found);
  return found;
}

/**
 * PostgreSQL text cannot hold U+0000: a string with one is refused as input once, here, before any
 * resolver could send it to the database (where it would fail a whole batch as an internal error).
 */
export function createNulGuardPlugin(): ApolloServerPlugin<RequestContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document }) {
          if (hasNul(request.variables) || documentHasNul(document)) {
            throw new CodedError(ErrorCode.BAD_USER_INPUT, 'strings must not contain NUL (U+0000) characters', {}, 400);
          }
        },
      };
    },
  };
}
