import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getOperationAST, Kind, parse, specifiedRules, validate, visit, type DocumentNode, type OperationDefinitionNode } from 'graphql';
import { createScopeAnalyzer } from '../src/cache/policy.js';
import { loadConfig } from '../src/config.js';
import { buildSchema } from '../src/graphql/schema.js';
import { checkManifest, sha256, type DocumentChecks } from '../src/admission/trusted-documents.js';
import { CostEstimator } from '../src/limits/cost-estimate.js';
import { depthLimitRule } from '../src/limits/depthLimitRule.js';
import { limitRules } from '../src/limits/rules.js';
import { rootFieldLimitRule } from '../src/limits/rootFieldLimitRule.js';
import { selectionLimitRule } from '../src/limits/selectionLimitRule.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, TEST_SECRET, type TestServer } from './helpers/server.js';

// Every walker that follows fragments does work in proportion to the document, however its fragments
// spread one another: graphql-js's own rules and ours, the cost estimate and the cache's privacy
// scope, through the real server and through pq:publish's checks and command. A document whose
// fragments each spread the next twice is short and, written out, astronomically large: at 40 levels a
// walker that re-walks a fragment per spread does not finish (before this change, these tests hung;
// the spawned command's timeout and the tests' timeouts guard against it coming back slower).

const LEVELS = 40;

/** `head`, then fragments F0…F(n-1) whose bodies `body` gives, and a last fragment Fn. */
const chainOf = (n: number, head: string, body: (next: string) => string, last: string) =>
  head + Array.from({ length: n }, (_, i) => ` fragment F${i} ${body(`F${i + 1}`)}`).join('') + ` fragment F${n} ${last}`;

/** Documents whose fragments fan out: each spreads the next twice, in the ways a document can. */
const SHAPES = {
  // the document of the issue: nothing but spreads on the root
  doubling: (n: number, leaf = '__typename') => chainOf(n, 'query Doubling { ...F0 }', (next) => `on Query { ...${next} ...${next} }`, `on Query { ${leaf} }`),
  // the same through inline fragments, with and without a type condition
  inline: (n: number) =>
    chainOf(n, 'query Inline { ...F0 }', (next) => `on Query { ... on Query { ...${next} } ... { ...${next} } }`, 'on Query { __typename }'),
  // fields between the spreads, on an object type below the root
  between: (n: number) => chainOf(n, 'query Between { viewer { ...F0 } }', (next) => `on User { id ...${next} email ...${next} }`, 'on User { name }'),
  // fragments on an object type nested under two lists
  lists: (n: number) =>
    chainOf(
      n,
      'query Lists { viewer { portfolios(first: 2) { nodes { ...F0 } } } }',
      (next) => `on Portfolio { name positions(first: 2) { nodes { quantity } } ...${next} ...${next} }`,
      'on Portfolio { id }',
    ),
};
const FAN_OUTS = Object.keys(SHAPES) as (keyof typeof SHAPES)[];
// a deep chain: each fragment spreads the next once (linear however long; 500 levels is ~3,500 tokens)
const chain = (n: number) => chainOf(n, 'query Chain { ...F0 }', (next) => `on Query { ...${next} }`, 'on Query { __typename }');
// n operations that each spread the head of one chain of m fragments: m + 2 selections each, written out
const operations = (n: number, m = n) =>
  Array.from({ length: n }, (_, i) => `query Q${i} { ...F0 }`).join(' ') + chainOf(m, '', (next) => `on Query { ...${next} }`, 'on Query { __typename }');

// `lists` at n levels: viewer 1 + portfolios 1 + 2 nodes × (1 + P0), where P(i) = positions 1 +
// 2 × position 1 + 2 × P(i+1) and P(n) = 0, so P0 = 3 × (2^n − 1)
const listsCost = (n: number) => 2 + 2 * (1 + 3 * (2 ** n - 1));

const schema = buildSchema();
const HUGE = String(Number.MAX_SAFE_INTEGER); // MAX_SELECTIONS that nothing here reaches: the other walkers meet the documents
const configOf = (env: Record<string, string> = {}) => loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET, ...env });
/** pq:publish's checks (src/tools/cli/pq.ts), under the configuration `env` gives. */
const checksOf = (env: Record<string, string> = {}): DocumentChecks => {
  const config = configOf(env);
  return { schema, estimator: new CostEstimator(schema), rules: limitRules(config), maxCost: config.limits.maxCost };
};

