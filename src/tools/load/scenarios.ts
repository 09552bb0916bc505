import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * Load scenarios: who asks what, how many at once, for how long. Pure data and request builders: the
 * runner (./run.ts) drives them with autocannon against a running server, and tests check their mix.
 */

export interface Stage {
  /** Shown in the report: "baseline", "surge ×2", ... */
  name: string;
  connections: number;
  seconds: number;
  /**
   * Requests per second each connection sends at most (a person at a screen, or a client that waits
   * out Retry-After); unset, each sends its next request as soon as it has an answer.
   */
  rate?: number;
  /** Requests per second offered by all the stage's connections together (an open loop), if set. */
  offeredRate?: number;
}

export interface LoadTargets {
  /** Signed bearer tokens of the users the scenario acts as (Zipf-distributed: a few users ask most). */
  tokens: string[];
  /** Instrument symbols (Zipf-distributed). */
  symbols: string[];
  /** A portfolio of each token's user, for scenarios that trade; same order as tokens. */
  portfolios?: (string | null)[];
  /** Users left out because the server refused their probe, by error code. */
  refusals?: Record<string, number>;
  /** A partner's API key, for scenarios that call as a partner (never printed). */
  apiKey?: string;
}

export interface LoadRequest {
  body: string;
  headers: Record<string, string>;
  /** What kind of request this is, for the report's mix. */
  kind: string;
  /** A request target other than the GraphQL endpoint's (sent as a GET), e.g. a malformed one. */
  path?: string;
}

export interface Scenario {
  name: string;
  summary: string;
  /** Whether it writes to the database (it must be asked for by name). */
  writes: boolean;
  /** Whether it needs portfolios discovered for its users. */
  needsPortfolios?: boolean;
  stages(seconds: number, peak: number): Stage[];
  /** The next request, from a seeded random source; `stage` is the index of the stage running. */
  next(targets: LoadTargets, random: () => number, pick: Pickers, stage?: number): LoadRequest;
  /** Kinds of request that stand for normal traffic, whose latency the report compares across stages. */
  normalKinds?: string[];
  /**
   * Clients of other kinds beside the stage's connections, each group on a fixed number of
   * connections of its own in every stage (so that, say, 20 traders keep trading however fast the
   * others are answered or shed).
   */
  beside?: { name: string; connections: number; next(targets: LoadTargets, random: () => number, pick: Pickers): LoadRequest }[];
  /** Whether its stages step the offered rate up until one does not hold the target p99 (the run stops there). */
  steps?: boolean;
  /** Whether it calls as a partner: it needs an API key (LOAD_API_KEY). */
  needsApiKey?: boolean;
  /** Reads what it needs before the run, throwing with what is missing (rather than inside the load client). */
  prepare?(): void;
}

interface TrustedOperation {
  id: string;
  name: string;
  type: string;
  body: string;
}

