import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientError, gql, type GraphQLClient } from 'graphql-request';
import { eq } from 'drizzle-orm';
import { instruments, type InstrumentRow, type PortfolioRow, type UserRow } from '../src/db/schema.js';
import type { Viewer } from '../src/admission/tokens.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// Every connection is walked to its end with first = 2 and after = endCursor, through the real server:
// each item comes exactly once, in the list's order, and every page costs the same few statements.

const PAGE_INFO = `totalCount pageInfo { hasNextPage endCursor }`;

const VIEWER_PORTFOLIOS = gql`
  query ViewerPortfolios($first: Int, $after: String) {
    viewer { portfolios(first: $first, after: $after) { ${PAGE_INFO} edges { cursor node { id name } } nodes { id } } }
  }
`;
const ROOT_PORTFOLIOS = gql`
  query RootPortfolios($first: Int, $after: String) {
    portfolios(first: $first, after: $after) { ${PAGE_INFO} edges { cursor node { id name } } nodes { id } }
  }
`;
const POSITIONS = gql`
  query Positions($id: ID!, $first: Int, $after: String) {
    portfolio(id: $id) { positions(first: $first, after: $after) { ${PAGE_INFO} edges { cursor node { id quantity instrument { symbol } } } nodes { id } } }
  }
`;
const TRADES = gql`
  query Trades($id: ID!, $first: Int, $after: String) {
    portfolio(id: $id) { trades(first: $first, after: $after) { ${PAGE_INFO} edges { cursor node { id side quantity executedAt } } nodes { id } } }
  }
`;
const INSTRUMENTS = gql`
  query Instruments($first: Int, $after: String, $search: String) {
    instruments(first: $first, after: $after, search: $search) { ${PAGE_INFO} edges { cursor node { id symbol name } } nodes { id } }
  }
`;

interface Page<N> {
  totalCount: number;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  edges: { cursor: string; node: N }[];
  nodes: { id: string }[];
}

/** A node as the queries select it: an id and whatever fields that list's query asks for. */
type Node = { id: string } & Record<string, any>;

interface Walk<N> {
  items: N[];
  pages: number;
  totalCounts: number[];
  statements: number[];
}

/**
 * Follows endCursor until hasNextPage is false, checking each page's shape on the way: at most
 * `first` edges, nodes matching edges, and endCursor equal to the last edge's cursor.
 */
async function walk(server: TestServer, first: number, fetchPage: (after: string | null) => Promise<Page<Node>>): Promise<Walk<Node>> {
  const out: Walk<Node> = { items: [], pages: 0, totalCounts: [], statements: [] };
  let after: string | null = null;
  for (;;) {
    const { result: page, statements } = await server.countSql(() => fetchPage(after));
    out.pages++;
    out.statements.push(statements);
    out.totalCounts.push(page.totalCount);
    expect(page.edges.length).toBeLessThanOrEqual(first);
    expect(page.nodes.map((n) => n.id)).toEqual(page.edges.map((e) => e.node.id));
    expect(page.pageInfo.endCursor).toBe(page.edges.length ? page.edges[page.edges.length - 1].cursor : null);
    out.items.push(...page.edges.map((e) => e.node));
    if (!page.pageInfo.hasNextPage) break;
    expect(page.edges).toHaveLength(first); // only a last page may be short
    after = page.pageInfo.endCursor;
    if (out.pages > 100) throw new Error('pagination does not end');
  }
  return out;
}

const codeOf = (e: unknown) => (e instanceof ClientError ? e.response.errors?.[0]?.extensions?.code : undefined);

