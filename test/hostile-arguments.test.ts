import { sql } from 'drizzle-orm';
import fc from 'fast-check';
import {
  getNamedType,
  isInputObjectType,
  isLeafType,
  isObjectType,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLNamedType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import { ErrorCode } from '../src/errors.js';
import { buildSchema } from '../src/graphql/schema.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// A property over the whole schema: every field argument, and every field of every input object,
// is sent hostile values of every kind (wrong types, extreme and fractional numbers, NaN-like and
// very long strings, NUL and lone surrogates, deep values, lists where scalars go, unknown enum
// values, forged cursors), as a variable and as a literal, through the real HTTP server, signed in
// as a user whose portfolio has trades and positions (so private fields run their SQL). Every
// answer is data or contract errors (never INTERNAL_SERVER_ERROR, never HTTP 500), and a mutation
// that is refused changes no row. Targets come from the schema itself, so new arguments are fuzzed
// without a change here. Replay with PROPERTY_SEED=<seed>; PROPERTY_RUNS sets the runs per target.

const SEED = Number(process.env.PROPERTY_SEED ?? 20_260_112);
const RUNS = Number(process.env.PROPERTY_RUNS ?? 16);
const CODES = new Set<string>(Object.values(ErrorCode).filter((c) => c !== ErrorCode.INTERNAL_SERVER_ERROR));

/** An enum value: printed bare in a literal, as its name in JSON. */
class Enum {
  constructor(readonly name: string) {}
  toJSON() {
    return this.name;
  }
}

/** The value as a GraphQL literal (many hostile ones do not parse: that is an answer too). */
function literal(value: unknown): string {
  if (value instanceof Enum) return value.name;
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(literal).join(', ')}]`;
  return `{ ${Object.entries(value as object)
    .map(([k, v]) => `${k}: ${literal(v)}`)
    .join(', ')} }`;
}

const nest = (depth: number, inner: unknown): unknown => (depth === 0 ? inner : nest(depth - 1, depth % 2 ? [inner] : { a: inner }));
const cursor = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

const scalar = fc.oneof(
  fc.constantFrom<unknown>(
    null,
    true,
    false,
    0,
    -0,
    -1,
    1,
    1.5,
    -2.5,
    0.1,
    2 ** 31 - 1,
    2 ** 31,
    -(2 ** 31) - 1,
    2 ** 53 + 1,
    1e21,
    1e308,
    -1e308,
    5e-324,
    Number.MAX_SAFE_INTEGER,
  ),
  fc.integer(),
  fc.double(), // NaN and ±Infinity become null in JSON and bare names in a literal
  fc.constantFrom<unknown>(
    '',
    ' ',
    'NaN',
    'Infinity',
    '-Infinity',
    '-0',
    '1e999',
    '0x10',
    '+5',
    '.5',
    '5.',
    '1,5',
    '١٢٣',
    '00001',
    '1e3',
    '99999999999999999999.123456789',
    'null',
    'true',
    'BUY',
    'SELL',
    'buy',
    'HOLD',
    'BUY ',
    'USD',
    'usd',
    'EURO',
    'ewma',
    '1',
    '0',
    '-1',
    '2147483648',
    '99999999999999999999',
    '2024-01-31',
    '2024-02-30',
    '0000-01-01',
    '0001-01-01',
    '9999-12-31',
    '10000-01-01',
    '2024-01-01T24:00:00Z',
    '2024-01-01T00:00:00.000Z',
    '2024-01-01T00:00:00+14:00',
    '+275760-09-13T00:00:00.000Z',
    'yesterday',
    'a\u0000b',
    '\u0000',
    '\ud800',
    '\udfff\ud800',
    '\u202egnp',
    '\uFEFF',
    '%_%',
    "'; drop table trades; --",
    '\\',
    'x'.repeat(5000),
    'y'.repeat(95_000),
    'z'.repeat(200_000),
  ),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom(new Enum('BUY'), new Enum('SELL'), new Enum('HOLD'), new Enum('buy'), new Enum('PUBLIC'), new Enum('NaN'), new Enum('null')),
  // forged cursors of every list, in and out of shape
  fc
    .tuple(
      fc.constantFrom('instruments', 'portfolios', 'positions', 'trades', 'nope'),
      fc.oneof(
        fc.string({ maxLength: 20 }),
        fc.integer(),
        fc.double(),
        fc.record({
          at: fc.oneof(fc.string(), fc.constantFrom('2024-02-30T00:00:00.000Z', '0000-01-01T00:00:00.000Z', 'x\u0000')),
          id: fc.oneof(fc.integer(), fc.double()),
        }),
        fc.constantFrom('A\u0000', '\ud800', null, [], {}),
      ),
    )
    .map(cursor),
);

/** Cursors of the right list and shape, with what only a hand could put in them. */
const forgedCursor = fc
  .oneof(
    fc.tuple(fc.constant('instruments'), fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('A\u0000', 'A\u0001', '\ud800', 'A'.repeat(41)))),
    fc.tuple(fc.constantFrom('portfolios', 'positions'), fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, 2 ** 31, 2 ** 53))),
    fc.tuple(
      fc.constant('trades'),
      fc.record({
        at: fc.oneof(
          fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
          // Date.parse takes them all; PostgreSQL takes none
          {
            weight: 3,
            arbitrary: fc.constantFrom(
              '2024-02-30T00:00:00.000Z',
              '2023-02-29T12:00:00.000Z',
              '2024-04-31T00:00:00.000Z',
              '0000-01-01T00:00:00.000Z',
              '2024-01-01T00:00:00.000Z\u0000',
            ),
          },
        ),
        id: fc.oneof(fc.integer({ min: 1 }), fc.constantFrom(0, -1, 2 ** 53, 1.5)),
      }),
    ),
  )
  .map(cursor);

const hostile: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: scalar },
  { weight: 1, arbitrary: fc.array(scalar, { maxLength: 4 }) }, // lists where scalars go
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), scalar, { maxKeys: 3 }) }, // objects where scalars go
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1, max: 60 }), scalar).map(([d, v]) => nest(d, v)) }, // deep values
  { weight: 1, arbitrary: fc.constant(Array(10_001).fill(0)) }, // a huge one
);

/** What a target is sent: forged cursors weigh more where a cursor goes. */
const valuesFor = (argument: string) => (argument === 'after' ? fc.oneof(hostile, forgedCursor, forgedCursor) : hostile);

interface Target {
  /** e.g. `Instrument.prices(from)` or `Mutation.recordTrade(input.quantity)`. */
  name: string;
  /** The argument or input field's own name. */
  argument: string;
  /** The operation, given how the argument is written (`$v`, or a literal), and the variables. */
  request(value: unknown, asVariable: boolean): { query: string; variables?: Record<string, unknown> };
  mutation: boolean;
}

/**
 * Every argument and input field, each with a document that reaches its field along the shortest
 * path from the root, the path's other required arguments given valid values by `valid` (asked
 * when a request is built, so the fixtures may be made after the walk).
 */
function targets(valid: (coordinate: string) => unknown): Target[] {
  const schema = buildSchema();
  const validArgs = (typeName: string, field: GraphQLField<unknown, unknown>, except?: string) =>
    field.args
      .filter((a) => a.name !== except && a.type.toString().endsWith('!') && a.defaultValue === undefined)
      .map((a) => {
        const value = valid(`${typeName}.${field.name}.${a.name}`);
        if (value === undefined) throw new Error(`no valid value for the required argument ${typeName}.${field.name}(${a.name}): add it to the test's table`);
        return `${a.name}: ${literal(value)}`;
      });
  const call = (name: string, args: string[]) => (args.length ? `${name}(${args.join(', ')})` : name);
  // every field one level down that needs no argument, objects as their __typename: enough to make
  // a connection fetch its page, a portfolio value itself, a payload load what was written
  const selectionOf = (type: GraphQLNamedType) => {
    if (!isObjectType(type)) return '';
    const fields = Object.values(type.getFields()).filter((f) => f.args.every((a) => !a.type.toString().endsWith('!') || a.defaultValue !== undefined));
    return ` { ${fields.map((f) => (isLeafType(getNamedType(f.type)) ? f.name : `${f.name} { __typename }`)).join(' ')} }`;
  };

  // how to reach each object type from Query: a wrapper around a selection on it
  const reach = new Map<string, (inner: string) => string>([['Query', (inner) => inner]]);
  const queue = ['Query'];
  while (queue.length) {
    const typeName = queue.shift()!;
    const type = schema.getType(typeName);
    if (!isObjectType(type)) continue;
    for (const field of Object.values(type.getFields())) {
      const named = getNamedType(field.type);
      if (!isObjectType(named) || reach.has(named.name)) continue;
      const outer = reach.get(typeName)!;
      reach.set(named.name, (inner) => outer(`${call(field.name, validArgs(typeName, field))} { ${inner} }`));
      queue.push(named.name);
    }
  }

  const found: Target[] = [];
  for (const typeName of ['Mutation', ...reach.keys()]) {
    const type = schema.getType(typeName);
    if (!isObjectType(type)) continue;
    const mutation = typeName === 'Mutation';
    const wrap = mutation ? (inner: string) => inner : reach.get(typeName)!;
    for (const field of Object.values(type.getFields())) {
      const selection = selectionOf(getNamedType(field.type));
      const document = (arg: GraphQLArgument, written: string, declared: boolean) => {
        const args = [...validArgs(typeName, field, arg.name), `${arg.name}: ${written}`];
        const body = wrap(`${call(field.name, args)}${selection}`);
        return `${mutation ? 'mutation' : 'query'}${declared ? `($v: ${arg.type})` : ''} { ${body} }`;
      };
      for (const arg of field.args) {
        const request = (value: unknown, asVariable: boolean) =>
          asVariable ? { query: document(arg, '$v', true), variables: { v: value } } : { query: document(arg, literal(value), false) };
        found.push({ name: `${typeName}.${field.name}(${arg.name})`, argument: arg.name, request, mutation });
        const input = getNamedType(arg.type as GraphQLInputType);
        if (!isInputObjectType(input)) continue;
        for (const inputField of Object.keys(input.getFields())) {
          const withHostile = (value: unknown) => {
            const base = valid(`${typeName}.${field.name}.${arg.name}`) as Record<string, unknown> | undefined;
            if (!base) throw new Error(`no valid value for ${typeName}.${field.name}(${arg.name}): add it to the test's table`);
            return { ...base, [inputField]: value };
          };
          found.push({
            name: `${typeName}.${field.name}(${arg.name}.${inputField})`,
            argument: inputField,
            request: (value, asVariable) => request(withHostile(value), asVariable),
            mutation,
          });
        }
      }
    }
  }
  return found;
}

