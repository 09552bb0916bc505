/**
 * What a partner may do. Every partner reads public data; private data needs both a scope and the
 * user's grant (`npm run partner:grant`), and the user's own bearer token on the request.
 */
export const SCOPES = {
  /** Instruments, prices and forecasts: public data, what every partner gets. */
  'instruments:read': 'read instruments, prices and forecasts',
  /** The portfolios, positions and trades of users who granted the partner. */
  'portfolios:read': "read the portfolios of users who granted the partner, with the user's token",
  /** Record trades and create portfolios for users who granted the partner. */
  'trades:write': 'record trades for users who granted the partner, with the user\'s token',
} as const;

export type Scope = keyof typeof SCOPES;

export function checkScopes(scopes: string[]): Scope[] {
  const unknown = scopes.filter((s) => !(s in SCOPES));
  if (unknown.length) throw new Error(`unknown scope(s) ${unknown.join(', ')}; known: ${Object.keys(SCOPES).join(', ')}`);
  return [...new Set(['instruments:read', ...scopes])] as Scope[];
}
