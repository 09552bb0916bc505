import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getOperationAST, parse, specifiedRules, validate, type GraphQLError, type ValidationRule } from 'graphql';
import { buildSchema } from '../src/graphql/schema.js';
import type { CostInfo, WorkStats } from '../src/graphql/context.js';
import { CostEstimator, type Slice } from '../src/limits/cost-estimate.js';
import { costReport, createCostRecorder } from '../src/limits/cost-recorder.js';
import { aliasLimitRule } from '../src/limits/aliasLimitRule.js';
import { depthLimitRule } from '../src/limits/depthLimitRule.js';
import { directiveLimitRule } from '../src/limits/directiveLimitRule.js';
import { noSubscriptionRule } from '../src/limits/noSubscriptionRule.js';
import { rootFieldLimitRule } from '../src/limits/rootFieldLimitRule.js';
import { selectionLimitRule } from '../src/limits/selectionLimitRule.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

// The static price of an operation (src/limits/cost-estimate.ts, from the schema's @cost and
// @listSize), the validation rules that bound a document's shape before anything runs, and the
// recorder that learns how far the estimates are from what requests really did.

const schema = buildSchema();
const estimator = new CostEstimator(schema);

/** The estimate of `document` (its only operation, or the one named), with `variables`. */
function estimate(document: string, variables: Record<string, unknown> = {}, operationName?: string) {
  const ast = parse(document);
  const operation = getOperationAST(ast, operationName);
  if (!operation) throw new Error(`no operation in ${document}`);
  return estimator.estimate(ast, operation, variables);
}

interface CostCase {
  name: string;
  document: string;
  variables?: Record<string, unknown>;
  cost: number;
}

