import { GraphQLError, GraphQLScalarType, Kind } from 'graphql';
import { DateResolver, DateTimeResolver } from 'graphql-scalars';
import { DECIMAL_INPUT, formatDecimal } from '../domain/decimal.js';
import { ErrorCode } from '../errors.js';

function badDecimal(got: unknown): GraphQLError {
  const shown = typeof got === 'string' ? JSON.stringify(got.slice(0, 40)) : String(got).slice(0, 40);
  return new GraphQLError(`Decimal must be a string such as "1234.56": an optional "-", 1 to 20 digits, and at most 8 decimals after a point; got ${shown}`, {
    extensions: { code: ErrorCode.BAD_USER_INPUT },
  });
}

function parseDecimal(value: unknown): string {
  if (typeof value !== 'string' || !DECIMAL_INPUT.test(value)) throw badDecimal(value);
  return value;
}

/** Exact decimals travel as strings both ways; input is checked against the contract's pattern. */
export const DecimalScalar = new GraphQLScalarType({
  name: 'Decimal',
  description: 'An exact decimal number as a string, such as "1234.56".',
  serialize: (value) => {
    if (typeof value === 'string' || typeof value === 'number') return formatDecimal(String(value));
    throw new GraphQLError(`Decimal cannot represent ${typeof value}`);
  },
  parseValue: parseDecimal,
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) throw badDecimal(ast.kind === Kind.INT || ast.kind === Kind.FLOAT ? ast.value : ast.kind);
    return parseDecimal(ast.value);
  },
});

export const scalarResolvers = {
  Decimal: DecimalScalar,
  Date: DateResolver,
  DateTime: DateTimeResolver,
};
