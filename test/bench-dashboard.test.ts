// The parts of the dashboard benchmark (bench/) that can be checked without a long run: how a CPU
// profile is summed by package, and how answers of different shapes are found to be the same data.
import { describe, expect, it } from 'vitest';
import { canonicalDecimal, differences, fromFoliograph, fromPostGraphile } from '../bench/dashboard-answers.js';
import { packageOf, summariseProfile, type CpuProfile } from '../bench/profile-summary.js';

const ROOT = '/srv/foliograph';

describe('the profile summary', () => {
  it('names packages: scoped whole, the innermost node_modules, our folders, node internals, V8 pseudo-frames', () => {
    expect(packageOf(`file://${ROOT}/node_modules/@apollo/server/dist/esm/runHttpQuery.js`, 'prettyJSONStringify', ROOT)).toBe('@apollo/server');
    expect(packageOf(`file://${ROOT}/node_modules/postgraphile/node_modules/pg/lib/client.js`, 'query', ROOT)).toBe('pg');
    expect(packageOf(`${ROOT}/node_modules/graphql/execution/execute.js`, 'executeField', ROOT)).toBe('graphql');
    expect(packageOf(`file://${ROOT}/dist/http/handler.js`, 'handle', ROOT)).toBe('src/http');
    expect(packageOf(`file://${ROOT}/src/loaders/batch.ts`, 'byKey', ROOT)).toBe('src/loaders');
    expect(packageOf(`file://${ROOT}/dist/main.js`, 'main', ROOT)).toBe('src/');
    expect(packageOf('node:internal/streams/writable', 'write', ROOT)).toBe('node internals');
    expect(packageOf('', '(garbage collector)', ROOT)).toBe('(garbage collector)');
    expect(packageOf('', 'writeBuffer', ROOT)).toBe('(native)');
    expect(packageOf('file:///elsewhere/x.js', 'f', ROOT)).toBe('other');
  });

  // (root) → main (src/) → execute (graphql) → completeValue (graphql) → is (drizzle-orm)
  //                                          → write (node internals) → writeBuffer (native)
  //        → (garbage collector)      → (idle)
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '' }, children: [2, 6, 7] },
      { id: 2, callFrame: { functionName: 'main', url: `file://${ROOT}/dist/main.js` }, children: [3] },
      { id: 3, callFrame: { functionName: 'execute', url: `file://${ROOT}/node_modules/graphql/execution/execute.js` }, children: [4, 8] },
      { id: 8, callFrame: { functionName: 'write', url: 'node:internal/streams/writable' }, children: [9] },
      { id: 9, callFrame: { functionName: 'writeBuffer', url: '' } },
      { id: 4, callFrame: { functionName: 'completeValue', url: `file://${ROOT}/node_modules/graphql/execution/execute.js` }, children: [5] },
      { id: 5, callFrame: { functionName: 'is', url: `file://${ROOT}/node_modules/drizzle-orm/entity.js`, lineNumber: 2 } },
      { id: 6, callFrame: { functionName: '(garbage collector)', url: '' } },
      { id: 7, callFrame: { functionName: '(idle)', url: '' } },
    ],
    startTime: 1_000,
    // samples at 1000, 1010, 1020, 1050, 1060, 1100, 1120; each lasts until the next, the last until endTime 1200
    samples: [5, 4, 6, 3, 5, 9, 7],
    timeDeltas: [0, 10, 10, 30, 10, 40, 20],
    endTime: 1_200,
  };

  it('sums self time where a sample is on top and inclusive time once per package on the stack', () => {
    const s = summariseProfile(profile, ROOT);
    const by = Object.fromEntries(s.packages.map((p) => [p.name, p]));
    expect(s.total).toBe(200);
    expect(s.idle).toBe(80);
    expect(s.samples).toBe(7);
    expect(by['drizzle-orm']).toEqual({ name: 'drizzle-orm', self: 10 + 40, inclusive: 50 });
    // execute and completeValue are both graphql: a sample under both counts once
    expect(by.graphql).toEqual({ name: 'graphql', self: 10 + 10, inclusive: 10 + 10 + 10 + 40 + 20 });
    expect(by['src/']).toEqual({ name: 'src/', self: 0, inclusive: 90 });
    expect(by['(native)']).toEqual({ name: '(native)', self: 20, inclusive: 20 });
    expect(by['node internals']).toEqual({ name: 'node internals', self: 0, inclusive: 20 });
    expect(by['(garbage collector)'].self).toBe(30);
    expect(by['(root)']).toBeUndefined();
    expect(s.packages[0].name).toBe('(idle)');
    expect(s.functions.slice(0, 2)).toEqual([
      { name: 'is entity.js:3', pkg: 'drizzle-orm', under: 'drizzle-orm', self: 50 },
      // a socket write is Node's, done for graphql here: the nearest package on its stack says who asked
      { name: 'writeBuffer', pkg: '(native)', under: 'graphql', self: 20 },
    ]);
  });

  it('counts only the samples inside a window', () => {
    const s = summariseProfile(profile, ROOT, { start: 1_020, end: 1_060 });
    expect(s.samples).toBe(2);
    expect(s.total).toBe(30 + 10);
    expect(s.packages.map((p) => [p.name, p.self])).toEqual([
      ['(garbage collector)', 30],
      ['graphql', 10],
      ['src/', 0],
    ]);
  });
});