// Each expected cost is worked out by hand from the schema: an object field costs 1, a scalar 0,
// unless @cost says otherwise; a list multiplies its item's cost (weight + selections) by its size.
const RECORD_TRADE_INPUT = '{ portfolioId: "1", symbol: "AAPL", side: BUY, quantity: "1", price: "2" }';
const cases: CostCase[] = [
  // scalars and objects
  { name: '__typename costs nothing', document: '{ __typename }', cost: 0 },
  { name: 'an object costs 1, its scalars 0', document: '{ instrument(symbol: "A") { id symbol name assetClass currency } }', cost: 1 },
  { name: 'a nested object costs 1 more', document: '{ instrument(symbol: "A") { latestPrice { date close } } }', cost: 2 },
  { name: 'an object selecting only __typename still costs 1', document: '{ instrument(symbol: "A") { __typename } }', cost: 1 },
  { name: 'a null-able object without selection of objects', document: '{ viewer { id email name } }', cost: 1 },

  // connections: `first` sizes edges and nodes
  { name: "a connection's first sizes nodes", document: '{ instruments(first: 5) { nodes { symbol } } }', cost: 1 + 5 },
  {
    name: "a connection's first sizes edges (edge and node each 1)",
    document: '{ instruments(first: 5) { edges { cursor node { symbol } } } }',
    cost: 1 + 5 * 2,
  },
  { name: 'edges and nodes both sized', document: '{ instruments(first: 3) { edges { node { id } } nodes { id } } }', cost: 1 + 3 * 2 + 3 },
  { name: 'default first (20) when omitted', document: '{ instruments { nodes { symbol } } }', cost: 1 + 20 },
  { name: 'default first of User.portfolios (20)', document: '{ viewer { portfolios { nodes { id } } } }', cost: 1 + 1 + 20 },
  { name: 'default first of Portfolio.positions (50)', document: '{ portfolio(id: "1") { positions { nodes { quantity } } } }', cost: 1 + 1 + 50 },
  { name: 'first: 0 makes the items free', document: '{ instruments(first: 0) { nodes { latestPrice { close } } } }', cost: 1 },
  { name: 'pageInfo is one object, not sized', document: '{ instruments(first: 50) { pageInfo { hasNextPage endCursor } } }', cost: 1 + 1 },
  { name: 'InstrumentConnection.totalCount weighs 2', document: '{ instruments(first: 5) { totalCount } }', cost: 1 + 2 },
  { name: 'PortfolioConnection.totalCount weighs 1', document: '{ portfolios(first: 5) { totalCount } }', cost: 1 + 1 },
  {
    name: 'a fragment on the connection type keeps the size',
    document: 'query { instruments(first: 5) { ...Page } } fragment Page on InstrumentConnection { nodes { id } }',
    cost: 1 + 5,
  },
  {
    name: "one fragment in two connections takes each one's size (priced once per size)",
    document:
      'query { a: instruments(first: 2) { ...Page } b: instruments(first: 5) { ...Page } c: instruments(first: 2) { ...Page } } fragment Page on InstrumentConnection { nodes { id } }',
    cost: 1 + 2 + (1 + 5) + (1 + 2),
  },

  // variables
  { name: 'first from a variable', document: 'query Q($n: Int) { instruments(first: $n) { nodes { id } } }', variables: { n: 7 }, cost: 1 + 7 },
  { name: "an omitted variable leaves the argument's default", document: 'query Q($n: Int) { instruments(first: $n) { nodes { id } } }', cost: 1 + 20 },
  { name: "a variable's default value", document: 'query Q($n: Int = 3) { instruments(first: $n) { nodes { id } } }', cost: 1 + 3 },
  {
    name: "a given variable beats the variable's default",
    document: 'query Q($n: Int = 3) { instruments(first: $n) { nodes { id } } }',
    variables: { n: 9 },
    cost: 1 + 9,
  },
  {
    name: 'a variable on a nested list',
    document: 'query Q($p: Int!) { instrument(symbol: "A") { prices(first: $p) { close } } }',
    variables: { p: 250 },
    cost: 1 + 250,
  },
  // the resolvers read an explicit null `first` as its default (pageSize(first ?? fallback)), so must the estimate
  { name: 'first: null costs as the default (prices: 100)', document: '{ instrument(symbol: "A") { prices(first: null) { close } } }', cost: 1 + 100 },
  {
    name: 'a null variable costs as the default (instruments: 20)',
    document: 'query Q($n: Int) { instruments(first: $n) { nodes { id } } }',
    variables: { n: null },
    cost: 1 + 20,
  },

  // lists inside lists multiply
  { name: 'forecasts inside instruments', document: '{ instruments(first: 3) { nodes { forecasts(first: 2) { horizonDays } } } }', cost: 1 + 3 * (1 + 2 * 2) },
  { name: 'prices(first: N) multiplies', document: '{ instrument(symbol: "A") { prices(first: 30) { close } } }', cost: 1 + 30 },
  { name: 'prices default first (100)', document: '{ instrument(symbol: "A") { prices { date close } } }', cost: 1 + 100 },
  { name: 'prices inside instruments', document: '{ instruments(first: 4) { nodes { prices(first: 10) { date } } } }', cost: 1 + 4 * (1 + 10) },
  {
    name: 'a dashboard: portfolios × positions × instrument',
    document:
      'query D($n: Int!) { viewer { portfolios(first: $n) { totalCount nodes { valuation { marketValue } positions(first: 10) { nodes { marketValue instrument { latestPrice { close } } } } } } } }',
    variables: { n: 2 },
    // viewer 1 + portfolios (1 + totalCount 1 + 2 × (node 1 + valuation 5 + positions (1 + 10 × (node 1 + marketValue 1 + instrument 1 + latestPrice 1))))
    cost: 1 + (1 + 1 + 2 * (1 + 5 + (1 + 10 * (1 + 1 + 1 + 1)))),
  },

  // @cost weights
  { name: 'valuation weighs 5', document: '{ portfolio(id: "1") { name valuation { marketValue costBasis asOf } } }', cost: 1 + 5 },
  {
    name: 'latestForecast weighs 3 (its model 1 more)',
    document: '{ instrument(symbol: "A") { latestForecast { expectedReturn model { name } } } }',
    cost: 1 + 3 + 1,
  },
  { name: 'forecasts weigh 2 per item', document: '{ instrument(symbol: "A") { forecasts(first: 4) { lower upper } } }', cost: 1 + 4 * 2 },
  { name: 'forecasts default first (20) at 2 each', document: '{ instrument(symbol: "A") { forecasts { lower } } }', cost: 1 + 20 * 2 },
  {
    name: 'Position.marketValue and unrealizedPnl weigh 1',
    document: '{ portfolio(id: "1") { positions(first: 2) { nodes { quantity marketValue unrealizedPnl } } } }',
    cost: 1 + 1 + 2 * (1 + 1 + 1),
  },
  { name: 'createPortfolio weighs 10', document: 'mutation { createPortfolio(input: { name: "x" }) { portfolio { id } } }', cost: 10 + 1 },
  {
    name: 'recordTrade weighs 25',
    document: `mutation { recordTrade(input: ${RECORD_TRADE_INPUT}) { trade { id instrument { symbol } } position { quantity marketValue } } }`,
    cost: 25 + (1 + 1) + (1 + 1),
  },
  { name: 'a mutation with only scalars under it', document: `mutation { recordTrade(input: ${RECORD_TRADE_INPUT}) { __typename } }`, cost: 25 },

  // aliases and fragments
  {
    name: 'aliases are each counted',
    document: '{ a: instrument(symbol: "A") { latestPrice { close } } b: instrument(symbol: "B") { latestPrice { close } } }',
    cost: 2 + 2,
  },
  {
    name: 'aliased lists each sized by their own first',
    document: '{ instrument(symbol: "A") { short: prices(first: 2) { close } long: prices(first: 50) { close } } }',
    cost: 1 + 2 + 50,
  },
  {
    name: 'twenty aliases cost twenty times one',
    document: `{ ${Array.from({ length: 20 }, (_, i) => `a${i}: instrument(symbol: "S${i}") { symbol }`).join(' ')} }`,
    cost: 20,
  },
  {
    name: 'named fragments are followed',
    document: 'query { instruments(first: 2) { nodes { ...F } } } fragment F on Instrument { latestPrice { close } latestForecast { lower } }',
    cost: 1 + 2 * (1 + 1 + 3),
  },
  {
    name: 'a fragment spread twice is counted twice',
    document: 'query { a: instrument(symbol: "A") { ...F } b: instrument(symbol: "B") { ...F } } fragment F on Instrument { latestForecast { lower } }',
    cost: 2 * (1 + 3),
  },
  {
    name: 'nested named fragments',
    document: 'query { viewer { ...U } } fragment U on User { portfolios(first: 3) { nodes { ...P } } } fragment P on Portfolio { valuation { asOf } }',
    cost: 1 + 1 + 3 * (1 + 5),
  },
  {
    name: 'inline fragments, with and without a type condition',
    document: '{ instrument(symbol: "A") { ... on Instrument { latestPrice { close } } ... { latestForecast { upper } } } }',
    cost: 1 + 1 + 3,
  },
];