let example: TrustedOperation[] | undefined;
/** The example partner's trusted documents (deploy/partner-example), read once: what the partners scenario sends by hash. */
function exampleOperations(): TrustedOperation[] {
  if (example) return example;
  const file = new URL('../../../deploy/partner-example/persisted-query-manifest.json', import.meta.url);
  try {
    example = (JSON.parse(readFileSync(file, 'utf8')) as { operations: TrustedOperation[] }).operations.filter((o) => o.type === 'query');
  } catch (e) {
    throw new Error(
      `the partners scenario sends the trusted documents of ${file.pathname}, which cannot be read: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  return example;
}

/** A trusted document of the example manifest, by hash alone, with the partner's key: what a partner's client sends. */
function trusted(t: LoadTargets, random: () => number, pick: Pickers): LoadRequest {
  const operations = exampleOperations();
  const op = operations[Math.floor(random() * operations.length)];
  // PriceHistory takes a page size: varied, so that its answers are not all one cache entry
  const variables =
    op.name === 'PriceHistory' ? { symbol: t.symbols[pick.symbol()], first: 20 + Math.floor(random() * 100) } : { symbol: t.symbols[pick.symbol()] };
  return {
    kind: `partner:${op.name}`,
    headers: { ...json, 'x-api-key': t.apiKey ?? '' },
    body: JSON.stringify({ operationName: op.name, variables, extensions: { persistedQuery: { version: 1, sha256Hash: op.id } } }),
  };
}

/** Offered rates from 10 req/s up by half each step, to at most `max`: enough steps to place a capacity within 50%. */
export function rateSteps(max: number): number[] {
  const rates: number[] = [];
  for (let r = 10; r <= max; r = Math.round(r * 1.5)) rates.push(r);
  return rates;
}

export interface Pickers {
  user(): number;
  symbol(): number;
}

export const DASHBOARD = `query Dashboard { viewer { portfolios(first: 20) { nodes { id name valuation { marketValue unrealizedPnl asOf }
  positions(first: 50) { nodes { quantity averageCost marketValue instrument { symbol latestPrice { date close } latestForecast { expectedReturn lower upper } } } } } } } }`;
export const QUOTE = `query Quote($s: String!) { instrument(symbol: $s) { symbol name latestPrice { date close }
  latestForecast(horizonDays: 21) { expectedReturn lower upper } prices(first: 20) { date close } } }`;
const TRADE = `mutation LoadTrade($input: RecordTradeInput!) { recordTrade(input: $input) { trade { id } position { quantity } } }`;
/** An anonymous ad-hoc query that reads a lot and is rarely asked twice (its sizes vary): the first to be shed. */
const HEAVY = `query Heavy($n: Int!, $p: Int!, $q: String) { instruments(first: $n, search: $q) { nodes { symbol name prices(first: $p) { date close } latestForecast { expectedReturn lower upper } } } }`;
/** A page far over its cap: BAD_USER_INPUT, refused before any SQL of that list. */
const OVERSIZED = `{ instruments(first: 100000) { totalCount } }`;
/** Far over MAX_COST: thousands of portfolios' positions' price histories. */
const TOO_COSTLY = `{ portfolios(first: 100) { nodes { positions(first: 200) { nodes { instrument { prices(first: 1000) { close } } } } } } }`;

/** Each fragment spreads the next twice: 2^40 selections if expanded, about 1.7 kB of text. */
const FRAGMENT_BOMB = `query Bomb { ...F0 } ${Array.from({ length: 40 }, (_, i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }`).join(' ')} fragment F40 on Query { __typename }`;
/** Variables nested 5,000 deep (a stack overflow in a recursive walker), written as text. */
const DEEP_VARIABLES = `{"query":"query Deep($v: String) { __typename }","variables":{"v":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}}`;
/** A cursor that decodes to JSON holding a NUL character. */
const NUL_CURSOR = `{ instruments(first: 1, after: "${Buffer.from(JSON.stringify(['instruments', 'A\u0000'])).toString('base64url')}") { totalCount } }`;
/** Request targets Node's HTTP parser accepts and `new URL()` rejects. */
const BAD_TARGETS = ['//:99999', '//[', '//a:b:c'];

const json = { 'content-type': 'application/json' };
const bearer = (token: string) => ({ ...json, authorization: `Bearer ${token}` });

function dashboard(t: LoadTargets, pick: Pickers): LoadRequest {
  return { kind: 'dashboard', headers: bearer(t.tokens[pick.user()]), body: JSON.stringify({ query: DASHBOARD, operationName: 'Dashboard' }) };
}

function quote(t: LoadTargets, pick: Pickers): LoadRequest {
  return { kind: 'quote', headers: json, body: JSON.stringify({ query: QUOTE, operationName: 'Quote', variables: { s: t.symbols[pick.symbol()] } }) };
}

function heavy(random: () => number): LoadRequest {
  const variables = { n: 20 + Math.floor(random() * 31), p: 30 + Math.floor(random() * 171), q: 'abcdefghijklmnopqrstuvwxyz'[Math.floor(random() * 26)] };
  return { kind: 'heavy', headers: json, body: JSON.stringify({ query: HEAVY, operationName: 'Heavy', variables }) };
}

/** A ramp to `peak` connections and back: what the incident looked like from the server's side. */
function ramp(seconds: number, peak: number): Stage[] {
  const calm = Math.max(1, Math.round(peak / 20));
  return [
    { name: 'calm', connections: calm, seconds },
    { name: 'surge 1/4', connections: Math.max(1, Math.round(peak / 4)), seconds },
    { name: 'surge 1/2', connections: Math.max(1, Math.round(peak / 2)), seconds },
    { name: 'surge peak', connections: peak, seconds },
    { name: 'recovery', connections: calm, seconds },
  ];
}

const steady = (seconds: number, peak: number): Stage[] => [{ name: 'steady', connections: peak, seconds }];

let tradeCounter = 0;

/** A buy of one unit into `user`'s portfolio, each with a new idempotency key. */
function trade(t: LoadTargets, user: number, portfolioId: string, pick: Pickers): LoadRequest {
  const input = {
    portfolioId,
    symbol: t.symbols[pick.symbol()],
    side: 'BUY',
    quantity: '1',
    price: '100',
    idempotencyKey: `load-${process.pid}-${Date.now()}-${++tradeCounter}`,
  };
  return { kind: 'trade', headers: bearer(t.tokens[user]), body: JSON.stringify({ query: TRADE, operationName: 'LoadTrade', variables: { input } }) };
}

export const SCENARIOS: Record<string, Scenario> = {
  surge: {
    name: 'surge',
    summary: 'the incident replayed: 70% dashboards of Zipf-distributed users, 30% quotes, ramped to the peak and back',
    writes: false,
    stages: ramp,
    next: (t, random, pick) => (random() < 0.7 ? dashboard(t, pick) : quote(t, pick)),
  },
  dashboards: {
    name: 'dashboards',
    summary: 'signed-in users opening their dashboards (private answers), steady at the peak',
    writes: false,
    stages: steady,
    next: (t, _random, pick) => dashboard(t, pick),
  },
  quotes: {
    name: 'quotes',
    summary: 'anonymous instrument quotes (public answers shared by everyone), steady at the peak',
    writes: false,
    stages: steady,
    next: (t, _random, pick) => quote(t, pick),
  },
  trades: {
    name: 'trades',
    summary: "WRITES: 20% trades (buying 1 unit, each a new idempotency key) into users' first portfolios, 80% dashboards that must show them",
    writes: true,
    needsPortfolios: true,
    stages: steady,
    next: (t, random, pick) => {
      const user = pick.user();
      const portfolioId = t.portfolios?.[user];
      if (!portfolioId || random() >= 0.2) return { ...dashboard(t, { ...pick, user: () => user }) };
      return trade(t, user, portfolioId, pick);
    },
  },
  capacity: {
    name: 'capacity',
    summary:
      'the surge mix (70% dashboards, 30% quotes) offered at a rate stepped up by half each --seconds, from 10 req/s to 20 × --connections, ' +
      'until a stage breaks the target p99 (--target-p99, 1,000 ms), answers more than 1% with 429/5xx or serves under 80% of the rate; ' +
      'prints the highest rate that held',
    writes: false,
    steps: true,
    stages: (seconds, peak) => rateSteps(20 * peak).map((rate) => ({ name: `${rate} req/s`, connections: peak, seconds, offeredRate: rate })),
    next: (t, random, pick) => (random() < 0.7 ? dashboard(t, pick) : quote(t, pick)),
  },
  replicas: {
    name: 'replicas',
    summary:
      "WRITES: for a server with READ_REPLICA_URLS: 10% trades into users' first portfolios, 75% dashboards of the same Zipf-distributed " +
      "users (so a trader's dashboards soon after a trade must read past its commit) and 15% quotes, steady at the peak; the report says " +
      'where the reads went (a replica, or the primary and why)',
    writes: true,
    needsPortfolios: true,
    stages: steady,
    next: (t, random, pick) => {
      const r = random();
      if (r < 0.15) return quote(t, pick);
      const user = pick.user();
      const portfolioId = t.portfolios?.[user];
      if (portfolioId && r < 0.25) return trade(t, user, portfolioId, pick);
      return dashboard(t, { ...pick, user: () => user });
    },
  },
  partners: {
    name: 'partners',
    summary:
      "a partner's client: the example partner's trusted documents (deploy/partner-example: PriceHistory, Quote) by hash alone with its API key " +
      '(LOAD_API_KEY; publish the manifest for that partner first with npm run pq:publish), steady at the peak',
    writes: false,
    needsApiKey: true,
    prepare: () => void exampleOperations(),
    stages: steady,
    next: (t, random, pick) => trusted(t, random, pick),
  },
  overload: {
    name: 'overload',
    summary:
      'WRITES: a surge the database cannot take, steady at the peak: anonymous heavy ad-hoc queries and signed-in dashboards on the peak connections, ' +
      "a few quotes (cached) and /healthz probes among them, and beside them 20 connections of traders buying into users' first portfolios. " +
      'Shedding should fall on the anonymous heavy queries, and trades keep going through',
    writes: true,
    needsPortfolios: true,
    // each of the peak's clients sends a request a second at most: what a client that waits out
    // Retry-After sends while it is shed (a closed loop would measure how fast 503s can be written)
    stages: (seconds, peak) => [{ name: 'steady', connections: peak, seconds, rate: 1 }],
    next: (t, random, pick) => {
      const r = random();
      if (r < 0.02) return { kind: 'healthz', headers: {}, body: '', path: '/healthz' };
      if (r < 0.1) return quote(t, pick);
      return r < 0.55 ? heavy(random) : dashboard(t, pick);
    },
    beside: [
      {
        name: 'traders',
        connections: 20,
        next: (t, _random, pick) => {
          // the first user with a portfolio from a Zipf draw: a few traders trade most
          for (let i = 0; i < t.tokens.length; i++) {
            const user = (pick.user() + i) % t.tokens.length;
            const portfolioId = t.portfolios?.[user];
            if (portfolioId) return trade(t, user, portfolioId, pick);
          }
          throw new Error('the overload scenario needs users with portfolios to trade into');
        },
      },
    ],
  },
  hostile: {
    name: 'hostile',
    summary:
      'normal quotes and dashboards alone, then the same normal traffic beside what the server must refuse cheaply: fragment bombs, ' +
      'variables nested 5,000 deep, NUL cursors, malformed request targets, bad tokens, invented operation names, APQ registration spam, ' +
      'pages over their cap, operations over MAX_COST, one caller spending its budget',
    writes: false,
    normalKinds: ['quote', 'dashboard'],
    // the same normal load in both stages: peak/2 connections of it alone, then peak connections half of which attack
    stages: (seconds, peak) => [
      { name: 'normal alone', connections: Math.max(1, Math.round(peak / 2)), seconds },
      { name: 'under attack', connections: peak, seconds },
    ],
    next: (t, random, pick, stage = 1) => {
      // normal traffic is signed-in users other than the one whose budget the attack spends (when there
      // are others), so that attacks from the load client's address do not spend theirs
      const user = () => (t.tokens.length > 1 ? 1 + (pick.user() % (t.tokens.length - 1)) : 0);
      const normal = () => {
        if (random() < 0.5) return dashboard(t, { ...pick, user });
        const q = quote(t, pick);
        return { ...q, headers: bearer(t.tokens[user()]) };
      };
      if (stage === 0 || random() < 0.5) return normal();
      const attack = HOSTILE[Math.floor(random() * HOSTILE.length)];
      return attack(t, random);
    },
  },
};

const word = (random: () => number, n: number) => Array.from({ length: n }, () => 'abcdefghijklmnopqrstuvwxyz'[Math.floor(random() * 26)]).join('');

/** What the hostile scenario sends beside normal traffic; the first user's token is the one spending its budget. */
const HOSTILE: ((t: LoadTargets, random: () => number) => LoadRequest)[] = [
  () => ({ kind: 'fragment_bomb', headers: json, body: JSON.stringify({ query: FRAGMENT_BOMB }) }),
  () => ({ kind: 'deep_variables', headers: json, body: DEEP_VARIABLES }),
  () => ({ kind: 'nul_cursor', headers: json, body: JSON.stringify({ query: NUL_CURSOR }) }),
  (_t, random) => ({ kind: 'bad_target', headers: {}, body: '', path: BAD_TARGETS[Math.floor(random() * BAD_TARGETS.length)] }),
  (_t, random) => ({
    kind: 'bad_token',
    headers: { ...json, authorization: `Bearer ${word(random, 40)}` },
    body: JSON.stringify({ query: '{ viewer { id } }' }),
  }),
  (_t, random) => ({
    kind: 'invented_name',
    headers: { ...json, 'apollographql-client-name': word(random, 30) },
    body: JSON.stringify({ query: `query N${word(random, 60)} { __typename }` }),
  }),
  (_t, random) => {
    const query = `{ instrument(symbol: "${word(random, 12).toUpperCase()}") { symbol } }`;
    return {
      kind: 'apq_spam',
      headers: json,
      body: JSON.stringify({ query, extensions: { persistedQuery: { version: 1, sha256Hash: createHash('sha256').update(query).digest('hex') } } }),
    };
  },
  () => ({ kind: 'oversized_page', headers: json, body: JSON.stringify({ query: OVERSIZED }) }),
  (t) => ({ kind: 'too_costly', headers: bearer(t.tokens[0]), body: JSON.stringify({ query: TOO_COSTLY }) }),
  (t) => ({ kind: 'one_caller', headers: bearer(t.tokens[0]), body: JSON.stringify({ query: DASHBOARD, operationName: 'Dashboard' }) }),
];

/** Ranks 0..n-1 drawn with probability ∝ 1/(rank+1)^s from `random`: a few take most requests. */
export function zipf(n: number, random: () => number, s = 1.1): () => number {
  const cdf: number[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) total += 1 / (i + 1) ** s;
  let acc = 0;
  for (let i = 0; i < n; i++) cdf.push((acc += 1 / (i + 1) ** s / total));
  return () => {
    const u = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}
