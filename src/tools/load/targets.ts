import { ClientError, GraphQLClient } from 'graphql-request';
import { signUserToken } from '../../admission/tokens.js';
import type { LoadTargets } from './scenarios.js';

/**
 * Whom and what a scenario can ask about, found through the API itself (so it works against any
 * server, embedded ones included, without reading its database): instruments from `instruments`,
 * users by signing tokens for ids 1..`users` and keeping those the server knows (`viewer` not null),
 * with their first portfolio when a scenario trades.
 */
export async function discoverTargets(url: string, options: { jwtSecret: string; users: number; withPortfolios?: boolean }): Promise<LoadTargets> {
  const client = new GraphQLClient(url);
  const symbols: string[] = [];
  let after: string | null = null;
  do {
    const page: { instruments: { nodes: { symbol: string }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } = await client.request(
      'query LoadInstruments($after: String) { instruments(first: 100, after: $after) { nodes { symbol } pageInfo { hasNextPage endCursor } } }',
      { after },
    );
    symbols.push(...page.instruments.nodes.map((n) => n.symbol));
    after = page.instruments.pageInfo.hasNextPage ? page.instruments.pageInfo.endCursor : null;
  } while (after && symbols.length < 1000);

  const tokens: string[] = [];
  const portfolios: (string | null)[] = [];
  const refusals = new Map<string, number>();
  const ids = Array.from({ length: options.users }, (_, i) => i + 1);
  for (let i = 0; i < ids.length; i += 10) {
    const found = await Promise.all(
      ids.slice(i, i + 10).map(async (id) => {
        const token = await signUserToken(options.jwtSecret, id, '2h');
        try {
          const answer: { viewer: { portfolios: { nodes: { id: string }[] } } | null } = await new GraphQLClient(url, {
            headers: { authorization: `Bearer ${token}` },
          }).request('query LoadViewer { viewer { portfolios(first: 1) { nodes { id } } } }');
          return answer.viewer ? { token, portfolio: answer.viewer.portfolios.nodes[0]?.id ?? null } : null;
        } catch (e) {
          // a refused probe (a spent budget, a token the server does not accept) leaves that user out
          const code = e instanceof ClientError ? String(e.response.errors?.[0]?.extensions?.code ?? `HTTP ${e.response.status}`) : String(e);
          refusals.set(code, (refusals.get(code) ?? 0) + 1);
          return null;
        }
      }),
    );
    for (const f of found) {
      if (!f) continue;
      tokens.push(f.token);
      portfolios.push(f.portfolio);
    }
  }
  if (tokens.length === 0 && refusals.size) {
    throw new Error(
      `the server refused every user probe (${[...refusals].map(([code, n]) => `${code} ×${n}`).join(', ')}): check JWT_SECRET, or wait for the users' cost budgets to refill`,
    );
  }
  return { tokens, symbols, refusals: Object.fromEntries(refusals), ...(options.withPortfolios ? { portfolios } : {}) };
}