describe('CostEstimator', () => {
  it.each(cases)('$name', ({ document, variables, cost }) => {
    // every document of the table is valid against the schema, so the estimate prices real operations
    expect(validate(schema, parse(document))).toEqual([]);
    expect(estimate(document, variables).cost).toBe(cost);
  });

  it('remembers an estimate per parsed operation and variables, and never mixes variables up', () => {
    const ast = parse('query Q($n: Int!) { instruments(first: $n) { nodes { id } } }');
    const operation = getOperationAST(ast)!;
    const five = estimator.estimate(ast, operation, { n: 5 });
    const fifty = estimator.estimate(ast, operation, { n: 50 });
    expect(fifty.cost).toBeGreaterThan(five.cost);
    // a caller changing what it was given changes nothing the next request gets
    five.slices.length = 0;
    expect(estimator.estimate(ast, operation, { n: 5 })).toEqual({
      cost: five.cost,
      slices: [{ coordinate: 'Query.instruments', argument: 'first', value: 5 }],
    });
    expect(estimator.estimate(ast, operation, { n: 50 }).cost).toBe(fifty.cost);
    // variables too long to remember are still priced
    expect(estimator.estimate(ast, operation, { n: 5, pad: 'x'.repeat(3000) }).cost).toBe(five.cost);
  });

  it('prices the operation it is given, among several', () => {
    const document = 'query Cheap { __typename } query Dear { instruments(first: 10) { nodes { id } } }';
    expect(estimate(document, {}, 'Cheap').cost).toBe(0);
    expect(estimate(document, {}, 'Dear').cost).toBe(11);
  });

  it('reports every slicing argument with its coordinate and value (variables and defaults resolved)', () => {
    const document = `query S($n: Int = 3, $t: Int) {
      instruments(first: 4) { nodes { prices(first: $n) { close } forecasts { lower } } }
      viewer { portfolios { nodes { positions(first: 7) { totalCount } trades(first: $t) { totalCount } } } }
    }`;
    const { slices } = estimate(document, { t: 0 });
    expect(slices).toEqual<Slice[]>([
      { coordinate: 'Query.instruments', argument: 'first', value: 4 },
      { coordinate: 'Instrument.prices', argument: 'first', value: 3 },
      { coordinate: 'Instrument.forecasts', argument: 'first', value: 20 },
      { coordinate: 'User.portfolios', argument: 'first', value: 20 },
      { coordinate: 'Portfolio.positions', argument: 'first', value: 7 },
      { coordinate: 'Portfolio.trades', argument: 'first', value: 0 },
    ]);
  });

  it('reports a huge variable as it is, so that the caps can refuse it', () => {
    const { slices, cost } = estimate('query Q($n: Int!) { instrument(symbol: "A") { prices(first: $n) { close } } }', { n: 1_000_000_000 });
    expect(slices).toEqual([{ coordinate: 'Instrument.prices', argument: 'first', value: 1_000_000_000 }]);
    expect(cost).toBe(1 + 1_000_000_000);
  });

  it('reports no slice for fields without @listSize', () => {
    expect(estimate('{ instrument(symbol: "A") { latestForecast(horizonDays: 5) { lower } } }').slices).toEqual([]);
  });

  it('neither crashes nor loops on unknown or cyclic fragments (validation reports those)', () => {
    expect(estimate('{ instrument(symbol: "A") { latestPrice { close } ...Missing } }').cost).toBe(2);
    const cyclic =
      'query { instrument(symbol: "A") { ...A } } fragment A on Instrument { latestPrice { close } ...B } fragment B on Instrument { latestForecast { lower } ...A }';
    // A (price 1) and B (forecast 3) each once, the cycle cut where A comes round again
    expect(estimate(cyclic).cost).toBe(1 + 1 + 3);
  });

  it('prices an unknown field at nothing (validation reports it)', () => {
    expect(estimate('{ nope { id } instrument(symbol: "A") { symbol nope } }').cost).toBe(1);
  });
});

