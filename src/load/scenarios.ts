/**
 * Load scenarios: who asks what, how many at once, for how long. Pure data and request builders: the
 * runner (./run.ts) drives them with autocannon against a running server, and tests check their mix.
 */

export interface Stage {
  /** Shown in the report: "baseline", "surge ×2", ... */
  name: string;
  connections: number;
  seconds: number;
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
}

export interface LoadRequest {
  body: string;
  headers: Record<string, string>;
  /** What kind of request this is, for the report's mix. */
  kind: string;
}

export interface Scenario {
  name: string;
  summary: string;
  /** Whether it writes to the database (it must be asked for by name). */
  writes: boolean;
  /** Whether it needs portfolios discovered for its users. */
  needsPortfolios?: boolean;
  stages(seconds: number, peak: number): Stage[];
  /** The next request, from a seeded random source. */
  next(targets: LoadTargets, random: () => number, pick: Pickers): LoadRequest;
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
/** A page far over its cap: BAD_USER_INPUT, refused before any SQL of that list. */
const OVERSIZED = `{ instruments(first: 100000) { totalCount } }`;
/** Far over MAX_COST: thousands of portfolios' positions' price histories. */
const TOO_COSTLY = `{ portfolios(first: 100) { nodes { positions(first: 200) { nodes { instrument { prices(first: 1000) { close } } } } } } }`;

const json = { 'content-type': 'application/json' };
const bearer = (token: string) => ({ ...json, authorization: `Bearer ${token}` });

function dashboard(t: LoadTargets, pick: Pickers): LoadRequest {
  return { kind: 'dashboard', headers: bearer(t.tokens[pick.user()]), body: JSON.stringify({ query: DASHBOARD, operationName: 'Dashboard' }) };
}

function quote(t: LoadTargets, pick: Pickers): LoadRequest {
  return { kind: 'quote', headers: json, body: JSON.stringify({ query: QUOTE, operationName: 'Quote', variables: { s: t.symbols[pick.symbol()] } }) };
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
    summary: 'WRITES: 20% trades (buying 1 unit, each a new idempotency key) into users\' first portfolios, 80% dashboards that must show them',
    writes: true,
    needsPortfolios: true,
    stages: steady,
    next: (t, random, pick) => {
      const user = pick.user();
      const portfolioId = t.portfolios?.[user];
      if (!portfolioId || random() >= 0.2) return { ...dashboard(t, { ...pick, user: () => user }) };
      const input = { portfolioId, symbol: t.symbols[pick.symbol()], side: 'BUY', quantity: '1', price: '100', idempotencyKey: `load-${process.pid}-${Date.now()}-${++tradeCounter}` };
      return { kind: 'trade', headers: bearer(t.tokens[user]), body: JSON.stringify({ query: TRADE, operationName: 'LoadTrade', variables: { input } }) };
    },
  },
  hostile: {
    name: 'hostile',
    summary: 'what limits must refuse cheaply: operations over MAX_COST, pages over their cap, one caller spending its budget, mixed with normal quotes',
    writes: false,
    stages: steady,
    next: (t, random, pick) => {
      const r = random();
      if (r < 0.25) return { kind: 'oversized_page', headers: json, body: JSON.stringify({ query: OVERSIZED }) };
      if (r < 0.5) return { kind: 'too_costly', headers: bearer(t.tokens[0]), body: JSON.stringify({ query: TOO_COSTLY }) };
      if (r < 0.75) return { kind: 'one_caller', headers: bearer(t.tokens[0]), body: JSON.stringify({ query: DASHBOARD, operationName: 'Dashboard' }) };
      return quote(t, pick);
    },
  },
};

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