const SELECTION_KINDS = new Set<string>([Kind.FIELD, Kind.INLINE_FRAGMENT, Kind.FRAGMENT_SPREAD]);

/**
 * `document` behind proxies that count every look at a selection's `kind`: each walker reads it for
 * every selection it visits, so the count is the walker's work, whatever the walker is.
 */
function counting(document: DocumentNode): { document: DocumentNode; visits: () => number } {
  let visits = 0;
  const proxies = new WeakMap<object, object>();
  const wrap = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    let proxy = proxies.get(value);
    if (!proxy) {
      proxy = new Proxy(value, {
        get(target, key, receiver) {
          if (key === 'kind' && SELECTION_KINDS.has((target as { kind?: string }).kind ?? '')) visits++;
          return wrap(Reflect.get(target, key, receiver));
        },
      });
      proxies.set(value, proxy);
    }
    return proxy;
  };
  return { document: wrap(document) as DocumentNode, visits: () => visits };
}

const selectionsIn = (document: DocumentNode) => {
  let n = 0;
  const one = () => void n++;
  visit(document, { Field: one, InlineFragment: one, FragmentSpread: one });
  return n;
};

describe('walkers that follow fragments', () => {
  const estimator = new CostEstimator(schema);
  const config = configOf();
  const walkers: Record<string, (document: DocumentNode) => unknown> = {
    depthLimitRule: (d) => validate(schema, d, [depthLimitRule(config.limits.maxDepth)]),
    selectionLimitRule: (d) => validate(schema, d, [selectionLimitRule(config.limits.maxSelections)]),
    rootFieldLimitRule: (d) => validate(schema, d, [rootFieldLimitRule(config.limits.maxRootFields)]),
    "graphql-js's rules and ours together": (d) => validate(schema, d, [...specifiedRules, ...limitRules(config)]),
    // the estimate prices the one operation that runs: the first, here
    'the cost estimate': (d) => estimator.estimate(d, d.definitions.find((x) => x.kind === Kind.OPERATION_DEFINITION) as OperationDefinitionNode, {}),
    'the privacy scope': (d) => createScopeAnalyzer(schema)(d),
  };

  // These walk what each operation reaches, as graphql-js's NoUnusedVariablesRule does: n operations
  // over one chain of n fragments cost them n², which the selection bound caps (the next test).
  const perOperation = new Set(['rootFieldLimitRule', "graphql-js's rules and ours together"]);

  for (const [walker, walk] of Object.entries(walkers)) {
    it(`${walker}: visits grow with the document, not with its fragments written out`, () => {
      for (const shape of [...FAN_OUTS.map((s) => SHAPES[s]), chain, ...(perOperation.has(walker) ? [] : [operations])]) {
        // visits per selection of the document at 10 levels: doubling the levels may not raise it
        let rate: number | undefined;
        for (const levels of [10, 20, 40, 80]) {
          const document = parse(shape(levels));
          const counted = counting(document);
          walk(counted.document);
          const perSelection = counted.visits() / selectionsIn(document);
          rate ??= perSelection;
          expect(perSelection, `${walker} on ${shape(1).split(' ')[1]} at ${levels} levels`).toBeLessThanOrEqual(rate * 1.1);
        }
      }
    });
  }

  it('bounds the selections of the whole document, not of each operation', () => {
    // 98 operations of 102 selections each are 9,996; one more is past 10,000, though each is small
    expect(validate(schema, parse(operations(98, 100)), [selectionLimitRule(10_000)])).toEqual([]);
    const errors = validate(schema, parse(operations(99, 100)), [selectionLimitRule(10_000)]);
    expect(errors.map((e) => ({ message: e.message, extensions: e.extensions }))).toEqual([
      {
        message: 'the document asks for more than 10000 selections once its fragment spreads are written out',
        extensions: { code: 'BAD_USER_INPUT', limit: 10_000 },
      },
    ]);
    // reported where the total passes the bound: at the last operation
    expect(errors[0].nodes?.map((n) => n.kind === Kind.OPERATION_DEFINITION && n.name?.value)).toEqual(['Q98']);
  });

  it('prices the doubling document exactly: one walk per fragment, each slicing argument recorded', () => {
    const estimate = (text: string) => estimator.estimate(parse(text), getOperationAST(parse(text))!, {});
    expect(estimate(SHAPES.doubling(48, 'instrument(symbol: "S") { symbol }'))).toEqual({ cost: 2 ** 48, slices: [] });
    // each copy of the leaf: the connection 1 + 3 nodes × 1
    expect(estimate(SHAPES.doubling(48, 'instruments(first: 3) { nodes { symbol } }'))).toEqual({
      cost: 2 ** 48 * 4,
      slices: [{ coordinate: 'Query.instruments', argument: 'first', value: 3 }],
    });
    expect(estimate(SHAPES.lists(LEVELS)).cost).toBe(listsCost(LEVELS));
    expect(estimate(SHAPES.between(LEVELS)).cost).toBe(1);
    expect(estimate(chain(500)).cost).toBe(0);
  });
});