/** Messages and extensions of what `rule` reports on `document` (graphql-js's own rules not run). */
function check(rule: ValidationRule, document: string): { message: string; extensions: Record<string, unknown> }[] {
  return validate(schema, parse(document), [rule]).map((e: GraphQLError) => ({ message: e.message, extensions: { ...e.extensions } }));
}

// viewer → portfolios → nodes → positions → nodes → instrument → latestForecast → model → name:
// graphql-depth-limit counts this as depth 8 (the leaf `name` sits at depth 8).
const DEEP_SELECTION = 'portfolios { nodes { positions { nodes { instrument { latestForecast { model { name } } } } } } }';
const DEPTH_8 = `query Deep { viewer { ${DEEP_SELECTION} } }`;

describe('depthLimitRule', () => {
  it('reports QUERY_TOO_DEEP with the limit past it, and nothing at it', () => {
    expect(check(depthLimitRule(8), DEPTH_8)).toEqual([]);
    const errors = check(depthLimitRule(7), DEPTH_8);
    expect(errors).toHaveLength(1);
    expect(errors[0].extensions).toEqual({ code: 'QUERY_TOO_DEEP', limit: 7 });
    expect(errors[0].message).toBe("operation 'Deep' exceeds maximum operation depth of 7");
  });

  it('names no operation for an anonymous one', () => {
    const [error] = check(depthLimitRule(2), `{ viewer { ${DEEP_SELECTION} } }`);
    expect(error.message).toBe('operation exceeds maximum operation depth of 2');
    expect(error.extensions).toEqual({ code: 'QUERY_TOO_DEEP', limit: 2 });
  });

  it('follows named and inline fragments', () => {
    const named = `query Deep { viewer { ...U } } fragment U on User { portfolios { nodes { ...P } } } fragment P on Portfolio { positions { nodes { instrument { latestForecast { model { name } } } } } }`;
    expect(check(depthLimitRule(8), named)).toEqual([]);
    expect(check(depthLimitRule(7), named).map((e) => e.extensions.code)).toEqual(['QUERY_TOO_DEEP']);

    const inline = `query Deep { viewer { ... on User { portfolios { nodes { ... { positions { nodes { instrument { latestForecast { model { name } } } } } } } } } } }`;
    expect(check(depthLimitRule(8), inline)).toEqual([]);
    expect(check(depthLimitRule(7), inline).map((e) => e.extensions.code)).toEqual(['QUERY_TOO_DEEP']);
  });

  it('points at the first selection past the limit, inside the fragment that holds it', () => {
    const named = `query Deep { viewer { ...U } }\nfragment U on User { portfolios { nodes { positions { nodes { instrument { latestForecast { model { name } } } } } } } }`;
    const [error] = validate(schema, parse(named), [depthLimitRule(6)]);
    // viewer 0, portfolios 1, nodes 2, positions 3, nodes 4, instrument 5, latestForecast 6, model 7
    expect(error.locations).toEqual([{ line: 2, column: named.split('\n')[1].indexOf('model') + 1 }]);
  });

  it('does not count introspection fields', () => {
    expect(check(depthLimitRule(1), '{ __schema { types { fields { type { ofType { name } } } } } }')).toEqual([]);
  });

  it('neither crashes nor reports anything itself on unknown or cyclic fragments', () => {
    expect(check(depthLimitRule(1), `{ viewer { ...Missing ${DEEP_SELECTION} } }`)).toEqual([]);
    const cyclic = `query { viewer { ...A } } fragment A on User { ${DEEP_SELECTION} ...B } fragment B on User { ...A }`;
    expect(check(depthLimitRule(1), cyclic)).toEqual([]);
    const selfCycle = 'query { viewer { ...A } } fragment A on User { id ...A }';
    expect(check(depthLimitRule(1), selfCycle)).toEqual([]);
    // with graphql-js's own rules, the document is still refused for what it is
    const all = validate(schema, parse(cyclic), [...specifiedRules, depthLimitRule(1)]);
    expect(all.some((e) => /within itself/.test(e.message))).toBe(true);
  });
});

