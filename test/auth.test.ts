import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql } from 'graphql-request';
import { SignJWT, UnsecuredJWT } from 'jose';
import { signUserToken } from '../src/admission/tokens.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, TEST_SECRET, type TestServer } from './helpers/server.js';

// Who may see and change what: a user sees only their own portfolios (another's is exactly like one
// that does not exist), anonymous callers read only public data, and a broken credential fails the
// whole request with 401 instead of silently answering as anonymous.

const PORTFOLIO = gql`
  query Portfolio($id: ID!) {
    portfolio(id: $id) {
      id
      name
      positions {
        totalCount
        nodes {
          quantity
          instrument {
            symbol
          }
        }
      }
      trades {
        totalCount
        nodes {
          id
          quantity
        }
      }
      valuation {
        marketValue
      }
    }
  }
`;

const MY_PORTFOLIOS = gql`
  query Mine {
    viewer {
      id
      email
      portfolios(first: 100) {
        totalCount
        nodes {
          id
        }
      }
    }
    portfolios(first: 100) {
      totalCount
      nodes {
        id
      }
      edges {
        cursor
      }
    }
  }
`;

const RECORD_TRADE = gql`
  mutation Trade($input: RecordTradeInput!) {
    recordTrade(input: $input) {
      trade {
        id
      }
      position {
        quantity
      }
    }
  }
`;

const key = (secret: string) => new TextEncoder().encode(secret);