describe('hostile values for every argument of the schema', () => {
  let database: TestDatabase;
  let server: TestServer;
  let auth: Record<string, string>;
  const fixtures: Record<string, unknown> = {};

  beforeAll(async () => {
    database = await createTestDatabase();
    const s = seed(database.db);
    const user = await s.user();
    const instrument = await s.instrument(['100', '101', '102', '103']);
    const portfolio = await s.portfolio(user);
    for (const quantity of ['10', '5'])
      await s.trade(user.viewer, { portfolioId: portfolio.id, symbol: instrument.symbol, side: 'BUY', quantity, price: '100' });
    Object.assign(fixtures, {
      'Query.instrument.symbol': instrument.symbol,
      'Query.portfolio.id': String(portfolio.id),
      'Mutation.createPortfolio.input': { name: 'Hostile', baseCurrency: 'EUR' },
      'Mutation.recordTrade.input': { portfolioId: String(portfolio.id), symbol: instrument.symbol, side: new Enum('BUY'), quantity: '1', price: '10' },
    });
    server = await startTestServer(database, { RATE_LIMIT_COST_PER_MINUTE: '1000000000' });
    auth = { authorization: `Bearer ${await server.token(user.id)}` };
  });
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
  });

  const counts = async () => {
    const [row] = await rows<Record<string, number>>(
      database.db,
      sql`select (select count(*) from trades)::int as trades, (select count(*) from portfolios)::int as portfolios, (select count(*) from positions)::int as positions`,
    );
    return row;
  };

  // valid values of required arguments, made in beforeAll and read only when a request is built
  const all = targets((coordinate) => fixtures[coordinate]);

  it('finds every argument and input field of the schema', () => {
    const names = all.map((t) => t.name);
    for (const name of [
      'Query.instruments(after)',
      'Instrument.prices(from)',
      'Portfolio.trades(after)',
      'User.portfolios(first)',
      'Mutation.recordTrade(input.executedAt)',
      'Mutation.createPortfolio(input.name)',
    ]) {
      expect(names).toContain(name);
    }
  });

  for (const target of all) {
    it(`answers hostile ${target.name} with contract errors only, and a refused mutation changes nothing`, async () => {
      await fc.assert(
        fc.asyncProperty(valuesFor(target.argument), fc.boolean(), async (value, asVariable) => {
          const before = target.mutation ? await counts() : null;
          const res = await server.post(target.request(value, asVariable), auth);
          const shown = `${target.name} ${asVariable ? 'variable' : 'literal'} → ${res.status} ${JSON.stringify(res.body).slice(0, 500)}`;
          expect(res.status, shown).toBeLessThan(500);
          for (const error of res.body.errors ?? []) expect(CODES.has(error.extensions?.code), shown).toBe(true);
          if (before && res.body.errors?.length) expect(await counts(), shown).toEqual(before);
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: !process.env.PROPERTY_SHRINK },
      );
    });
  }
});