describe('aliasLimitRule', () => {
  const aliases = (n: number) => Array.from({ length: n }, (_, i) => `a${i}: __typename`).join(' ');

  it('allows N aliases and reports the N+1th once, as BAD_USER_INPUT with the limit', () => {
    expect(check(aliasLimitRule(3), `{ ${aliases(3)} }`)).toEqual([]);
    const errors = check(aliasLimitRule(3), `{ ${aliases(4)} }`);
    expect(errors).toEqual([{ message: 'the document uses more than 3 aliases', extensions: { code: 'BAD_USER_INPUT', limit: 3 } }]);
    expect(check(aliasLimitRule(3), `{ ${aliases(40)} }`)).toHaveLength(1);
  });

  it('counts aliases at any depth and in fragments', () => {
    const doc = 'query { a: instrument(symbol: "A") { s1: symbol ...F } } fragment F on Instrument { s2: symbol s3: name }';
    expect(check(aliasLimitRule(4), doc)).toEqual([]);
    expect(check(aliasLimitRule(3), doc).map((e) => e.extensions)).toEqual([{ code: 'BAD_USER_INPUT', limit: 3 }]);
  });

  it('does not count fields without an alias', () => {
    expect(check(aliasLimitRule(1), '{ instrument(symbol: "A") { id symbol name currency } viewer { id } }')).toEqual([]);
  });
});

describe('rootFieldLimitRule', () => {
  const roots = (n: number) => Array.from({ length: n }, (_, i) => `r${i}: instrument(symbol: "S${i}") { symbol }`).join(' ');

  it('allows N root fields and reports N+1 as BAD_USER_INPUT with the limit', () => {
    expect(check(rootFieldLimitRule(3), `{ ${roots(3)} }`)).toEqual([]);
    expect(check(rootFieldLimitRule(3), `{ ${roots(4)} }`)).toEqual([
      { message: 'the operation asks for 4 root fields; at most 3 are allowed', extensions: { code: 'BAD_USER_INPUT', limit: 3 } },
    ]);
  });

  it('counts the fields of fragments on the root, named and inline', () => {
    const doc =
      'query { viewer { id } ...Roots ... on Query { c: instrument(symbol: "C") { id } } } fragment Roots on Query { a: instrument(symbol: "A") { id } b: instrument(symbol: "B") { id } }';
    expect(check(rootFieldLimitRule(4), doc)).toEqual([]);
    expect(check(rootFieldLimitRule(3), doc).map((e) => e.extensions)).toEqual([{ code: 'BAD_USER_INPUT', limit: 3 }]);
  });

  it('does not count fields below the root', () => {
    expect(check(rootFieldLimitRule(1), '{ instrument(symbol: "A") { id symbol name currency assetClass latestPrice { date close } } }')).toEqual([]);
  });

  it('counts each operation of a document on its own', () => {
    expect(check(rootFieldLimitRule(3), `query A { ${roots(3)} } query B { ${roots(3)} }`)).toEqual([]);
  });

  it('does not loop on a fragment that spreads itself', () => {
    expect(check(rootFieldLimitRule(3), 'query { ...R } fragment R on Query { viewer { id } ...R }')).toEqual([]);
  });
});