describe('pagination', () => {
  let database: TestDatabase;
  let server: TestServer;
  let owner: UserRow & { viewer: Viewer };
  let ownerClient: GraphQLClient;
  let mine: PortfolioRow[]; // oldest first
  let held: PortfolioRow; // open positions, one closed
  let busy: PortfolioRow; // seven trades, two pairs sharing a time
  let openSymbols: string[]; // held's open positions, in the order opened
  let expectedTrades: { at: string; id: number }[]; // busy's trades, newest first
  let allInstruments: InstrumentRow[];

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    owner = await s.user();
    const other = await s.user();
    allInstruments = [];
    const named = [
      ['PGAAA', 'Alpha Growth'],
      ['PGBBB', 'A_B Holdings'],
      ['PGCCC', 'AXB Holdings'],
      ['PGDDD', '100% Equity Fund'],
      ['PGEEE', '1000 Equity Fund'],
      ['PGFFF', 'Back\\slash Trust'],
      ['PGGGG', 'Gamma Partners'],
    ];
    for (const [symbol, name] of named) {
      const row = await s.instrument(['10', '12']);
      // the builder names it after its symbol; give it the name the search tests need
      const [renamed] = await database.db.update(instruments).set({ symbol, name }).where(eq(instruments.id, row.id)).returning();
      allInstruments.push(renamed);
    }
    for (let i = 0; i < 4; i++) allInstruments.push(await s.instrument(['20', '21.5'], { symbol: `PGX${String.fromCharCode(65 + i)}` }));
    const bySymbol = new Map(allInstruments.map((i) => [i.symbol, i]));

    mine = [];
    for (let i = 1; i <= 5; i++) mine.push(await s.portfolio(owner, `Mine ${i}`));
    await s.portfolio(other, 'Theirs 1');
    await s.portfolio(other, 'Theirs 2');
    [held, busy] = [mine[0], mine[1]];

    // held: seven instruments opened in this order, the third then sold out (closed positions are not listed)
    const opened = ['PGGGG', 'PGAAA', 'PGDDD', 'PGXA', 'PGCCC', 'PGXC', 'PGBBB'];
    let day = 1;
    const at = () => new Date(Date.UTC(2024, 0, day++, 15));
    for (const symbol of opened) await s.trade(owner.viewer, { portfolioId: held.id, symbol, side: 'BUY', quantity: '3', price: '10', executedAt: at() });
    await s.trade(owner.viewer, { portfolioId: held.id, symbol: 'PGDDD', side: 'SELL', quantity: '3', price: '11', executedAt: at() });
    await s.trade(owner.viewer, { portfolioId: held.id, symbol: 'PGAAA', side: 'SELL', quantity: '1', price: '11', executedAt: at() });
    openSymbols = opened.filter((x) => x !== 'PGDDD');
    expect(bySymbol.size).toBe(11);

    // busy: recorded out of time order, with ties on executedAt (ties go by id, newest first)
    const times = [
      '2024-02-03T10:00:00Z',
      '2024-02-01T10:00:00Z',
      '2024-02-03T10:00:00Z',
      '2024-02-05T10:00:00Z',
      '2024-02-01T10:00:00Z',
      '2024-02-02T10:00:00Z',
      '2024-02-04T10:00:00Z',
    ];
    const recorded: { at: string; id: number }[] = [];
    for (const [n, t] of times.entries()) {
      const { trade } = await s.trade(owner.viewer, {
        portfolioId: busy.id,
        symbol: 'PGGGG',
        side: 'BUY',
        quantity: String(n + 1),
        price: '10',
        executedAt: new Date(t),
      });
      recorded.push({ at: trade.executedAt.toISOString(), id: trade.id });
    }
    expectedTrades = [...recorded].sort((x, y) => (x.at === y.at ? y.id - x.id : y.at.localeCompare(x.at)));

    server = await startTestServer(database);
    ownerClient = await server.client(owner.id);
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  describe('walking every page with first = 2', () => {
    it('viewer.portfolios: each of the viewer’s portfolios once, oldest first', async () => {
      const w = await walk(server, 2, async (after) => (await ownerClient.request<any>(VIEWER_PORTFOLIOS, { first: 2, after })).viewer.portfolios);
      expect(w.items.map((p) => p.id)).toEqual(mine.map((p) => String(p.id)));
      expect(w.items.map((p) => p.name)).toEqual(['Mine 1', 'Mine 2', 'Mine 3', 'Mine 4', 'Mine 5']);
      expect(w.pages).toBe(3);
      expect(w.totalCounts).toEqual([5, 5, 5]);
      // the user with its portfolio page and count, in one statement: whatever the page
      expect(w.statements).toEqual([1, 1, 1]);
    });

    it('root portfolios: the same list', async () => {
      const w = await walk(server, 2, async (after) => (await ownerClient.request<any>(ROOT_PORTFOLIOS, { first: 2, after })).portfolios);
      expect(w.items.map((p) => p.id)).toEqual(mine.map((p) => String(p.id)));
      expect(w.totalCounts).toEqual([5, 5, 5]);
      expect(w.statements).toEqual([2, 2, 2]);
    });

    it('a portfolio’s positions: each open position once, in the order opened', async () => {
      const w = await walk(
        server,
        2,
        async (after) => (await ownerClient.request<any>(POSITIONS, { id: String(held.id), first: 2, after })).portfolio.positions,
      );
      expect(w.items.map((p) => p.instrument.symbol)).toEqual(openSymbols);
      expect(w.items.map((p) => p.quantity)).toEqual(['3', '2', '3', '3', '3', '3']);
      expect(new Set(w.items.map((p) => p.id)).size).toBe(6);
      expect(w.pages).toBe(3);
      expect(w.totalCounts).toEqual([6, 6, 6]);
      // portfolio, open positions (with their instruments)
      expect(w.statements).toEqual([2, 2, 2]);
    });

    it('a portfolio’s trades: each trade once, newest first by executedAt then id', async () => {
      const w = await walk(server, 2, async (after) => (await ownerClient.request<any>(TRADES, { id: String(busy.id), first: 2, after })).portfolio.trades);
      expect(w.items.map((t) => ({ at: t.executedAt, id: Number(t.id) }))).toEqual(expectedTrades);
      expect(w.pages).toBe(4);
      expect(w.totalCounts).toEqual([7, 7, 7, 7]);
      // portfolio, trade page, trade count
      expect(w.statements).toEqual([3, 3, 3, 3]);
    });

    it('root instruments: each instrument once, by symbol; anyone may walk them', async () => {
      const anonymous = await server.client();
      const w = await walk(server, 2, async (after) => (await anonymous.request<any>(INSTRUMENTS, { first: 2, after })).instruments);
      const symbols = allInstruments.map((i) => i.symbol).sort();
      expect(w.items.map((i) => i.symbol)).toEqual(symbols);
      expect(w.pages).toBe(6);
      expect(w.totalCounts).toEqual(Array(6).fill(11));
      // page and count
      expect(w.statements).toEqual(Array(6).fill(2));
    });

    it('an endCursor of the last page gives an empty last page', async () => {
      const last = await ownerClient.request<any>(VIEWER_PORTFOLIOS, { first: 5 });
      expect(last.viewer.portfolios.pageInfo.hasNextPage).toBe(false);
      const after = last.viewer.portfolios.pageInfo.endCursor;
      const { viewer } = await ownerClient.request<any>(VIEWER_PORTFOLIOS, { first: 2, after });
      expect(viewer.portfolios).toMatchObject({ edges: [], nodes: [], totalCount: 5, pageInfo: { hasNextPage: false, endCursor: null } });
    });

    it('refuses a cursor of another list', async () => {
      const { portfolio } = await ownerClient.request<any>(TRADES, { id: String(busy.id), first: 1 });
      const tradeCursor = portfolio.trades.pageInfo.endCursor;
      const refused = await server.countSql(() => ownerClient.request(VIEWER_PORTFOLIOS, { first: 2, after: tradeCursor }).catch((e) => e));
      expect(codeOf(refused.result)).toBe('BAD_USER_INPUT');
    });
  });

  describe('first: 0', () => {
    // An empty page; totalCount still counts the whole list.
    const empty = (c: any, total: number) => {
      expect(c.edges).toEqual([]);
      expect(c.nodes).toEqual([]);
      expect(c.pageInfo.endCursor).toBeNull();
      expect(c.totalCount).toBe(total);
    };

    it('returns an empty page of every list', async () => {
      const anonymous = await server.client();
      empty((await ownerClient.request<any>(VIEWER_PORTFOLIOS, { first: 0 })).viewer.portfolios, 5);
      empty((await ownerClient.request<any>(ROOT_PORTFOLIOS, { first: 0 })).portfolios, 5);
      empty((await ownerClient.request<any>(POSITIONS, { id: String(held.id), first: 0 })).portfolio.positions, 6);
      empty((await ownerClient.request<any>(TRADES, { id: String(busy.id), first: 0 })).portfolio.trades, 7);
      empty((await anonymous.request<any>(INSTRUMENTS, { first: 0 })).instruments, 11);
    });

    it('says whether items follow an empty page, as every list does (Relay: more than `first` edges)', async () => {
      const anonymous = await server.client();
      expect((await ownerClient.request<any>(ROOT_PORTFOLIOS, { first: 0 })).portfolios.pageInfo.hasNextPage).toBe(true);
      expect((await ownerClient.request<any>(POSITIONS, { id: String(held.id), first: 0 })).portfolio.positions.pageInfo.hasNextPage).toBe(true);
      expect((await ownerClient.request<any>(TRADES, { id: String(busy.id), first: 0 })).portfolio.trades.pageInfo.hasNextPage).toBe(true);
      expect((await anonymous.request<any>(INSTRUMENTS, { first: 0 })).instruments.pageInfo.hasNextPage).toBe(true);
    });
  });

  describe('instruments(search:)', () => {
    const search = async (text: string) => {
      const anonymous = await server.client();
      const w = await walk(server, 2, async (after) => (await anonymous.request<any>(INSTRUMENTS, { first: 2, after, search: text })).instruments);
      expect(new Set(w.totalCounts)).toEqual(new Set([w.items.length]));
      return w.items.map((i) => i.symbol);
    };

    it('matches the symbol or the name, case-insensitively', async () => {
      expect(await search('pgaaa')).toEqual(['PGAAA']);
      expect(await search('ALPHA')).toEqual(['PGAAA']);
      expect(await search('holdings')).toEqual(['PGBBB', 'PGCCC']);
      expect(await search('equity fund')).toEqual(['PGDDD', 'PGEEE']);
      expect(await search('pgx')).toEqual(['PGXA', 'PGXB', 'PGXC', 'PGXD']);
      expect(await search('  gamma ')).toEqual(['PGGGG']);
      expect(await search('no such thing')).toEqual([]);
    });

    it('walks a search’s pages like the full list', async () => {
      expect(await search('pg')).toEqual(allInstruments.map((i) => i.symbol).sort());
    });

    it('treats % and _ (and \\) literally', async () => {
      expect(await search('%')).toEqual(['PGDDD']);
      expect(await search('0%')).toEqual(['PGDDD']);
      expect(await search('_')).toEqual(['PGBBB']);
      expect(await search('a_b')).toEqual(['PGBBB']);
      expect(await search('\\')).toEqual(['PGFFF']);
      expect(await search('k\\s')).toEqual(['PGFFF']);
    });
  });

  describe('trades recorded without executedAt', () => {
    it('are not lost at a page boundary when another trade has the same millisecond', async () => {
      // recordTrade stamps a trade with the database's now(), which has microseconds; the API shows
      // (and a client may send back) milliseconds. Two trades in that same millisecond must both be listed.
      const s = seed(database.db);
      const portfolio = await s.portfolio(owner);
      const first = await s.trade(owner.viewer, { portfolioId: portfolio.id, symbol: 'PGAAA', side: 'BUY', quantity: '1', price: '10' });
      const second = await s.trade(owner.viewer, {
        portfolioId: portfolio.id,
        symbol: 'PGAAA',
        side: 'BUY',
        quantity: '2',
        price: '10',
        executedAt: first.trade.executedAt,
      });
      const w = await walk(
        server,
        1,
        async (after) => (await ownerClient.request<any>(TRADES, { id: String(portfolio.id), first: 1, after })).portfolio.trades,
      );
      expect(w.totalCounts[0]).toBe(2);
      expect(w.items.map((t) => Number(t.id)).sort((x, y) => x - y)).toEqual([first.trade.id, second.trade.id]);
    });
  });
});
