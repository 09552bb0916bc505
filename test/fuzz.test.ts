import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUserToken } from '../src/admission/tokens.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { DEFAULT_MODEL, seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { seededRandom } from '../src/tools/random.js';

// A deterministic fuzz of the real server in production mode: a few thousand requests made from a
// seeded generator (mutated valid documents, hostile structures, wrong variables, raw bodies that are
// not GraphQL requests at all), sent a few at a time. Every answer must be well-formed JSON with a
// contract status and contract codes, and must leak nothing internal; the server serves normally
// afterwards. Replay a failure with FUZZ_SEED=<seed> (and FUZZ_RUNS to change the count).

const SEED = Number(process.env.FUZZ_SEED ?? 20_250_601);
const RUNS = Number(process.env.FUZZ_RUNS ?? 3000);
const CONCURRENCY = 8;

/** The codes of CONTRACT.md's table, and our documented additions (see the README's error table). */
const CONTRACT_CODES = [
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'BAD_USER_INPUT',
  'QUERY_TOO_DEEP',
  'QUERY_TOO_COSTLY',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_REQUIRED',
  'RATE_LIMITED',
  'OVERLOADED',
  'INTERNAL_SERVER_ERROR',
];
const ALLOWED_CODES = new Set([...CONTRACT_CODES, 'DEADLINE_EXCEEDED', 'PERSISTED_QUERY_HASH_MISMATCH']);
const ALLOWED_STATUS = new Set([200, 400, 401, 404, 405, 413, 415, 429, 504]);