describe('selectionLimitRule', () => {
  it('counts fields, inline fragments and spreads, each fragment as often as it is spread', () => {
    // 2 spreads + 2 × (viewer, id, the inline fragment, name) + __typename
    const doc = 'query { ...U __typename ...U } fragment U on Query { viewer { id ... on User { name } } }';
    expect(check(selectionLimitRule(11), doc)).toEqual([]);
    expect(check(selectionLimitRule(10), doc)).toEqual([
      { message: 'the document asks for more than 10 selections once its fragment spreads are written out', extensions: { code: 'BAD_USER_INPUT', limit: 10 } },
    ]);
  });

  it('adds up the operations of a document and reports once', () => {
    const doc = 'query A { viewer { id } } query B { viewer { id } } query C { viewer { id } }';
    expect(check(selectionLimitRule(6), doc)).toEqual([]);
    expect(check(selectionLimitRule(3), doc)).toHaveLength(1);
  });

  it('neither crashes nor loops on unknown or cyclic fragments', () => {
    expect(check(selectionLimitRule(2), '{ viewer { ...Missing } }')).toEqual([]);
    // viewer, ...A, id, ...B, ...A: the spread that closes the cycle counts, what it would repeat does not
    const cyclic = 'query { viewer { ...A } } fragment A on User { id ...B } fragment B on User { ...A }';
    expect(check(selectionLimitRule(5), cyclic)).toEqual([]);
    expect(check(selectionLimitRule(4), cyclic)).toHaveLength(1);
    expect(check(selectionLimitRule(2), 'query { ...R } fragment R on Query { __typename ...R }')).toHaveLength(1);
  });
});

describe('directiveLimitRule', () => {
  const fields = (n: number) => Array.from({ length: n }, (_, i) => `f${i}: __typename @include(if: true)`).join(' ');

  it('allows N directives and reports N+1 as BAD_USER_INPUT with the limit', () => {
    expect(check(directiveLimitRule(3), `{ ${fields(3)} }`)).toEqual([]);
    expect(check(directiveLimitRule(3), `{ ${fields(4)} }`)).toEqual([
      { message: 'the document uses more than 3 directives', extensions: { code: 'BAD_USER_INPUT', limit: 3 } },
    ]);
  });

  it('counts directives anywhere: repeated on one field, on fragments, in fragment definitions', () => {
    const doc =
      'query { viewer @skip(if: false) { id @include(if: true) ... @include(if: true) { name } ...U @skip(if: false) } } fragment U on User { email @include(if: true) }';
    expect(check(directiveLimitRule(5), doc)).toEqual([]);
    expect(check(directiveLimitRule(4), doc).map((e) => e.extensions)).toEqual([{ code: 'BAD_USER_INPUT', limit: 4 }]);
  });
});

describe('noSubscriptionRule', () => {
  it('refuses a subscription as BAD_USER_INPUT: this API has none', () => {
    expect(check(noSubscriptionRule, 'subscription { viewer { id } }')).toEqual([
      { message: 'this API has no subscriptions', extensions: { code: 'BAD_USER_INPUT' } },
    ]);
  });

  it('lets queries and mutations through', () => {
    expect(check(noSubscriptionRule, '{ __typename }')).toEqual([]);
    expect(check(noSubscriptionRule, 'mutation { createPortfolio(input: { name: "x" }) { portfolio { id } } }')).toEqual([]);
  });
});