describe('authorization', () => {
  let database: TestDatabase;
  let server: TestServer;
  let alice: { id: number; email: string };
  let bob: { id: number; email: string };
  let alicePortfolios: number[];
  let bobPortfolios: number[];
  let symbol: string;
  let ghostId: number;

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    symbol = (await s.instrument(['100', '110'])).symbol;
    const other = (await s.instrument(['20'])).symbol;
    const a = await s.user({ name: 'Alice' });
    const b = await s.user({ name: 'Bob' });
    alice = a;
    bob = b;
    alicePortfolios = [];
    for (const name of ['Alice main', 'Alice pension']) {
      const p = await s.portfolio(a, name);
      alicePortfolios.push(p.id);
      await s.trade(a.viewer, { portfolioId: p.id, symbol, side: 'BUY', quantity: '10', price: '90' });
      await s.trade(a.viewer, { portfolioId: p.id, symbol: other, side: 'BUY', quantity: '3', price: '18.5' });
    }
    bobPortfolios = [];
    for (const name of ['Bob main']) {
      const p = await s.portfolio(b, name);
      bobPortfolios.push(p.id);
      await s.trade(b.viewer, { portfolioId: p.id, symbol, side: 'BUY', quantity: '1', price: '95' });
    }
    ghostId = Math.max(a.id, b.id) + 100_000;
    server = await startTestServer(database);
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  const as = async (userId: number) => ({ authorization: `Bearer ${await server.token(userId)}` });

  describe('between users', () => {
    it('lets alice read her own portfolio', async () => {
      const client = await server.client(alice.id);
      const { portfolio } = await client.request<any>(PORTFOLIO, { id: String(alicePortfolios[0]) });
      expect(portfolio).toMatchObject({ id: String(alicePortfolios[0]), name: 'Alice main', positions: { totalCount: 2 }, trades: { totalCount: 2 } });
    });

    it("gives bob null for alice's portfolio, exactly as for an id that does not exist", async () => {
      const headers = await as(bob.id);
      const theirs = await server.post({ query: PORTFOLIO, variables: { id: String(alicePortfolios[0]) } }, headers);
      const missing = await server.post({ query: PORTFOLIO, variables: { id: '2000000000' } }, headers);
      expect(theirs.status).toBe(200);
      expect(theirs.body.data).toEqual({ portfolio: null });
      expect(missing.status).toBe(theirs.status);
      expect(missing.body.data).toEqual(theirs.body.data);
      // not even the cost report tells them apart
      expect(missing.body.extensions.cost.actual).toEqual(theirs.body.extensions.cost.actual);
    });

    it("gives bob null for each of alice's portfolios fetched together with his own", async () => {
      const client = await server.client(bob.id);
      const res = await client.request<any>(
        gql`
          query Several($a: ID!, $b: ID!, $mine: ID!) {
            a: portfolio(id: $a) {
              id
            }
            b: portfolio(id: $b) {
              id
            }
            mine: portfolio(id: $mine) {
              id
              name
            }
          }
        `,
        { a: String(alicePortfolios[0]), b: String(alicePortfolios[1]), mine: String(bobPortfolios[0]) },
      );
      expect(res).toEqual({ a: null, b: null, mine: { id: String(bobPortfolios[0]), name: 'Bob main' } });
    });

    it("never lists alice's portfolios among bob's", async () => {
      const client = await server.client(bob.id);
      const res = await client.request<any>(MY_PORTFOLIOS);
      expect(res.viewer).toMatchObject({ id: String(bob.id), email: bob.email });
      const ids = res.viewer.portfolios.nodes.map((n: any) => Number(n.id));
      expect(ids).toEqual(bobPortfolios);
      expect(res.viewer.portfolios.totalCount).toBe(bobPortfolios.length);
      expect(res.portfolios.nodes.map((n: any) => Number(n.id))).toEqual(bobPortfolios);
      expect(res.portfolios.totalCount).toBe(bobPortfolios.length);
      for (const id of alicePortfolios) expect(ids).not.toContain(id);
    });

    it("does not page bob into alice's portfolios with a cursor taken from alice's list", async () => {
      const aliceRes = await (await server.client(alice.id)).request<any>(MY_PORTFOLIOS);
      const cursor = aliceRes.portfolios.edges[0].cursor;
      const res = await server.post(
        { query: 'query($after: String) { portfolios(after: $after) { nodes { id } } }', variables: { after: cursor } },
        await as(bob.id),
      );
      expect(res.status).toBe(200);
      for (const n of res.body.data.portfolios.nodes) expect(alicePortfolios).not.toContain(Number(n.id));
    });

    it("refuses bob's trade in alice's portfolio with NOT_FOUND and changes nothing", async () => {
      const aliceClient = await server.client(alice.id);
      const before = await aliceClient.request<any>(PORTFOLIO, { id: String(alicePortfolios[0]) });

      const input = { portfolioId: String(alicePortfolios[0]), symbol, side: 'SELL', quantity: '10', price: '1', idempotencyKey: 'bob-was-here' };
      const res = await server.post({ query: RECORD_TRADE, variables: { input } }, await as(bob.id));
      expect(res.status).toBe(200);
      expect(res.body.data).toBeNull();
      expect(res.body.errors).toHaveLength(1);
      expect(res.body.errors[0].extensions.code).toBe('NOT_FOUND');
      expect(res.body.errors[0].path).toEqual(['recordTrade']);

      // the same answer as for a portfolio that does not exist
      const missing = await server.post({ query: RECORD_TRADE, variables: { input: { ...input, portfolioId: '2000000000' } } }, await as(bob.id));
      expect(missing.body.errors[0].extensions.code).toBe('NOT_FOUND');
      expect(missing.body.errors[0].message).toBe(res.body.errors[0].message);

      const after = await aliceClient.request<any>(PORTFOLIO, { id: String(alicePortfolios[0]) });
      expect(after).toEqual(before);
      // a BUY, which could not be refused for lack of holdings, is refused the same way
      const buy = await server.post({ query: RECORD_TRADE, variables: { input: { ...input, side: 'BUY', idempotencyKey: null } } }, await as(bob.id));
      expect(buy.body.errors[0].extensions.code).toBe('NOT_FOUND');
      expect(await aliceClient.request<any>(PORTFOLIO, { id: String(alicePortfolios[0]) })).toEqual(before);
      // and bob's own portfolio is untouched as well
      const bobRes = await (await server.client(bob.id)).request<any>(PORTFOLIO, { id: String(bobPortfolios[0]) });
      expect(bobRes.portfolio.trades.totalCount).toBe(1);
    });

    it('answers ids that are not ids at all with null', async () => {
      const headers = await as(alice.id);
      for (const id of ['0', '-1', 'abc', '1.5', '99999999999999999999', ' 1', '']) {
        const res = await server.post({ query: PORTFOLIO, variables: { id } }, headers);
        expect(res.status, id).toBe(200);
        expect(res.body.data, id).toEqual({ portfolio: null });
      }
    });
  });

  describe('anonymous callers', () => {
    it('see viewer null and an empty list of portfolios', async () => {
      const res = await server.post({ query: MY_PORTFOLIOS });
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({ viewer: null, portfolios: { totalCount: 0, nodes: [], edges: [] } });
    });

    it('see null for any portfolio', async () => {
      const res = await server.post({ query: PORTFOLIO, variables: { id: String(alicePortfolios[0]) } });
      expect(res.body.data).toEqual({ portfolio: null });
    });

    it('treat an empty Authorization header as no credentials', async () => {
      const res = await server.post({ query: '{ viewer { id } }' }, { authorization: '' });
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({ viewer: null });
    });

    it('read instruments and prices', async () => {
      const client = await server.client();
      const res = await client.request<any>(
        gql`
          query Public($s: String!) {
            instrument(symbol: $s) {
              symbol
              latestPrice {
                date
                close
              }
              prices {
                date
                close
              }
            }
            instruments(first: 100) {
              totalCount
              nodes {
                symbol
              }
            }
          }
        `,
        { s: symbol },
      );
      expect(res.instrument).toEqual({
        symbol,
        latestPrice: { date: '2024-01-31', close: '110' },
        prices: [
          { date: '2024-01-30', close: '100' },
          { date: '2024-01-31', close: '110' },
        ],
      });
      expect(res.instruments.totalCount).toBe(2);
      expect(res.instruments.nodes.map((n: any) => n.symbol)).toContain(symbol);
    });

    it('cannot create a portfolio: UNAUTHENTICATED, and nothing is created', async () => {
      const res = await server.post({ query: 'mutation { createPortfolio(input: { name: "anon" }) { portfolio { id } } }' });
      // 401, or 200 with the error inside the result
      expect([200, 401]).toContain(res.status);
      expect(res.body.data ?? null).toBeNull();
      expect(res.body.errors).toHaveLength(1);
      expect(res.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
      const count = await server.post({ query: '{ portfolios { totalCount } }' }, await as(alice.id));
      expect(count.body.data.portfolios.totalCount).toBe(alicePortfolios.length);
    });

    it('cannot record a trade: UNAUTHENTICATED', async () => {
      const input = { portfolioId: String(alicePortfolios[0]), symbol, side: 'BUY', quantity: '1', price: '1' };
      const res = await server.post({ query: RECORD_TRADE, variables: { input } });
      expect([200, 401]).toContain(res.status);
      expect(res.body.data ?? null).toBeNull();
      expect(res.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
      const after = await (await server.client(alice.id)).request<any>(PORTFOLIO, { id: String(alicePortfolios[0]) });
      expect(after.portfolio.trades.totalCount).toBe(2);
    });
  });

  describe('broken credentials fail the request with 401', () => {
    const query = { query: '{ viewer { id } instruments { totalCount } }' };

    async function expect401(authorization: string) {
      const res = await server.post(query, { authorization });
      expect(res.status, authorization).toBe(401);
      expect(res.headers.get('content-type')).toMatch(/json/);
      expect(res.body.data, authorization).toBeUndefined();
      expect(res.body.errors, authorization).toHaveLength(1);
      expect(res.body.errors[0].extensions.code, authorization).toBe('UNAUTHENTICATED');
      // the status travels in HTTP, not in the error
      expect(res.body.errors[0].extensions.http).toBeUndefined();
      return res.body.errors[0].message as string;
    }

    it('a token that is not a JWT', async () => {
      await expect401('Bearer not-a-token');
      await expect401('Bearer a.b.c');
    });

    it('a token signed with another secret', async () => {
      await expect401(`Bearer ${await signUserToken('a-completely-different-secret-0123456789', alice.id)}`);
    });

    it('a tampered token (payload changed, signature kept)', async () => {
      const [h, , sig] = (await server.token(alice.id)).split('.');
      const payload = Buffer.from(JSON.stringify({ sub: String(bob.id), iss: 'foliograph', exp: 4102444800 })).toString('base64url');
      await expect401(`Bearer ${h}.${payload}.${sig}`);
    });

    it('an expired token', async () => {
      const message = await expect401(`Bearer ${await server.token(alice.id, '-1s')}`);
      expect(message).toMatch(/expired/);
      const past = Math.floor(Date.now() / 1000) - 3600;
      const jwt = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(String(alice.id))
        .setIssuer('foliograph')
        .setIssuedAt(past - 60)
        .setExpirationTime(past)
        .sign(key(TEST_SECRET));
      await expect401(`Bearer ${jwt}`);
    });

    it('a token that is not yet valid (nbf in the future)', async () => {
      const jwt = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(String(alice.id))
        .setIssuer('foliograph')
        .setNotBefore('1h')
        .setExpirationTime('2h')
        .sign(key(TEST_SECRET));
      await expect401(`Bearer ${jwt}`);
    });

    it('an unsigned token (alg none) or another algorithm', async () => {
      const none = new UnsecuredJWT({}).setSubject(String(alice.id)).setIssuer('foliograph').setExpirationTime('1h').encode();
      await expect401(`Bearer ${none}`);
      const hs512 = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS512' })
        .setSubject(String(alice.id))
        .setIssuer('foliograph')
        .setExpirationTime('1h')
        .sign(key(TEST_SECRET));
      await expect401(`Bearer ${hs512}`);
    });

    it('a correctly signed token with the wrong issuer or no usable subject', async () => {
      const sign = (build: (j: SignJWT) => SignJWT) =>
        build(new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h')).sign(key(TEST_SECRET));
      await expect401(`Bearer ${await sign((j) => j.setSubject(String(alice.id)).setIssuer('someone-else'))}`);
      await expect401(`Bearer ${await sign((j) => j.setSubject(String(alice.id)))}`);
      for (const sub of ['alice', '0', '-5', '1.5', '99999999999']) {
        await expect401(`Bearer ${await sign((j) => j.setSubject(sub).setIssuer('foliograph'))}`);
      }
      await expect401(`Bearer ${await sign((j) => j.setIssuer('foliograph'))}`);
    });

    it('a token with an audience that is not a partner of ours, or a delegated token that is malformed or lives too long', async () => {
      const sign = (claims: Record<string, unknown>, build: (j: SignJWT) => SignJWT = (j) => j.setIssuedAt().setExpirationTime('1h')) =>
        build(new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(String(alice.id)).setIssuer('foliograph')).sign(key(TEST_SECRET));
      const delegated = { aud: 'partner:1', scope: 'portfolios:read', grant: 1 };
      for (const claims of [
        { aud: 'someone-else' },
        { aud: ['partner:1', 'partner:2'], scope: 'portfolios:read', grant: 1 },
        { ...delegated, aud: 'partner:0' },
        { ...delegated, aud: 'partner:x' },
        { ...delegated, scope: undefined },
        { ...delegated, scope: ['portfolios:read'] },
        { ...delegated, grant: undefined },
        { ...delegated, grant: '1; drop' },
        { ...delegated, grant: 0 },
      ]) {
        await expect401(`Bearer ${await sign(claims)}`);
      }
      // a delegated token must say when it was issued, and expire within a day of it
      await expect401(`Bearer ${await sign(delegated, (j) => j.setExpirationTime('1h'))}`);
      const message = await expect401(`Bearer ${await sign(delegated, (j) => j.setIssuedAt().setExpirationTime('25h'))}`);
      expect(message).toMatch(/within 86400 seconds/);
    });

    it('an Authorization header that is not Bearer', async () => {
      const token = await server.token(alice.id);
      await expect401(`Basic ${Buffer.from('alice:secret').toString('base64')}`);
      await expect401(`Token ${token}`);
      await expect401(token);
      await expect401('Bearer');
      await expect401(`Bearer ${token} extra`);
    });

    it('even for a query that would not need credentials', async () => {
      const res = await server.post({ query: '{ instruments { totalCount } }' }, { authorization: 'Bearer nope' });
      expect(res.status).toBe(401);
      expect(res.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    });

    it('accepts a lowercase bearer scheme (schemes are case-insensitive)', async () => {
      const res = await server.post({ query: '{ viewer { id } }' }, { authorization: `bearer ${await server.token(alice.id)}` });
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({ viewer: { id: String(alice.id) } });
    });
  });

  describe('a valid token for a user that does not exist', () => {
    it('sees viewer null and no portfolios', async () => {
      const res = await server.post({ query: MY_PORTFOLIOS }, await as(ghostId));
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({ viewer: null, portfolios: { totalCount: 0, nodes: [], edges: [] } });
    });

    it("cannot reach alice's portfolio", async () => {
      const res = await server.post({ query: PORTFOLIO, variables: { id: String(alicePortfolios[0]) } }, await as(ghostId));
      expect(res.body.data).toEqual({ portfolio: null });
    });

    it('cannot create a portfolio: UNAUTHENTICATED, not an internal error', async () => {
      const res = await server.post({ query: 'mutation { createPortfolio(input: { name: "ghost" }) { portfolio { id } } }' }, await as(ghostId));
      expect(res.body.data ?? null).toBeNull();
      expect(res.body.errors).toHaveLength(1);
      expect(res.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
      expect(res.body.errors[0].message).not.toMatch(/insert|foreign key|constraint|portfolios/i);
    });
  });
});
