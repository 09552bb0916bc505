import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { createTestDatabase, onPostgres, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// The whole-operation response cache (envelop's response cache behind Apollo, see
// src/cache/executor.ts): what it shares, with whom, what it never keeps, what a write drops, how
// identical queries in flight run once, and how it stays within its bounds. Every check is on real
// SQL counts, values and the answers' extensions.

const DASHBOARD = `query Dashboard($n: Int!) {
  viewer {
    id
    email
    portfolios(first: $n) {
      totalCount
      nodes { id name positions(first: 50) { nodes { quantity averageCost instrument { symbol latestPrice { date close } } } } }
    }
  }
}`;

const PORTFOLIOS = `query Portfolios($n: Int!) { portfolios(first: $n) { totalCount nodes { id name } } }`;

const TRADES = `query Trades($id: ID!, $n: Int!) {
  portfolio(id: $id) { id trades(first: $n) { totalCount nodes { id side quantity price instrument { symbol } } } }
}`;

const QUOTE = `query Quote($s: String!, $n: Int!) { instrument(symbol: $s) { symbol name latestPrice { date close } prices(first: $n) { date close } } }`;

const RECORD_TRADE = `mutation Trade($input: RecordTradeInput!) { recordTrade(input: $input) { trade { id quantity } position { quantity } } }`;

const CREATE_PORTFOLIO = `mutation Create($name: String!) { createPortfolio(input: { name: $name }) { portfolio { id name } } }`;

interface Answer {
  body: any;
  /** Statements the whole process sent while the request ran (server.countSql). */
  statements: number;
}

async function ask(server: TestServer, query: string, variables: Record<string, unknown> = {}, userId?: number): Promise<Answer> {
  const headers: Record<string, string> = userId ? { authorization: `Bearer ${await server.token(userId)}` } : {};
  const { result, statements } = await server.countSql(() => server.post({ query, variables }, headers));
  expect(result.status, JSON.stringify(result.body)).toBe(200);
  return { body: result.body, statements };
}

/** The sum of a metric's samples whose labels include `labels`, from GET /metrics. */
async function metric(server: TestServer, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(server.url.replace(/\/graphql$/, '/metrics'))).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

const hit = (a: Answer) => a.body.extensions?.responseCache?.hit;
const portfolioIds = (a: Answer, path: 'viewer' | 'root') =>
  (path === 'viewer' ? a.body.data.viewer.portfolios.nodes : a.body.data.portfolios.nodes).map((p: { id: string }) => p.id).sort();

describe('response cache', () => {
  let database: TestDatabase;
  let server: TestServer;
  let s: ReturnType<typeof seed>;
  let symbols: string[];

  /** A new user (so nothing of theirs is cached yet) with `count` portfolios, each holding the instruments. */
  async function trader(count = 2, quantity = '3') {
    const user = await s.user();
    const portfolios: string[] = [];
    for (let i = 0; i < count; i++) {
      const p = await s.portfolio(user);
      for (const symbol of symbols) await s.trade(user.viewer, { portfolioId: p.id, symbol, side: 'BUY', quantity, price: '10' });
      portfolios.push(String(p.id));
    }
    return { id: user.id, email: user.email, portfolios: portfolios.sort() };
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    s = seed(database.db);
    symbols = [];
    for (let i = 0; i < 3; i++) symbols.push((await s.instrument(['10', '11', '12', '12.5'])).symbol);
    // the hot-entity cache off: statement counts below are the response cache's alone
    server = await startTestServer(database, { HOT_CACHE_TTL_MS: '0' });
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  describe('hits', () => {
    it('answers a repeated query from the cache with no SQL and identical data', async () => {
      const alice = await trader();
      const first = await ask(server, DASHBOARD, { n: 10 }, alice.id);
      expect(first.body.errors).toBeUndefined();
      expect(first.body.extensions.responseCache).toMatchObject({ hit: false, didCache: true });
      expect(first.statements).toBeGreaterThan(0);
      expect(first.body.extensions.cost.actual.sqlStatements).toBe(first.statements);
      expect(portfolioIds(first, 'viewer')).toEqual(alice.portfolios);

      const second = await ask(server, DASHBOARD, { n: 10 }, alice.id);
      expect(second.body.extensions.responseCache.hit).toBe(true);
      expect(second.statements).toBe(0);
      expect(second.body.extensions.cost.actual.sqlStatements).toBe(0);
      expect(second.body.data).toEqual(first.body.data);
    });

    it('treats other variables as another answer, and variables in another order as the same one', async () => {
      const alice = await trader(3);
      const all = await ask(server, DASHBOARD, { n: 10 }, alice.id);
      const one = await ask(server, DASHBOARD, { n: 1 }, alice.id);
      expect(hit(one)).toBe(false);
      expect(one.body.data.viewer.portfolios.nodes).toHaveLength(1);
      expect(all.body.data.viewer.portfolios.nodes).toHaveLength(3);

      const quote = { s: symbols[0], n: 2 };
      await ask(server, QUOTE, quote);
      const reordered = await ask(server, QUOTE, { n: 2, s: symbols[0] });
      expect(hit(reordered)).toBe(true);
      expect(reordered.statements).toBe(0);
    });
  });

  describe('who gets which answer', () => {
    it('gives alice and bob, sending the same document and variables, each their own portfolios', async () => {
      const alice = await trader(2);
      const bob = await trader(3);
      const vars = { n: 20 };

      const a1 = await ask(server, DASHBOARD, vars, alice.id);
      expect(a1.body.extensions.responseCache).toMatchObject({ hit: false, didCache: true });
      // alice's answer is cached; bob's identical request must not be answered with it
      const b1 = await ask(server, DASHBOARD, vars, bob.id);
      expect(hit(b1)).toBe(false);
      expect(b1.statements).toBeGreaterThan(0);
      expect(b1.body.data.viewer.email).toBe(bob.email);
      expect(portfolioIds(b1, 'viewer')).toEqual(bob.portfolios);

      // both cached now, each under its own caller
      const a2 = await ask(server, DASHBOARD, vars, alice.id);
      const b2 = await ask(server, DASHBOARD, vars, bob.id);
      expect([hit(a2), hit(b2)]).toEqual([true, true]);
      expect(a2.statements + b2.statements).toBe(0);
      expect(a2.body.data.viewer.email).toBe(alice.email);
      expect(portfolioIds(a2, 'viewer')).toEqual(alice.portfolios);
      expect(portfolioIds(b2, 'viewer')).toEqual(bob.portfolios);
      expect(portfolioIds(b2, 'viewer').some((id: string) => alice.portfolios.includes(id))).toBe(false);

      // the root list, too
      const ra = await ask(server, PORTFOLIOS, { n: 20 }, alice.id);
      const rb = await ask(server, PORTFOLIOS, { n: 20 }, bob.id);
      expect(portfolioIds(ra, 'root')).toEqual(alice.portfolios);
      expect(portfolioIds(rb, 'root')).toEqual(bob.portfolios);
      expect(hit(rb)).toBe(false);
    });

    it('keeps callers apart when their identical queries are in flight at once', async () => {
      const alice = await trader(1);
      const bob = await trader(2);
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => ask(server, DASHBOARD, { n: 7 }, i % 2 === 0 ? alice.id : bob.id)));
      answers.forEach((a, i) => {
        const who = i % 2 === 0 ? alice : bob;
        expect(a.body.data.viewer.email).toBe(who.email);
        expect(portfolioIds(a, 'viewer')).toEqual(who.portfolios);
      });
    });

    it('never gives an anonymous caller a private answer, even right after one is cached', async () => {
      const alice = await trader(2);
      const a = await ask(server, DASHBOARD, { n: 5 }, alice.id);
      expect(a.body.extensions.responseCache.didCache).toBe(true);
      const anon = await ask(server, DASHBOARD, { n: 5 });
      expect(anon.body.errors).toBeUndefined();
      expect(anon.body.data).toEqual({ viewer: null });
      expect(hit(anon)).toBe(false);

      await ask(server, PORTFOLIOS, { n: 5 }, alice.id);
      const anonList = await ask(server, PORTFOLIOS, { n: 5 });
      expect(anonList.body.data.portfolios).toEqual({ totalCount: 0, nodes: [] });

      // alice's portfolio by id, asked by nobody, and by a signed-in stranger
      const byId = { id: alice.portfolios[0], n: 5 };
      const mine = await ask(server, TRADES, byId, alice.id);
      expect(mine.body.data.portfolio.id).toBe(alice.portfolios[0]);
      expect((await ask(server, TRADES, byId)).body.data).toEqual({ portfolio: null });
      const stranger = await trader(1);
      expect((await ask(server, TRADES, byId, stranger.id)).body.data).toEqual({ portfolio: null });
      // and alice still gets hers, from the cache
      const again = await ask(server, TRADES, byId, alice.id);
      expect(hit(again)).toBe(true);
      expect(again.body.data).toEqual(mine.body.data);
    });

    it('shares public instrument data: after alice asks, bob and anonymous callers run no SQL', async () => {
      const alice = await trader(1);
      const bob = await trader(1);
      const vars = { s: symbols[1], n: 3 };
      const a = await ask(server, QUOTE, vars, alice.id);
      expect(a.body.extensions.responseCache).toMatchObject({ hit: false, didCache: true });
      expect(a.statements).toBeGreaterThan(0);
      expect(a.body.data.instrument).toMatchObject({ symbol: symbols[1], latestPrice: { close: '12.5' } });
      const b = await ask(server, QUOTE, vars, bob.id);
      expect(hit(b)).toBe(true);
      expect(b.statements).toBe(0);
      expect(b.body.data).toEqual(a.body.data);
      const anon = await ask(server, QUOTE, vars);
      expect(hit(anon)).toBe(true);
      expect(anon.statements).toBe(0);
    });
  });

  describe('what is never cached', () => {
    it('does not cache an answer with a BAD_USER_INPUT field error', async () => {
      const query = `query Broken($s: String!, $after: String) { instrument(symbol: $s) { symbol latestPrice { close } } instruments(first: 2, after: $after) { totalCount } }`;
      const vars = { s: symbols[2], after: 'not-a-cursor' };
      const first = await ask(server, query, vars);
      expect(first.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(first.body.extensions.responseCache).toMatchObject({ hit: false, didCache: false });
      const second = await ask(server, query, vars);
      expect(second.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(hit(second)).toBe(false);
      expect(second.statements).toBeGreaterThan(0);

      // a private answer with a field error is not kept either
      const alice = await trader(1);
      const privateQuery = `query BrokenTrades($id: ID!) { portfolio(id: $id) { id trades(first: 2, after: "nope") { totalCount } } }`;
      const p1 = await ask(server, privateQuery, { id: alice.portfolios[0] }, alice.id);
      expect(p1.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      const p2 = await ask(server, privateQuery, { id: alice.portfolios[0] }, alice.id);
      expect(hit(p2)).toBe(false);
      expect(p2.statements).toBeGreaterThan(0);
    });

    it('never answers a mutation from the cache: a replayed createPortfolio creates a second portfolio', async () => {
      const alice = await trader(1);
      const vars = { name: 'Replayed' };
      const one = await ask(server, CREATE_PORTFOLIO, vars, alice.id);
      const two = await ask(server, CREATE_PORTFOLIO, vars, alice.id);
      expect(one.body.errors).toBeUndefined();
      expect(two.body.errors).toBeUndefined();
      expect(hit(two)).not.toBe(true);
      expect(two.statements).toBeGreaterThan(0);
      expect(two.body.data.createPortfolio.portfolio.id).not.toBe(one.body.data.createPortfolio.portfolio.id);
      const list = await ask(server, PORTFOLIOS, { n: 20 }, alice.id);
      expect(list.body.data.portfolios.nodes.filter((p: { name: string }) => p.name === 'Replayed')).toHaveLength(2);
      expect(list.body.data.portfolios.totalCount).toBe(3);
    });
  });

  describe('invalidation by writes through the API', () => {
    it('shows a trade recorded through the API in the next dashboard, which is not a hit', async () => {
      const alice = await trader(1, '3');
      const before = await ask(server, DASHBOARD, { n: 10 }, alice.id);
      expect(before.body.data.viewer.portfolios.nodes[0].positions.nodes[0].quantity).toBe('3');
      expect(hit(await ask(server, DASHBOARD, { n: 10 }, alice.id))).toBe(true);

      const trade = await ask(
        server,
        RECORD_TRADE,
        { input: { portfolioId: alice.portfolios[0], symbol: symbols[0], side: 'BUY', quantity: '2', price: '11' } },
        alice.id,
      );
      expect(trade.body.errors).toBeUndefined();
      expect(trade.body.data.recordTrade.position.quantity).toBe('5');

      const after = await ask(server, DASHBOARD, { n: 10 }, alice.id);
      expect(hit(after)).toBe(false);
      expect(after.statements).toBeGreaterThan(0);
      const position = after.body.data.viewer.portfolios.nodes[0].positions.nodes.find((p: any) => p.instrument.symbol === symbols[0]);
      expect(position.quantity).toBe('5');
      // and cached again
      const again = await ask(server, DASHBOARD, { n: 10 }, alice.id);
      expect(hit(again)).toBe(true);
      expect(again.body.data).toEqual(after.body.data);
    });

    it('shows a new portfolio in a cached viewer.portfolios and in a cached root portfolios list', async () => {
      const alice = await trader(2);
      await ask(server, DASHBOARD, { n: 20 }, alice.id);
      await ask(server, PORTFOLIOS, { n: 20 }, alice.id);
      expect(hit(await ask(server, DASHBOARD, { n: 20 }, alice.id))).toBe(true);
      expect(hit(await ask(server, PORTFOLIOS, { n: 20 }, alice.id))).toBe(true);

      const created = await ask(server, CREATE_PORTFOLIO, { name: 'Fresh' }, alice.id);
      const id = created.body.data.createPortfolio.portfolio.id;

      const viewerList = await ask(server, DASHBOARD, { n: 20 }, alice.id);
      expect(hit(viewerList)).toBe(false);
      expect(viewerList.body.data.viewer.portfolios.totalCount).toBe(3);
      expect(portfolioIds(viewerList, 'viewer')).toContain(id);
      const rootList = await ask(server, PORTFOLIOS, { n: 20 }, alice.id);
      expect(hit(rootList)).toBe(false);
      expect(rootList.body.data.portfolios.totalCount).toBe(3);
      expect(portfolioIds(rootList, 'root')).toContain(id);
    });

    it('shows a new trade in a cached trades list', async () => {
      const alice = await trader(1);
      const vars = { id: alice.portfolios[0], n: 50 };
      const before = await ask(server, TRADES, vars, alice.id);
      expect(before.body.data.portfolio.trades.totalCount).toBe(symbols.length);
      expect(hit(await ask(server, TRADES, vars, alice.id))).toBe(true);

      const trade = await ask(
        server,
        RECORD_TRADE,
        { input: { portfolioId: alice.portfolios[0], symbol: symbols[1], side: 'SELL', quantity: '1', price: '12' } },
        alice.id,
      );
      const tradeId = trade.body.data.recordTrade.trade.id;

      const after = await ask(server, TRADES, vars, alice.id);
      expect(hit(after)).toBe(false);
      expect(after.body.data.portfolio.trades.totalCount).toBe(symbols.length + 1);
      expect(after.body.data.portfolio.trades.nodes.map((t: { id: string }) => t.id)).toContain(tradeId);
    });

    it("leaves other users' and public cached answers alone when alice trades", async () => {
      const alice = await trader(1);
      const bob = await trader(1);
      const quote = { s: symbols[0], n: 4 };
      await ask(server, DASHBOARD, { n: 10 }, alice.id);
      const bobFirst = await ask(server, DASHBOARD, { n: 10 }, bob.id);
      await ask(server, QUOTE, quote);

      await ask(server, RECORD_TRADE, { input: { portfolioId: alice.portfolios[0], symbol: symbols[0], side: 'BUY', quantity: '1', price: '10' } }, alice.id);

      const bobAgain = await ask(server, DASHBOARD, { n: 10 }, bob.id);
      expect(hit(bobAgain)).toBe(true);
      expect(bobAgain.statements).toBe(0);
      expect(bobAgain.body.data).toEqual(bobFirst.body.data);
      const quoteAgain = await ask(server, QUOTE, quote);
      expect(hit(quoteAgain)).toBe(true);
      expect(quoteAgain.statements).toBe(0);
      expect(hit(await ask(server, DASHBOARD, { n: 10 }, alice.id))).toBe(false);
    });

    it('drops the cached answers of a write even when a later mutation in the same operation fails', async () => {
      // Mutation fields run one after another and each commits on its own: the first creates a
      // portfolio, the second fails (NOT_FOUND) and, its payload being non-null, nulls `data`.
      // The portfolio exists all the same, so the caller's cached lists must not hide it.
      const alice = await trader(1);
      await ask(server, PORTFOLIOS, { n: 20 }, alice.id);
      expect(hit(await ask(server, PORTFOLIOS, { n: 20 }, alice.id))).toBe(true);

      const both = await ask(
        server,
        `mutation Both($t: RecordTradeInput!) { a: createPortfolio(input: { name: "Half" }) { portfolio { id } } b: recordTrade(input: $t) { trade { id } } }`,
        { t: { portfolioId: '2147480000', symbol: symbols[0], side: 'BUY', quantity: '1', price: '1' } },
        alice.id,
      );
      expect(both.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
      expect(both.body.data).toBeNull();

      const list = await ask(server, PORTFOLIOS, { n: 20 }, alice.id);
      expect(list.body.data.portfolios.nodes.map((p: { name: string }) => p.name)).toContain('Half');
      expect(list.body.data.portfolios.totalCount).toBe(2);
    });
  });

  describe('single flight', () => {
    it('runs 30 identical concurrent queries that nothing has cached as one execution', async () => {
      const alice = await trader(3);
      // one execution of the same shape (other variables: another cache entry), for its statement count
      const one = await ask(server, DASHBOARD, { n: 19 }, alice.id);
      expect(one.statements).toBeGreaterThan(0);
      const token = await server.token(alice.id);
      const { result, statements } = await server.countSql(() =>
        Promise.all(Array.from({ length: 30 }, () => server.post({ query: DASHBOARD, variables: { n: 18 } }, { authorization: `Bearer ${token}` }))),
      );
      expect(statements).toBeGreaterThan(0);
      expect(statements).toBeLessThanOrEqual(2 * one.statements);
      for (const r of result) {
        expect(r.status).toBe(200);
        expect(r.body.data).toEqual(one.body.data);
      }
      // the public path too: 30 anonymous quotes
      const quote = await server.countSql(() =>
        Promise.all(Array.from({ length: 30 }, () => server.post({ query: QUOTE, variables: { s: symbols[2], n: 1 } }))),
      );
      const single = await ask(server, QUOTE, { s: symbols[2], n: 2 });
      expect(quote.statements).toBeLessThanOrEqual(2 * single.statements);
      expect(new Set(quote.result.map((r) => JSON.stringify(r.body.data))).size).toBe(1);
    });

    it.skipIf(!onPostgres)('does not let a read sent after a write join an identical read that began before it', async () => {
      // A real lock holds the first dashboard between reading alice's portfolio page and reading
      // positions; meanwhile she creates a portfolio, and then asks the same dashboard again. That
      // second read began after her write was acknowledged: it must see the new portfolio.
      const alice = await trader(1);
      const vars = { n: 30 };
      const lockHolder = postgres(database.url!, { max: 1, onnotice: () => {} });
      const watcher = postgres(database.url!, { max: 1, onnotice: () => {} });
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => (locked = r));
      const holding = lockHolder.begin(async (tx) => {
        await tx`lock table positions in access exclusive mode`;
        locked();
        await released;
      });
      try {
        await isLocked;
        const token = await server.token(alice.id);
        const post = () => server.post({ query: DASHBOARD, variables: vars }, { authorization: `Bearer ${token}` });
        const first = post();
        // bounded wait until the first read waits on the lock
        let waiting = false;
        for (let i = 0; i < 200 && !waiting; i++) {
          const [{ n }] = await watcher`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`;
          waiting = n > 0;
          if (!waiting) await new Promise((r) => setTimeout(r, 25));
        }
        expect(waiting).toBe(true);
        const created = await server.post({ query: CREATE_PORTFOLIO, variables: { name: 'During' } }, { authorization: `Bearer ${token}` });
        const newId = created.body.data.createPortfolio.portfolio.id;
        const second = post();
        release();
        const [a, b] = await Promise.all([first, second]);
        expect(a.body.data.viewer.portfolios.totalCount).toBe(1);
        expect(b.body.data.viewer.portfolios.nodes.map((p: { id: string }) => p.id)).toContain(newId);
        expect(b.body.data.viewer.portfolios.totalCount).toBe(2);
      } finally {
        release();
        await holding.catch(() => {});
        await lockHolder.end();
        await watcher.end();
      }
    });
  });

  describe('bounds and switches', () => {
    it('evicts early answers to stay within RESPONSE_CACHE_MAX_BYTES, and counts the evictions', async () => {
      const closes = Array.from({ length: 1000 }, (_, i) => (100 + i / 100).toFixed(2));
      const inst = await s.instrument(closes);
      const small = await startTestServer(database, { HOT_CACHE_TTL_MS: '0', RESPONSE_CACHE_MAX_BYTES: '20000' });
      try {
        // answers of roughly 3 to 6 KB each, 40 of them: far more than 20,000 bytes together
        const answers: Answer[] = [];
        for (let n = 100; n < 140; n++) answers.push(await ask(small, QUOTE, { s: inst.symbol, n }));
        expect(answers.every((a) => a.body.extensions.responseCache.didCache === true)).toBe(true);
        expect(JSON.stringify(answers[0].body.data).length).toBeGreaterThan(3000);

        const last = await ask(small, QUOTE, { s: inst.symbol, n: 139 });
        expect(hit(last)).toBe(true);
        expect(last.statements).toBe(0);
        const early = await ask(small, QUOTE, { s: inst.symbol, n: 100 });
        expect(hit(early)).toBe(false);
        expect(early.statements).toBeGreaterThan(0);
        expect(early.body.data).toEqual(answers[0].body.data);
        expect(await metric(small, 'foliograph_response_cache_evictions_total')).toBeGreaterThan(0);

        // one answer larger than the whole bound is not kept, and does not push out the others
        const kept = await ask(small, QUOTE, { s: inst.symbol, n: 138 });
        expect(hit(kept)).toBe(true);
        const huge = { s: inst.symbol, n: 1000 };
        expect(JSON.stringify((await ask(small, QUOTE, huge)).body.data).length).toBeGreaterThan(20000);
        const hugeAgain = await ask(small, QUOTE, huge);
        expect(hit(hugeAgain)).toBe(false);
        expect(hugeAgain.statements).toBeGreaterThan(0);
        expect(hit(await ask(small, QUOTE, { s: inst.symbol, n: 138 }))).toBe(true);
      } finally {
        await small.stop();
      }
    });

    it('evicts beyond RESPONSE_CACHE_MAX_ENTRIES', async () => {
      const few = await startTestServer(database, { HOT_CACHE_TTL_MS: '0', RESPONSE_CACHE_MAX_ENTRIES: '3' });
      try {
        for (let n = 1; n <= 4; n++) await ask(few, QUOTE, { s: symbols[0], n });
        expect(hit(await ask(few, QUOTE, { s: symbols[0], n: 4 }))).toBe(true);
        expect(hit(await ask(few, QUOTE, { s: symbols[0], n: 1 }))).toBe(false);
        expect(await metric(few, 'foliograph_response_cache_evictions_total')).toBeGreaterThan(0);
      } finally {
        await few.stop();
      }
    });

    it('runs SQL every time with RESPONSE_CACHE=off', async () => {
      const alice = await trader(1);
      const off = await startTestServer(database, { HOT_CACHE_TTL_MS: '0', RESPONSE_CACHE: 'off' });
      try {
        expect(off.app.store).toBeNull();
        const vars = { s: symbols[0], n: 2 };
        const first = await ask(off, QUOTE, vars);
        const second = await ask(off, QUOTE, vars);
        expect(second.statements).toBe(first.statements);
        expect(second.statements).toBeGreaterThan(0);
        expect(second.body.extensions.responseCache).toBeUndefined();
        expect(second.body.data).toEqual(first.body.data);
        const d1 = await ask(off, DASHBOARD, { n: 3 }, alice.id);
        const d2 = await ask(off, DASHBOARD, { n: 3 }, alice.id);
        expect(d2.statements).toBe(d1.statements);
        expect(d2.statements).toBeGreaterThan(0);
        expect(await metric(off, 'foliograph_response_cache_requests_total')).toBe(0);
      } finally {
        await off.stop();
      }
    });
  });

  describe('metrics', () => {
    it('counts hits, misses and invalidations by type', async () => {
      const alice = await trader(1);
      const requests = (result: string) => metric(server, 'foliograph_response_cache_requests_total', { result, tier: 'local' });
      const sessions = () => metric(server, 'foliograph_response_cache_invalidations_total', { type: 'Session' });
      const [hits0, misses0, inv0] = [await requests('hit'), await requests('miss'), await sessions()];

      await ask(server, DASHBOARD, { n: 11 }, alice.id);
      expect(await requests('miss')).toBe(misses0 + 1);
      expect(await requests('hit')).toBe(hits0);
      await ask(server, DASHBOARD, { n: 11 }, alice.id);
      expect(await requests('hit')).toBe(hits0 + 1);
      expect(await requests('miss')).toBe(misses0 + 1);

      await ask(server, CREATE_PORTFOLIO, { name: 'Counted' }, alice.id);
      expect(await sessions()).toBe(inv0 + 1);
      // a mutation is not a lookup
      expect(await requests('hit')).toBe(hits0 + 1);
      expect(await requests('miss')).toBe(misses0 + 1);
      const text = await (await fetch(server.url.replace(/\/graphql$/, '/metrics'))).text();
      expect(text).toMatch(/^foliograph_response_cache_invalidations_total\{type="Session"\} \d+/m);
    });
  });
});