describe('cost recorder', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.destroy();
  });

  const work = (rows: number, byLoader: WorkStats['byLoader'], loaderMs = 0): WorkStats => ({
    batches: Object.values(byLoader).reduce((n, l) => n + l.batches, 0),
    keys: Object.values(byLoader).reduce((n, l) => n + l.keys, 0),
    rows,
    loaderMs,
    models: {},
    byLoader,
  });

  it('writes operation and field sums on flush, and reports them furthest from their estimate first', async () => {
    const recorder = createCostRecorder(database.db);
    const dashboard: CostInfo & { estimated: number } = {
      estimated: 100,
      slices: [
        { coordinate: 'Query.portfolios', value: 10 },
        { coordinate: 'Portfolio.positions', value: 50 },
      ],
    };
    recorder.record(
      'Dashboard',
      dashboard,
      { statements: 7 },
      work(
        30,
        {
          portfolioPage: { batches: 1, keys: 1, rows: 4 }, // 4 portfolios of the 10 asked for
          openPositions: { batches: 1, keys: 4, rows: 8 }, // 2 positions per portfolio of the 50 asked for
          instrumentsById: { batches: 1, keys: 3, rows: 3 }, // no list field: not a field observation
        },
        12,
      ),
    );
    recorder.record(null, { estimated: 9, slices: [] }, { statements: 1 }, work(9, {}, 1));

    // nothing is written before flush
    expect(await costReport(database.db)).toEqual([]);
    await recorder.flush();

    const report = await costReport(database.db);
    expect(report.map((r) => [r.kind, r.name])).toEqual([
      ['field', 'Portfolio.positions'], // actual 2 against 50: |log(3/51)| ≈ 2.83
      ['operation', 'Dashboard'], // actual 30 against 100: |log(31/101)| ≈ 1.18
      ['field', 'User.portfolios'], // Query.portfolios pages User.portfolios: 4 against 10, |log(5/11)| ≈ 0.79
      ['operation', '(anonymous)'], // exactly as estimated
    ]);
    const byName = Object.fromEntries(report.map((r) => [r.name, r]));
    expect(byName.Dashboard).toMatchObject({ samples: 1, estimated: 100, actual: 30, sqlStatements: 7, sqlMs: 12 });
    expect(byName.Dashboard.ratio).toBeCloseTo(31 / 101, 10);
    expect(byName['Portfolio.positions']).toMatchObject({ kind: 'field', samples: 1, estimated: 50, actual: 2, sqlStatements: 1 });
    expect(byName['User.portfolios']).toMatchObject({ kind: 'field', samples: 1, estimated: 10, actual: 4, sqlStatements: 1 });
    expect(byName['(anonymous)']).toMatchObject({ samples: 1, estimated: 9, actual: 9, ratio: 1, sqlStatements: 1, sqlMs: 1 });

    // a flush with nothing recorded writes nothing and changes nothing
    await recorder.flush();
    expect(await costReport(database.db)).toEqual(report);

    // a second flush adds to the sums: the means move
    recorder.record('Dashboard', dashboard, { statements: 9 }, work(50, { portfolioPage: { batches: 1, keys: 1, rows: 10 } }, 4));
    await recorder.flush();
    const again = Object.fromEntries((await costReport(database.db)).map((r) => [r.name, r]));
    expect(again.Dashboard).toMatchObject({ samples: 2, estimated: 100, actual: 40, sqlStatements: 8, sqlMs: 8 });
    expect(again['User.portfolios']).toMatchObject({ samples: 2, estimated: 10, actual: 7 });
    expect(again['Portfolio.positions']).toMatchObject({ samples: 1, estimated: 50, actual: 2 });

    // minSamples leaves out what was seen less often
    expect((await costReport(database.db, 2)).map((r) => r.name).sort()).toEqual(['Dashboard', 'User.portfolios']);
  });

  it('averages several slices of one field, and skips loaders that fetched no keys', async () => {
    const recorder = createCostRecorder(database.db);
    recorder.record(
      'TwoPriceRanges',
      {
        estimated: 60,
        slices: [
          { coordinate: 'Instrument.prices', value: 10 },
          { coordinate: 'Instrument.prices', value: 30 },
          { coordinate: 'Instrument.forecasts', value: 20 },
        ],
      },
      { statements: 2 },
      work(12, { priceRange: { batches: 1, keys: 2, rows: 12 }, forecastList: { batches: 0, keys: 0, rows: 0 } }),
    );
    await recorder.stop(); // stop flushes what is pending
    const report = Object.fromEntries((await costReport(database.db)).map((r) => [r.name, r]));
    expect(report['Instrument.prices']).toMatchObject({ kind: 'field', samples: 1, estimated: 20, actual: 6 });
    expect(report['Instrument.forecasts']).toBeUndefined();
    expect(report.TwoPriceRanges).toMatchObject({ kind: 'operation', estimated: 60, actual: 12, sqlStatements: 2 });
  });
});