describe('fan-out documents through the real server', () => {
  let database: TestDatabase;
  let server: TestServer; // the default limits: MAX_SELECTIONS refuses them
  let unbounded: TestServer; // MAX_SELECTIONS out of reach: validation, cost and execution meet them
  let userId: number;

  beforeAll(async () => {
    database = await createTestDatabase();
    const user = await seed(database.db).user();
    userId = user.id;
    server = await startTestServer(database);
    unbounded = await startTestServer(database, { MAX_SELECTIONS: HUGE, MAX_DEPTH: '6' });
    for (const running of [server, unbounded]) await running.app.recorder.stop();
  });
  afterAll(async () => {
    for (const s of [server, unbounded]) await s?.stop();
    await database?.destroy();
  });

  it(`refuses each shape at ${LEVELS} levels with 400 BAD_USER_INPUT and the limit, running no SQL`, { timeout: 30_000 }, async () => {
    expect(server.config.limits.maxSelections).toBe(10_000);
    for (const shape of FAN_OUTS) {
      const { result: res, statements } = await server.countSql(() => server.post({ query: SHAPES[shape](LEVELS) }));
      expect(res.status, `${shape}: ${JSON.stringify(res.body)}`).toBe(400);
      expect(res.body.data ?? null).toBeNull();
      expect(res.body.errors).toHaveLength(1);
      expect(res.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', limit: 10_000 });
      expect(res.body.errors[0].message).toBe('the document asks for more than 10000 selections once its fragment spreads are written out');
      expect(statements).toBe(0);
    }
  });

  it("refuses a document that makes graphql-js's field-merging check quadratic, as that check stops itself", { timeout: 30_000 }, async () => {
    // 700 × `portfolios { nodes { id } }` (4,904 tokens): every pair is compared, past graphql-js
    // 16.15's 500,000 comparisons, where OverlappingFieldsCanBeMergedRule aborts the validation
    const query = `{ viewer { ${'portfolios { nodes { id } } '.repeat(700)}} }`;
    const { result: res, statements } = await server.countSql(() => server.post({ query }));
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(400);
    expect(res.body.errors).toEqual([
      expect.objectContaining({ message: 'Validation aborted.', extensions: expect.objectContaining({ code: 'BAD_USER_INPUT' }) }),
    ]);
    expect(statements).toBe(0);
  });

  it('answers a chain of 500 fragments, each spreading the next once', { timeout: 30_000 }, async () => {
    const res = await server.post({ query: chain(500) });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.data).toEqual({ __typename: 'Query' });
  });

  it(`past the selection bound, answers the cheap shapes at ${LEVELS} levels`, { timeout: 30_000 }, async () => {
    // twice, from the second time on a document is compiled: not one whose fragments would multiply
    // (graphql-jit writes every spread out; see src/cache/compiled.ts)
    for (let run = 0; run < 2; run++) {
      const doubling = await unbounded.post({ query: SHAPES.doubling(LEVELS) });
      expect(doubling.status, JSON.stringify(doubling.body)).toBe(200);
      expect(doubling.body.data).toEqual({ __typename: 'Query' });
      expect(doubling.body.extensions.cost.estimated).toBe(0);
    }

    const inline = await unbounded.post({ query: SHAPES.inline(LEVELS) });
    expect(inline.body.data).toEqual({ __typename: 'Query' });

    const between = await unbounded.post({ query: SHAPES.between(LEVELS) }, { authorization: `Bearer ${await unbounded.token(userId)}` });
    expect(between.status, JSON.stringify(between.body)).toBe(200);
    expect(between.body.data.viewer).toEqual({ id: String(userId), email: expect.any(String), name: expect.any(String) });
    expect(between.body.extensions.cost.estimated).toBe(1);
  });

  it(`past the selection bound, prices and refuses the costly and the deep ones, running no SQL`, { timeout: 30_000 }, async () => {
    const costly = await unbounded.countSql(() => unbounded.post({ query: SHAPES.lists(LEVELS) }));
    expect(costly.result.status).toBe(400);
    expect(costly.result.body.errors).toHaveLength(1);
    expect(costly.result.body.errors[0].extensions).toMatchObject({ code: 'QUERY_TOO_COSTLY', cost: listsCost(LEVELS), limit: 50_000 });
    expect(costly.statements).toBe(0);

    // depth 8 at the leaf, under MAX_DEPTH=6
    const leaf = 'viewer { portfolios { nodes { positions { nodes { instrument { latestForecast { model { name } } } } } } } }';
    const deep = await unbounded.countSql(() => unbounded.post({ query: SHAPES.doubling(LEVELS, leaf) }));
    expect(deep.result.status).toBe(400);
    expect(deep.result.body.errors).toHaveLength(1);
    expect(deep.result.body.errors[0]).toMatchObject({
      message: "operation 'Doubling' exceeds maximum operation depth of 6",
      extensions: { code: 'QUERY_TOO_DEEP', limit: 6 },
    });
    expect(deep.statements).toBe(0);
  });
});