describe('the same-data check', () => {
  const position = (quantity: string, averageCost: string, close: string) => ({ quantity, averageCost, symbol: 'SYN0001', close });
  const foliograph = (positions: ReturnType<typeof position>[]) => ({
    data: {
      viewer: {
        portfolios: {
          nodes: [
            {
              id: '31',
              name: 'Load 1',
              positions: {
                nodes: positions.map((p) => ({
                  quantity: p.quantity,
                  averageCost: p.averageCost,
                  instrument: {
                    symbol: p.symbol,
                    latestPrice: { date: '2020-04-17', close: p.close },
                    latestForecast: { expectedReturn: 0.002, lower: -0.11, upper: 0.13 },
                  },
                })),
              },
            },
          ],
        },
      },
    },
  });
  const postgraphile = (positions: ReturnType<typeof position>[]) => ({
    data: {
      user: {
        portfoliosByOwnerId: {
          nodes: [
            {
              rowId: 31,
              name: 'Load 1',
              positions: {
                nodes: positions.map((p) => ({
                  quantity: p.quantity,
                  averageCost: p.averageCost,
                  instrument: {
                    symbol: p.symbol,
                    prices: { nodes: [{ date: '2020-04-17', close: p.close }] },
                    forecasts: { nodes: [{ expectedReturn: 0.002, lower95: -0.11, upper95: 0.13 }] },
                  },
                })),
              },
            },
          ],
        },
      },
    },
  });

  it('compares decimals as decimals', () => {
    expect(canonicalDecimal('10.50000000')).toBe('10.5');
    expect(canonicalDecimal('247.00000000')).toBe('247');
    expect(canonicalDecimal('0010.5')).toBe('10.5');
    expect(canonicalDecimal('-0.000')).toBe('0');
    expect(canonicalDecimal('-1.20')).toBe('-1.2');
    expect(canonicalDecimal('0.05')).toBe('0.05');
    expect(canonicalDecimal('abc')).toBe('abc');
  });

  it("finds PostGraphile's names and padded decimals the same data as foliograph's", () => {
    const ours = fromFoliograph(foliograph([position('247', '10.5', '271.18')]));
    const theirs = fromPostGraphile(postgraphile([position('247.00000000', '10.50000000', '271.18000000')]));
    expect(differences(ours, theirs)).toEqual([]);
  });

  it('names where and how two answers differ', () => {
    const ours = fromFoliograph(foliograph([position('247', '10.5', '271.18'), position('3', '1', '2')]));
    const theirs = fromPostGraphile(postgraphile([position('247.00000000', '10.60000000', '271.18000000')]));
    expect(differences(ours, theirs)).toEqual(['portfolios[0].positions: 2 items vs 1', 'portfolios[0].positions[0].averageCost: "10.5" vs "10.6"']);
  });

  it('refuses an answer with errors or without a viewer', () => {
    expect(() => fromFoliograph({ errors: [{ message: 'query too costly' }] })).toThrow('answered errors: query too costly');
    expect(() => fromFoliograph({ data: { viewer: null } })).toThrow('answered viewer: null');
    expect(() => fromPostGraphile({ data: { user: null } })).toThrow('answered user: null');
  });
});
