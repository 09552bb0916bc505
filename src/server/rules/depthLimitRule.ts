import depthLimit from 'graphql-depth-limit';
import { GraphQLError, Kind, visit, type ASTNode, type ASTVisitor, type DocumentNode, type ValidationContext } from 'graphql';
import { ErrorCode } from '../../errors.js';

/** The names of the fragments spread anywhere under `node`. */
function spreadsIn(node: ASTNode): string[] {
  const names: string[] = [];
  visit(node, { FragmentSpread: (spread) => void names.push(spread.name.value) });
  return names;
}

/** True when every fragment spread names a fragment that exists and no fragment reaches itself. */
function fragmentsAreSound(document: DocumentNode): boolean {
  const spreads = new Map<string, string[]>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) spreads.set(d.name.value, spreadsIn(d.selectionSet));
  if (spreadsIn(document).some((name) => !spreads.has(name))) return false;
  const state = new Map<string, 'open' | 'done'>();
  const cyclic = (name: string): boolean => {
    if (state.get(name) === 'done') return false;
    if (state.get(name) === 'open') return true;
    state.set(name, 'open');
    const found = (spreads.get(name) ?? []).some(cyclic);
    state.set(name, 'done');
    return found;
  };
  return ![...spreads.keys()].some(cyclic);
}

/**
 * graphql-depth-limit with the contract's code (QUERY_TOO_DEEP) and the limit in the error. The
 * library walks fragments without guarding against unknown or cyclic ones (it would throw or recurse
 * forever), so it runs only on documents whose fragments are sound; graphql-js's own rules report
 * the others.
 */
export function depthLimitRule(maxDepth: number) {
  const limit = depthLimit(maxDepth);
  return (context: ValidationContext): ASTVisitor => {
    if (!fragmentsAreSound(context.getDocument())) return {};
    const coded = Object.create(context, {
      reportError: {
        value: (error: GraphQLError) =>
          context.reportError(
            new GraphQLError(`${error.message.replace(/^'(.*)' exceeds/, (_, n) => `operation ${n ? `'${n}' ` : ''}exceeds`)}`, {
              nodes: error.nodes,
              extensions: { code: ErrorCode.QUERY_TOO_DEEP, limit: maxDepth },
            }),
          ),
      },
    }) as ValidationContext;
    limit(coded);
    return {};
  };
}