describe('fan-out documents in pq:publish', () => {
  const operationOf = (body: string) => ({ id: sha256(body), name: getOperationAST(parse(body))!.name!.value, type: 'query', body });
  const manifestOf = (...bodies: string[]) => ({ format: 'apollo-persisted-query-manifest', version: 1, operations: bodies.map(operationOf) });

  it(`refuses each shape at ${LEVELS} levels with the selection bound, publishing nothing`, { timeout: 30_000 }, () => {
    const { operations, problems } = checkManifest(manifestOf(...FAN_OUTS.map((s) => SHAPES[s](LEVELS))), checksOf());
    expect(operations).toEqual([]);
    expect(problems).toEqual(
      FAN_OUTS.map((s) => expect.stringMatching(new RegExp(`^${s[0].toUpperCase()}${s.slice(1)} \\(.*\\): the document asks for more than 10000 selections`))),
    );
  });

  it('past the selection bound, prices each shape with the same estimate as the server', { timeout: 30_000 }, () => {
    const checks = checksOf({ MAX_SELECTIONS: HUGE });
    const cheap = checkManifest(manifestOf(SHAPES.doubling(LEVELS), SHAPES.inline(LEVELS), SHAPES.between(LEVELS), chain(500)), checks);
    expect(cheap.problems).toEqual([]);
    expect(cheap.operations.map((o) => [o.name, o.cost])).toEqual([
      ['Doubling', 0],
      ['Inline', 0],
      ['Between', 1],
      ['Chain', 0],
    ]);
    const costly = checkManifest(manifestOf(SHAPES.lists(LEVELS)), checks);
    expect(costly.problems).toEqual([expect.stringMatching(new RegExp(`^Lists .*: estimated cost ${listsCost(LEVELS)} is above the limit of 50000$`))]);
    expect(costly.operations).toEqual([]);
  });

  it('npm run pq:publish refuses the doubling document instead of hanging', { timeout: 90_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'foliograph-linear-'));
    try {
      const file = join(dir, 'manifest.json');
      await writeFile(file, JSON.stringify(manifestOf(SHAPES.doubling(LEVELS))));
      const env = { ...process.env, DATABASE_URL: '', PGLITE_DATA_DIR: 'memory://', NODE_ENV: 'test', LOG_LEVEL: 'silent' };
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/tools/cli/pq.ts', 'publish', file], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 60_000,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => (stdout += chunk));
      child.stderr.on('data', (chunk) => (stderr += chunk));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code, stderr).toBe(1);
      expect(stderr).toMatch(/nothing published; the manifest has problems:\n\s+Doubling \(.*\): the document asks for more than 10000 selections/);
      expect(stdout).toBe('');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
