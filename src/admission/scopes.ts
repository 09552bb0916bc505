/**
 * What a partner may do. Every partner reads public data; private data needs a scope, the user's
 * grant (`npm run partner:grant`), and a token delegated to the partner for that user
 * (`npm run token -- EMAIL --partner NAME`) on the request, beside the partner's key.
 */
export const SCOPES = {
  /** Instruments, prices and forecasts: public data, what every partner gets. */
  'instruments:read': 'read instruments, prices and forecasts',
  /** The portfolios, positions and trades of users who granted the partner. */
  'portfolios:read': 'read the portfolios of users who granted the partner, with a token delegated for the user',
  /** Record trades and create portfolios for users who granted the partner. */
  'trades:write': 'record trades for users who granted the partner, with a token delegated for the user',
} as const;

export type Scope = keyof typeof SCOPES;

/** The scopes that act for a user, and so need the user's grant and a delegated token. */
export const DELEGATED_SCOPES: readonly Scope[] = ['portfolios:read', 'trades:write'];

/** The scope a partner's operation needs to act for a user: a mutation writes, anything else reads. */
export const scopeFor = (operationType: string | undefined): Scope => (operationType === 'mutation' ? 'trades:write' : 'portfolios:read');

/** Own keys only: `'toString' in SCOPES` is true, and no scope. */
export const isScope = (s: string): s is Scope => Object.hasOwn(SCOPES, s);

export function checkScopes(scopes: string[]): Scope[] {
  const unknown = scopes.filter((s) => !isScope(s));
  if (unknown.length) throw new Error(`unknown scope(s) ${unknown.join(', ')}; known: ${Object.keys(SCOPES).join(', ')}`);
  return [...new Set(['instruments:read', ...scopes])] as Scope[];
}