/** What must never reach a client in production: stack frames, source paths, SQL, driver errors. */
const MESSAGE_LEAKS = [/\n\s+at \S/, /\bat \S+ \(/];
const TEXT_LEAKS = [
  /"stacktrace"/i,
  /node_modules|file:\/\/|\/work\/|\/src\//,
  /\.(ts|js|mjs|cjs):\d+(:\d+)?\b/,
  /\b(select|insert\s+into|update|delete\s+from)\b[^"]{0,200}\b(from|values|set|where)\b/i,
  /syntax error at or near|relation "|violates|duplicate key|numeric field overflow|out of range for type|invalid input syntax|PostgresError|pglite|drizzle|postgres\.js/i,
];

const rng = seededRandom;

interface FuzzRequest {
  kind: string;
  method: string;
  path: string;
  search: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}

interface Fixtures {
  symbol: string;
  otherSymbol: string;
  portfolioId: string;
  foreignPortfolioId: string;
  tokens: { valid: string; otherUser: string; wrongSecret: string; unknownUser: string };
}

const SCHEMA_NAMES = [
  'viewer',
  'portfolio',
  'portfolios',
  'instrument',
  'instruments',
  'symbol',
  'name',
  'assetClass',
  'currency',
  'prices',
  'latestPrice',
  'latestForecast',
  'forecasts',
  'model',
  'version',
  'expectedReturn',
  'nodes',
  'edges',
  'node',
  'cursor',
  'pageInfo',
  'hasNextPage',
  'endCursor',
  'totalCount',
  'positions',
  'trades',
  'valuation',
  'marketValue',
  'quantity',
  'averageCost',
  'close',
  'date',
  'id',
  'email',
  '__typename',
  '__schema',
  '__type',
  'createPortfolio',
  'recordTrade',
  'input',
  'first',
  'after',
  'search',
  'Query',
  'Mutation',
  'Instrument',
];
const ODD_NAMES = [
  'on',
  'fragment',
  'query',
  'mutation',
  'subscription',
  'true',
  'false',
  'null',
  '__proto__',
  'constructor',
  'ñame',
  '名前',
  '💥',
  'a-b',
  '1abc',
  '$x',
  '',
  '\u0000',
  '\uFEFF',
  'x'.repeat(1000),
];
const PUNCTUATION = [
  '{',
  '}',
  '(',
  ')',
  '[',
  ']',
  ':',
  '$',
  '!',
  '...',
  '@',
  '"',
  '"""',
  '#',
  ',',
  '=',
  '|',
  '&',
  '\\',
  '\n',
  '\t',
  '\u0000',
  '\uFFFF',
  '\ud800',
  '💥',
  '\u202e',
  '1e999',
  '-0',
  '0x10',
  '.5',
];
const UNICODE = [
  'Ω≈ç√∫˜µ≤',
  'مرحبا بالعالم',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
  '👩‍👩‍👧‍👦🇺🇳',
  'ｆｕｌｌｗｉｄｔｈ',
  'Z̴̡̪̀a̵l̶g̷o̸',
  '\u202egnp.exe',
  '\uFEFFbom',
  '\ud800',
  '\udfff\ud800',
  '\u0085\u2028\u2029',
  'e\u0301',
];
const DIRECTIVES = [
  '@skip(if: true)',
  '@skip(if: false)',
  '@include(if: true)',
  '@include(if: $v)',
  '@skip(if: $v)',
  '@skip(if: "yes")',
  '@skip',
  '@include(if: null)',
  '@include(if: $missing)',
  '@skip(if: true, if: false)',
  '@deprecated',
  '@deprecated(reason: "x")',
  '@cost(weight: 1)',
  '@listSize(assumedSize: 1)',
  '@cacheControl(maxAge: 0)',
  '@cacheControl(scope: PUBLIC)',
  '@specifiedBy(url: "x")',
  '@defer',
  '@stream(initialCount: 1)',
  '@oneOf',
  '@nope(a: 1)',
  '@skip(if: 1)',
  '@include(if: [true])',
];
const TYPES = ['Query', 'Mutation', 'Instrument', 'Portfolio', 'User', 'Price', 'Position', 'Forecast', 'String', 'Nope', 'InstrumentConnection'];
const VARIABLE_TYPES = [
  'Int',
  'Int!',
  'String',
  'String!',
  'Boolean',
  'Boolean!',
  'ID',
  'Float',
  '[Int]',
  '[[String!]!]',
  'Decimal',
  'Date',
  'DateTime',
  'TradeSide',
  'RecordTradeInput',
  'Instrument',
  'Nope',
  'Int = "x"',
  'Boolean = true',
];

function generator(random: () => number, f: Fixtures) {
  const int = (n: number) => Math.floor(random() * n);
  const chance = (p: number) => random() < p;
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString(chance(0.5) ? 'base64url' : 'base64');

  const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789';
  const randomName = () => {
    if (chance(0.4)) return pick(SCHEMA_NAMES);
    if (chance(0.1)) return pick(ODD_NAMES);
    let s = pick([...'abcdefghijklmnopqrstuvwxyz_']);
    for (let n = int(24); n > 0; n--) s += NAME_CHARS[int(NAME_CHARS.length)];
    return s;
  };

  const randomString = (): string =>
    pick<() => string>([
      () => '',
      () => ' ',
      () => 'x'.repeat(1 + int(20_000)),
      () => pick(UNICODE),
      () => pick(UNICODE).repeat(1 + int(500)),
      () => '\u0000',
      () => `a\u0000b`,
      () => '\t\n\r\f\b',
      () => '"\\\'`',
      () => '%_%',
      () => f.symbol,
      () => f.symbol.toLowerCase(),
      () => ` ${f.symbol} `,
      () =>
        pick([
          '-1',
          '+5',
          '.5',
          '5.',
          '1e3',
          'NaN',
          'Infinity',
          '0',
          '-0',
          '0.000000001',
          '99999999999999999999.12345678',
          '999999999999999999999',
          '1,5',
          '١٢٣',
        ]),
      () => pick(['2024-01-01', '2024-02-30', '0000-00-00', '9999-12-31', '2024-01-01T00:00:00Z', '2024-13-01T25:61:00Z', 'yesterday', '1e10']),
      () => pick(['BUY', 'SELL', 'buy', 'HOLD', 'BUY ']),
      () => b64(pick<unknown>([['instruments', 'A'], ['portfolios', 1], ['trades', { at: 'x', id: 1 }], { id: -1 }, 'garbage', [null], 'x'.repeat(500)])),
      () => pick(['garbage-cursor', '====', 'YQ', '\u0000']),
      () => String(pick([f.portfolioId, f.foreignPortfolioId, '0', '-1', '2147483648', '99999999999999999999', '1.5', '0x10', ' 1', '1e3'])),
    ])();

  const randomNumber = (): number =>
    pick([
      0,
      -0,
      1,
      -1,
      2,
      5,
      100,
      101,
      1000,
      1001,
      1.5,
      -2.5,
      2 ** 31 - 1,
      2 ** 31,
      -(2 ** 31) - 1,
      2 ** 53 + 1,
      1e21,
      1e308,
      -1e308,
      5e-324,
      Number.MAX_SAFE_INTEGER,
    ]);

  const deepJson = (n: number): unknown => {
    let v: unknown = pick<unknown>([1, 'x', null, []]);
    for (let i = 0; i < n; i++) v = chance(0.5) ? [v] : { a: v };
    return v;
  };

  const randomJson = (depth = 0): unknown => {
    const k = int(depth > 3 ? 4 : 7);
    if (k === 0) return pick([null, true, false]);
    if (k === 1) return randomNumber();
    if (k <= 3) return randomString();
    if (k === 4) return Array.from({ length: int(5) }, () => randomJson(depth + 1));
    if (k === 5)
      return Object.fromEntries(
        Array.from({ length: int(5) }, () => [
          chance(0.5) ? pick(['first', 'after', 'id', 'symbol', 'input', 'name', 'quantity', 'v']) : randomName(),
          randomJson(depth + 1),
        ]),
      );
    return deepJson(1 + int(1000));
  };
  const sometimes = <T>(good: T) => (chance(0.5) ? good : randomJson());

  // valid documents, each with variables that are sometimes right and often not
  const documents: { query: string; variables: () => unknown; operationName?: string }[] = [
    {
      query:
        'query Instruments($first: Int, $after: String, $search: String) { instruments(first: $first, after: $after, search: $search) { totalCount edges { cursor node { id symbol name latestPrice { date close } } } pageInfo { hasNextPage endCursor } } }',
      variables: () => ({ first: sometimes(1 + int(5)), after: chance(0.5) ? randomString() : undefined, search: chance(0.5) ? sometimes('T') : undefined }),
    },
    {
      query:
        'query Instrument($symbol: String!, $from: Date, $to: Date, $h: Int) { instrument(symbol: $symbol) { symbol assetClass currency prices(from: $from, to: $to, first: 5) { date close } latestForecast(horizonDays: $h) { expectedReturn lower upper model { name version } } forecasts(first: 3) { horizonDays } } }',
      variables: () => ({
        symbol: sometimes(f.symbol),
        from: chance(0.5) ? sometimes('2024-01-01') : undefined,
        to: chance(0.3) ? randomJson() : undefined,
        h: chance(0.4) ? randomJson() : undefined,
      }),
    },
    {
      query:
        'query Portfolio($id: ID!, $first: Int) { portfolio(id: $id) { id name baseCurrency valuation { marketValue costBasis unrealizedPnl asOf } positions(first: $first) { totalCount nodes { id quantity averageCost marketValue unrealizedPnl instrument { symbol } } } trades(first: 5) { edges { cursor node { id side quantity price executedAt } } pageInfo { hasNextPage endCursor } } } }',
      variables: () => ({ id: sometimes(pick([f.portfolioId, f.foreignPortfolioId])), first: chance(0.5) ? sometimes(3) : undefined }),
    },
    {
      query:
        'query Viewer($first: Int, $after: String) { viewer { id email name portfolios(first: $first, after: $after) { totalCount nodes { id name } pageInfo { endCursor } } } }',
      variables: () => ({ first: sometimes(2), after: chance(0.3) ? randomString() : undefined }),
    },
    {
      query: 'mutation Create($input: CreatePortfolioInput!) { createPortfolio(input: $input) { portfolio { id name baseCurrency } } }',
      variables: () => ({
        input: chance(0.8) ? { name: sometimes(`Fuzz ${int(1e6)}`), baseCurrency: chance(0.5) ? sometimes('EUR') : undefined } : randomJson(),
      }),
    },
    {
      query:
        'mutation Trade($input: RecordTradeInput!) { recordTrade(input: $input) { trade { id side quantity price executedAt instrument { symbol } } position { quantity averageCost } } }',
      variables: () => ({
        input: chance(0.85)
          ? {
              portfolioId: sometimes(pick([f.portfolioId, f.foreignPortfolioId])),
              symbol: sometimes(pick([f.symbol, f.otherSymbol])),
              side: sometimes(pick(['BUY', 'SELL'])),
              quantity: sometimes(pick(['1', '0.5', '0.00000001', '99999999999999999999', '99999999999999999999.99999999', '-1', '0'])),
              price: sometimes(pick(['10', '101.25', '0.00000001', '99999999999999999999.99999999', '0'])),
              ...(chance(0.3)
                ? {
                    executedAt: sometimes(
                      pick([
                        '2024-01-15T10:00:00Z',
                        '0001-01-01T00:00:00Z',
                        '9999-12-31T23:59:59.999Z',
                        '+275760-09-13T00:00:00Z',
                        '2024-01-15T10:00:00+14:00',
                        '2024-01-15',
                      ]),
                    ),
                  }
                : {}),
              ...(chance(0.3) ? { idempotencyKey: sometimes(pick([`k${int(20)}`, 'k'.repeat(200), 'k'.repeat(201), '', ' '])) } : {}),
              ...(chance(0.1) ? { [randomName()]: randomJson() } : {}),
            }
          : randomJson(),
      }),
    },
    {
      query:
        'query Fragments { instruments(first: 3) { nodes { ...InstrumentFields } } } fragment InstrumentFields on Instrument { symbol latestPrice { ...PriceFields } } fragment PriceFields on Price { date close }',
      variables: () => (chance(0.7) ? undefined : randomJson()),
    },
    {
      query:
        'query A { viewer { id } } query B { instruments(first: 1) { totalCount } } mutation C { createPortfolio(input: { name: "fuzz" }) { portfolio { id } } }',
      variables: () => undefined,
      operationName: 'B',
    },
  ];

  const TOKEN = /"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"|\.\.\.|[_A-Za-z][_0-9A-Za-z]*|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\S/g;
  const mutate = (doc: string) => {
    const tokens = doc.match(TOKEN) ?? [];
    for (let n = 1 + int(4); n > 0 && tokens.length; n--) {
      const at = int(tokens.length);
      switch (int(7)) {
        case 0:
          tokens.splice(at, 1 + int(3));
          break; // drop
        case 1:
          tokens.splice(at, 0, ...tokens.slice(at, at + 1 + int(5)));
          break; // duplicate
        case 2: {
          const other = int(tokens.length);
          [tokens[at], tokens[other]] = [tokens[other], tokens[at]];
          break;
        } // swap
        case 3:
          tokens[at] = randomName();
          break; // a random field (or other) name
        case 4:
          tokens.splice(at, 0, pick(['{', '}', '(', ')', '[', ']']).repeat(1 + int(3)));
          break; // unbalance
        case 5:
          tokens.splice(at, 0, pick(PUNCTUATION));
          break;
        default:
          tokens.length = at; // truncate
      }
    }
    return tokens.join(chance(0.9) ? ' ' : '');
  };

  const literal = () =>
    pick([
      '1e400',
      '99999999999999999999',
      '-1',
      '0',
      '1.5',
      '"10"',
      'null',
      '[1]',
      '{a: 1}',
      '$undefined',
      '0x10',
      '１',
      'true',
      'BUY',
      '""',
      `"${'9'.repeat(1 + int(500))}"`,
      '"\\u0000"',
      '"\\uD800"',
      '"""block\nstring"""',
      `"${pick(UNICODE).replace(/["\\]/g, '')}"`,
      '-0',
      '2147483648',
    ]);

  const structure = (): { query: string; variables?: unknown; operationName?: unknown } => {
    switch (int(11)) {
      case 0: {
        // deep nesting, of made-up fields or of real ones
        const n = 5 + int(400);
        const name = chance(0.5) ? 'a' : randomName();
        const close = chance(0.8) ? n : int(n);
        return { query: `query Deep { ${`${name} { `.repeat(n)} __typename ${'} '.repeat(close)}}` };
      }
      case 1: {
        // deep nesting of values in arguments
        const n = 5 + int(2000);
        const value = chance(0.5) ? `${'['.repeat(n)}1${']'.repeat(n)}` : `${'{a: '.repeat(n)}1${'}'.repeat(n)}`;
        return { query: `{ instruments(search: ${value}) { totalCount } }` };
      }
      case 2: {
        // many aliases
        const n = 1 + int(800);
        const field = pick(['__typename', `instrument(symbol: "${f.symbol}") { symbol }`, 'instruments(first: 1) { totalCount }', 'viewer { id }']);
        return { query: `query Aliases { ${Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join(' ')} }` };
      }
      case 3: {
        // random fragments, cycles included
        const k = 1 + int(6);
        const selection = (depth: number): string =>
          Array.from({ length: 1 + int(4) }, () => {
            const r = int(6);
            if (r <= 1) return `...F${int(k + 1)}`; // F<k> does not exist
            if (r === 2) return `... on ${pick(TYPES)} { ${depth < 2 ? selection(depth + 1) : '__typename'} }`;
            if (r === 3 && depth < 2)
              return `${pick(['instruments(first: 2)', 'viewer', 'instrument(symbol: "X")', randomName()])} { ${selection(depth + 1)} }`;
            return pick(['__typename', 'symbol', 'id', 'name', 'totalCount', randomName()]);
          }).join(' ');
        const fragments = Array.from({ length: k }, (_, i) => `fragment F${i} on ${pick(TYPES)} ${chance(0.2) ? pick(DIRECTIVES) : ''} { ${selection(0)} }`);
        if (chance(0.3)) fragments.push(`fragment F0 on Query { ...F0 }`); // a duplicate, spreading itself
        return { query: `query Frag { ...F0 instruments(first: 2) { nodes { ...F${int(k)} } } } ${fragments.join(' ')}` };
      }
      case 4: {
        // directives, many and wrong
        const dirs = () => Array.from({ length: int(chance(0.2) ? 80 : 4) }, () => pick(DIRECTIVES)).join(' ');
        return {
          query: `query D($v: ${pick(VARIABLE_TYPES)} ${chance(0.2) ? pick(DIRECTIVES) : ''}) ${chance(0.2) ? dirs() : ''} { instruments(first: 2) ${dirs()} { nodes { symbol ${dirs()} ...on Instrument ${dirs()} { name } } } }`,
          variables: chance(0.5) ? { v: randomJson() } : randomJson(),
        };
      }
      case 5: {
        // literal arguments of the wrong kind
        return {
          query: pick([
            `{ instruments(first: ${literal()}, after: ${literal()}) { totalCount } }`,
            `{ instrument(symbol: ${literal()}) { symbol prices(from: ${literal()}, first: ${literal()}) { date } } }`,
            `{ portfolio(id: ${literal()}) { id positions(first: ${literal()}) { totalCount } } }`,
            `mutation { recordTrade(input: { portfolioId: ${chance(0.5) ? `"${f.portfolioId}"` : literal()}, symbol: ${chance(0.5) ? `"${f.symbol}"` : literal()}, side: ${pick(['BUY', 'SELL', literal()])}, quantity: ${literal()}, price: ${literal()} }) { trade { id } } }`,
            `mutation { createPortfolio(input: { name: ${literal()}, baseCurrency: ${literal()} }) { portfolio { id } } }`,
          ]),
        };
      }
      case 6: {
        // a choice of operations and a (often wrong) operationName
        const query = 'query A { viewer { id } } query B { instruments(first: 1) { totalCount } } subscription S { viewer { id } } { __typename }';
        return {
          query: chance(0.5) ? query : 'query A { viewer { id } } query B { __typename }',
          operationName: pick<unknown>(['A', 'B', 'S', 'C', '', null, 42, {}, ['A'], 'A'.repeat(1000), undefined, 'a', ' A']),
        };
      }
      case 7: // introspection, which production refuses
        return {
          query: pick([
            '{ __schema { types { name fields { name } } } }',
            '{ __type(name: "Query") { fields { name args { name } } } }',
            'query { a: __schema { queryType { name } } }',
          ]),
        };
      case 8: {
        // long strings and odd characters in the document
        const s = pick([
          () => 'x'.repeat(1 + int(50_000)),
          () => pick(UNICODE).repeat(1 + int(300)),
          () => '\\u0000',
          () => '\\uD83D',
          () => `${'\\"'.repeat(100)}`,
          () => '\u0000',
        ])();
        return { query: `{ instruments(search: "${s}") { totalCount } }` };
      }
      case 9: // subscriptions and other operation kinds
        return {
          query: pick([
            'subscription { viewer { id } }',
            'mutation { __typename }',
            'mutation M { viewer { id } }',
            'query Q { instruments { totalCount } } query Q { viewer { id } }',
            'extend type Query { x: Int }',
            'type T { a: Int }',
            'schema { query: Query }',
          ]),
        };
      default: {
        // huge numbers
        const n = pick(['1' + '0'.repeat(int(400)), '-' + '9'.repeat(1 + int(50)), '1e308', '1e309', '0.' + '0'.repeat(300) + '1']);
        return { query: `{ instruments(first: ${n}) { totalCount } instrument(symbol: "${f.symbol}") { latestForecast(horizonDays: ${n}) { horizonDays } } }` };
      }
    }
  };

  /** A JSON GraphQL request: a valid or mutated document, a hostile structure, or the wrong shape. */
  const graphQLPayload = (): { kind: string; payload: Record<string, unknown> } => {
    const k = int(20);
    if (k < 4) {
      const doc = pick(documents);
      return { kind: 'valid', payload: { query: doc.query, variables: doc.variables(), operationName: doc.operationName } };
    }
    if (k < 10) {
      const doc = pick(documents);
      return {
        kind: 'mutated',
        payload: {
          query: mutate(doc.query),
          variables: chance(0.7) ? doc.variables() : randomJson(),
          operationName: chance(0.8) ? doc.operationName : randomJson(),
        },
      };
    }
    if (k < 17) return { kind: 'structure', payload: structure() };
    if (k === 17) {
      const doc = pick(documents);
      return {
        kind: 'variables',
        payload: {
          query: doc.query,
          variables: pick<unknown>([randomJson(), JSON.stringify(doc.variables()), [doc.variables()], deepJson(int(1000)), 'x'.repeat(1000), 1e308]),
        },
      };
    }
    if (k === 18) {
      // automatic persisted queries: unknown hashes, wrong hashes, versions, and the real thing
      const doc = pick(documents);
      const hash = pick([
        createHash('sha256').update(doc.query).digest('hex'),
        '0'.repeat(64),
        'abc',
        createHash('sha256')
          .update(String(int(1e9)))
          .digest('hex'),
      ]);
      const persistedQuery = pick<unknown>([
        { version: 1, sha256Hash: hash },
        { version: 2, sha256Hash: hash },
        { version: 'x' },
        { sha256Hash: 5 },
        null,
        'x',
      ]);
      return { kind: 'apq', payload: { ...(chance(0.5) ? { query: doc.query } : {}), variables: doc.variables(), extensions: { persistedQuery } } };
    }
    return {
      kind: 'shape',
      payload: pick<Record<string, unknown>>([
        { query: randomJson() },
        { query: [pick(documents).query] },
        { query: { kind: 'Document', definitions: [] } },
        { variables: {} },
        { query: pick(documents).query, extensions: randomJson() },
        { query: pick(documents).query, [randomName()]: randomJson() },
        { operationName: 'A', variables: { a: 1 } },
        { query: '' },
        { query: ' \n\t ' },
        { query: '# only a comment' },
      ]),
    };
  };

  /** A body that is not a GraphQL request object at all. */
  const rawBody = (): { kind: string; body: string | Uint8Array } => {
    const valid = JSON.stringify({ query: pick(documents).query, variables: pick(documents).variables() });
    const bodies: (() => string | Uint8Array)[] = [
      () => valid.slice(0, int(valid.length)), // truncated JSON
      () => valid + pick(['}', ']]', ',', 'x', '\u0000', '{}']), // trailing garbage
      () => `\uFEFF${valid}`,
      () => pick(['null', 'true', 'false', '0', '-1', '1e999', '1e-999', 'NaN', 'Infinity', '"query"', '""', '[]', '{}', '[[]]', '[null]', ' ', '']),
      () => JSON.stringify([{ query: '{ __typename }' }, { query: '{ __typename }' }]),
      () => JSON.stringify(Array.from({ length: int(50) }, () => randomJson())),
      () => `${'['.repeat(1 + int(30_000))}${chance(0.5) ? ']'.repeat(int(30_000)) : ''}`,
      () => `${'{"a":'.repeat(1 + int(10_000))}1${'}'.repeat(int(10_000))}`,
      () => `{query: "{ __typename }"}`,
      () => `{'query': '{ __typename }'}`,
      // variables nested deeper than JSON.stringify can follow
      () =>
        `{"query": ${JSON.stringify(pick(documents).query)}, "variables": {"${pick(['first', 'input', 'id', 'v'])}": ${'{"a":'.repeat(5000 + int(10_000))}1${'}'.repeat(chance(0.9) ? 15_000 : 0)}}}`,
      () => `{"query": ${JSON.stringify(pick(documents).query)}, "variables": {"input": ${'['.repeat(5000 + int(20_000))}${']'.repeat(25_000)}}}`,
      () => `{"query": "{ __typename }", "query": ${JSON.stringify(pick(documents).query)}}`,
      () => `{"query": "{ __typename }", "variables": ${pick(['NaN', 'undefined', '{,}', '01', '"\\ud800"', '{"a": 1e999}'])}}`,
      () => Array.from({ length: 1 + int(300) }, () => String.fromCharCode(32 + int(95))).join(''),
      () => new Uint8Array(Array.from({ length: 1 + int(300) }, () => int(256))), // not even UTF-8
      () => pick(UNICODE).repeat(1 + int(100)),
      () => `query=${encodeURIComponent('{ __typename }')}`,
    ];
    return { kind: 'raw', body: pick(bodies)() };
  };

  const authorization = (): Record<string, string> => {
    const r = int(10);
    if (r < 6) return { authorization: `Bearer ${f.tokens.valid}` };
    if (r < 8) return {};
    return {
      authorization: pick([
        'Bearer x',
        'Bearer ',
        'Bearer',
        'Basic dXNlcjpwYXNz',
        `Bearer ${'a'.repeat(5000)}`,
        'Bearer a.b.c',
        `Bearer ${f.tokens.wrongSecret}`,
        `Bearer ${f.tokens.unknownUser}`,
        `Bearer ${f.tokens.otherUser}`,
        `Bearer ${f.tokens.valid} extra`,
        `bearer ${f.tokens.valid}`,
        `Bearer ${f.tokens.valid.slice(0, -3)}`,
      ]),
    };
  };

  const CONTENT_TYPES = [
    'application/json; charset=utf-8',
    'application/graphql-response+json',
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/graphql',
    'APPLICATION/JSON',
    'application/jsonx',
    'application/json; charset=latin1',
    '',
  ];

  return (): FuzzRequest => {
    const headers: Record<string, string> = { accept: 'application/graphql-response+json, application/json', ...authorization() };
    if (chance(0.03)) headers['x-api-key'] = pick(['x', 'fg_nope', 'a'.repeat(300), '']);
    if (chance(0.03)) headers['apollographql-client-name'] = pick(['fuzz', 'x'.repeat(500), '', '../../etc']);
    if (chance(0.03)) headers['x-request-id'] = pick(['fuzz-1', 'x'.repeat(500), 'a b', '']);
    const path = chance(0.97) ? '/graphql' : pick(['/', '/graphql/', '/GRAPHQL', '/graphq', '/nope', '/graphql%00', '/%ZZ', '/graphql/x']);

    const m = int(100);
    if (m < 6) {
      // GET, with the request in the query string
      const { kind, payload } = graphQLPayload();
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(payload)) {
        if (value === undefined) continue;
        params.set(key, typeof value === 'string' && key === 'query' ? value : JSON.stringify(value));
      }
      if (chance(0.5)) headers['apollo-require-preflight'] = 'true';
      const search = `?${params.toString()}`;
      // Node refuses request lines past its header size limit before any of our code runs
      return { kind: `get-${kind}`, method: 'GET', path, search: search.length > 6000 ? '?query=%7B__typename%7D' : search, headers };
    }
    if (m < 10)
      return {
        kind: 'method',
        method: pick(['PUT', 'DELETE', 'PATCH', 'OPTIONS']),
        path,
        search: '',
        headers: { ...headers, 'content-type': 'application/json' },
        body: '{"query":"{ __typename }"}',
      };

    let kind: string;
    let body: string | Uint8Array;
    if (m < 85) {
      const generated = graphQLPayload();
      kind = generated.kind;
      body = JSON.stringify(generated.payload);
    } else if (m < 99) ({ kind, body } = rawBody());
    else {
      kind = 'oversize';
      body = JSON.stringify({ query: `{ __typename }${' '.repeat(100_000 + int(50_000))}` });
    }
    const contentType = chance(0.88) ? 'application/json' : pick(CONTENT_TYPES);
    if (contentType) headers['content-type'] = contentType;
    // without a content-type, fetch would add text/plain to a string body: send bytes instead
    else if (typeof body === 'string') body = new TextEncoder().encode(body);
    return { kind, method: 'POST', path, search: '', headers, body };
  };
}

describe('fuzz', () => {
  let database: TestDatabase;
  let server: TestServer;
  let userId: number;
  let fixtures: Fixtures;

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    const user = await s.user();
    const other = await s.user();
    userId = user.id;
    const symbol = (await s.instrument(['100', '101', '102'])).symbol;
    const otherSymbol = (await s.instrument(['5'])).symbol;
    const model = await s.model(DEFAULT_MODEL);
    const instrumentRows = await s.instrument(['7', '8']);
    await s.forecast(model.id, instrumentRows.id, 21, '2024-01-31');
    const portfolio = await s.portfolio(user, 'Fuzzed');
    await s.trade(user.viewer, { portfolioId: portfolio.id, symbol, side: 'BUY', quantity: '10', price: '100' });
    const foreign = await s.portfolio(other, 'Not yours');
    server = await startTestServer(database, { NODE_ENV: 'production', RATE_LIMIT_COST_PER_MINUTE: '1000000000' });
    expect(server.config.production).toBe(true);
    fixtures = {
      symbol,
      otherSymbol,
      portfolioId: String(portfolio.id),
      foreignPortfolioId: String(foreign.id),
      tokens: {
        valid: await server.token(user.id),
        otherUser: await server.token(other.id),
        wrongSecret: await signUserToken('another-secret-that-is-long-enough-0123', user.id),
        unknownUser: await server.token(2_000_000_000),
      },
    };
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  it(`answers ${RUNS} fuzzed requests (seed ${SEED}) with well-formed contract answers, and keeps serving`, { timeout: 600_000 }, async () => {
    const next = generator(rng(SEED), fixtures);
    const requests = Array.from({ length: RUNS }, next);
    const origin = new URL(server.url).origin;

    const problems: string[] = [];
    const statuses = new Map<number, number>();
    const codes = new Map<string, number>();
    const kinds = new Map<string, number>();
    let answeredWithData = 0;
    const count = <K>(map: Map<K, number>, key: K) => map.set(key, (map.get(key) ?? 0) + 1);

    async function check(i: number, r: FuzzRequest) {
      const shown = typeof r.body === 'string' ? r.body.slice(0, 300) : r.body ? `<${r.body.length} bytes>` : '';
      const label = `#${i} (seed ${SEED}, ${r.kind}) ${r.method} ${r.path}${r.search.slice(0, 200)} ${JSON.stringify(r.headers).slice(0, 200)} ${shown}`;
      const problem = (what: string): void => void problems.push(`${label}\n  -> ${what}`);
      let status: number;
      let contentType: string;
      let retryAfter: string | null;
      let text: string;
      try {
        const res = await fetch(`${origin}${r.path}${r.search}`, { method: r.method, headers: r.headers, body: r.body, signal: AbortSignal.timeout(60_000) });
        status = res.status;
        contentType = res.headers.get('content-type') ?? '';
        retryAfter = res.headers.get('retry-after');
        text = await res.text();
      } catch (e) {
        problem(`no answer: ${(e as Error).message}`);
        return;
      }
      count(statuses, status);
      count(kinds, r.kind);
      const answer = `${status} ${text.slice(0, 600)}`;
      if (!ALLOWED_STATUS.has(status)) problem(`status ${status} is not one the contract allows: ${answer}`);
      if (!/json/i.test(contentType)) problem(`content-type "${contentType}" is not JSON: ${answer}`);
      for (const leak of TEXT_LEAKS) if (leak.test(text)) problem(`the answer leaks internals (${leak}): ${answer}`);
      let body: any;
      try {
        body = JSON.parse(text);
      } catch {
        problem(`the body is not JSON: ${answer}`);
        return;
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) return problem(`the body is not a JSON object: ${answer}`);
      if (!('data' in body) && !('errors' in body)) problem(`the body has neither data nor errors: ${answer}`);
      if (status !== 200 && !Array.isArray(body.errors)) problem(`a ${status} without errors: ${answer}`);
      if (status === 429 && !/^\d+$/.test(retryAfter ?? '')) problem(`429 without Retry-After: ${answer}`);
      if (body.errors !== undefined) {
        if (!Array.isArray(body.errors) || body.errors.length === 0) return problem(`errors is not a non-empty array: ${answer}`);
        for (const e of body.errors) {
          const code = e?.extensions?.code;
          count(codes, String(code));
          if (typeof e?.message !== 'string') problem(`an error without a message: ${answer}`);
          if (!ALLOWED_CODES.has(code)) problem(`code ${code} is not in the contract: ${answer}`);
          if (code === 'INTERNAL_SERVER_ERROR') problem(`a malformed request caused an internal error: ${answer}`);
          if (e?.extensions && 'stacktrace' in e.extensions) problem(`a stack trace in production: ${answer}`);
          for (const leak of MESSAGE_LEAKS)
            if (typeof e?.message === 'string' && leak.test(e.message)) problem(`the message leaks a stack (${leak}): ${answer}`);
        }
      } else if (status === 200 && body.data) answeredWithData++;
    }

    let cursor = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (cursor < requests.length) {
          const i = cursor++;
          await check(i, requests[i]);
        }
      }),
    );

    const summary = `statuses ${JSON.stringify([...statuses])}, codes ${JSON.stringify([...codes])}, kinds ${JSON.stringify([...kinds])}, with data ${answeredWithData}`;
    if (process.env.FUZZ_VERBOSE) console.log(summary);
    expect(problems.slice(0, 15), `${problems.length} problems; ${summary}`).toEqual([]);
    // the fuzz reached both the error paths it is about and real execution
    expect(statuses.get(200) ?? 0, summary).toBeGreaterThan(RUNS / 20);
    expect(statuses.get(400) ?? 0, summary).toBeGreaterThan(RUNS / 10);
    expect(answeredWithData, summary).toBeGreaterThan(RUNS / 50);
    expect(codes.get('BAD_USER_INPUT') ?? 0, summary).toBeGreaterThan(RUNS / 4);
    for (const code of ['UNAUTHENTICATED', 'QUERY_TOO_DEEP']) expect(codes.get(code) ?? 0, `${code}: ${summary}`).toBeGreaterThan(0);

    // and the server is well afterwards
    const health = await fetch(`${origin}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect((await fetch(`${origin}/readyz`)).status).toBe(200);
    const valid = await server.post(
      {
        query: 'query After($s: String!) { instrument(symbol: $s) { symbol latestPrice { date close } prices(first: 3) { close } } viewer { id } }',
        variables: { s: fixtures.symbol },
      },
      { authorization: `Bearer ${fixtures.tokens.valid}` },
    );
    expect(valid.status, JSON.stringify(valid.body)).toBe(200);
    expect(valid.body.errors).toBeUndefined();
    expect(valid.body.data).toEqual({
      instrument: {
        symbol: fixtures.symbol,
        latestPrice: { date: '2024-01-31', close: '102' },
        prices: [{ close: '100' }, { close: '101' }, { close: '102' }],
      },
      viewer: { id: String(userId) },
    });
  });
});
