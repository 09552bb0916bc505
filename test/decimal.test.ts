import { describe, expect, it } from 'vitest';
import { Decimal as DecimalJs } from 'decimal.js';
import { GraphQLError, parseConstValue } from 'graphql';
import { Decimal, formatDecimal } from '../src/domain/decimal.js';
import { applyTrade, type Holding } from '../src/domain/trades.js';
import { DecimalScalar } from '../src/graphql/scalars.js';

// Independent arithmetic for expected values: far more precision than any case below needs.
const Exact = DecimalJs.clone({ precision: 200, rounding: DecimalJs.ROUND_HALF_EVEN });
const roundHalfEven8 = (v: DecimalJs) => v.toDecimalPlaces(8, DecimalJs.ROUND_HALF_EVEN).toFixed();

/** The `extensions.code` a call fails with, or 'NO ERROR'. */
function codeOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e instanceof GraphQLError ? e.extensions.code : `not a GraphQLError: ${String(e)}`;
  }
  return 'NO ERROR';
}

const ACCEPTED = [
  '0',
  '-0',
  '5',
  '-5',
  '007',
  '1234.56',
  '-1234.56',
  '0.00000001',
  '-0.00000001',
  '12345678901234567890', // 20 integer digits
  '-12345678901234567890.12345678', // 20 digits and 8 decimals
  '99999999999999999999.99999999',
];

const REFUSED_STRINGS: Array<[string, string]> = [
  ['a plus sign', '+5'],
  ['no digit before the point', '.5'],
  ['no digit after the point', '5.'],
  ['an exponent', '1e5'],
  ['a capital exponent', '1E5'],
  ['an exponent with a point', '1.5e-3'],
  ['NaN', 'NaN'],
  ['Infinity', 'Infinity'],
  ['the empty string', ''],
  ['a leading space', ' 5'],
  ['a trailing space', '5 '],
  ['a trailing newline', '5\n'],
  ['a lone minus', '-'],
  ['two minus signs', '--5'],
  ['a thousands separator', '1,000'],
  ['a decimal comma', '1,5'],
  ['hexadecimal', '0x10'],
  ['an underscore separator', '1_000'],
  ['two points', '1.2.3'],
  ['21 integer digits', '123456789012345678901'],
  ['21 integer digits, negative', '-100000000000000000000'],
  ['9 decimals', '0.123456789'],
  ['9 decimals of zeros', '1.000000000'],
  ['non-ASCII digits', '١٢٣'],
];

describe('Decimal scalar: parseValue (variables)', () => {
  it.each(ACCEPTED)('accepts %j and returns it unchanged', (text) => {
    expect(DecimalScalar.parseValue(text)).toBe(text);
  });

  it.each(REFUSED_STRINGS)('refuses %s (%j) with BAD_USER_INPUT', (_, text) => {
    expect(codeOf(() => DecimalScalar.parseValue(text))).toBe('BAD_USER_INPUT');
  });

  it.each([
    ['an integer number', 5],
    ['a float number', 5.5],
    ['zero as a number', 0],
    ['NaN as a number', Number.NaN],
    ['a boolean', true],
    ['an object', { value: '5' }],
    ['an array', ['5']],
    ['a bigint', 5n],
  ])('refuses %s (not a string) with BAD_USER_INPUT', (_, value) => {
    expect(codeOf(() => DecimalScalar.parseValue(value))).toBe('BAD_USER_INPUT');
  });

  it('says what a Decimal must look like in its message', () => {
    try {
      DecimalScalar.parseValue('1e3');
      expect.unreachable('1e3 was accepted');
    } catch (e) {
      expect((e as Error).message).toMatch(/Decimal/);
      expect((e as Error).message).toContain('1e3');
    }
  });
});

describe('Decimal scalar: parseLiteral (inline in the document)', () => {
  const literal = (source: string) => DecimalScalar.parseLiteral(parseConstValue(source), undefined);

  it.each(ACCEPTED)('accepts the string literal %j', (text) => {
    expect(literal(JSON.stringify(text))).toBe(text);
  });

  it.each(REFUSED_STRINGS)('refuses the string literal of %s (%j) with BAD_USER_INPUT', (_, text) => {
    expect(codeOf(() => literal(JSON.stringify(text)))).toBe('BAD_USER_INPUT');
  });

  it.each([
    ['an Int literal', '5'],
    ['a negative Int literal', '-5'],
    ['a Float literal', '5.5'],
    ['a Float literal with an exponent', '1e5'],
    ['a Boolean literal', 'true'],
    ['an enum literal NaN', 'NaN'],
    ['a list literal', '["5"]'],
    ['an object literal', '{ value: "5" }'],
  ])('refuses %s (%s) with BAD_USER_INPUT', (_, source) => {
    expect(codeOf(() => literal(source))).toBe('BAD_USER_INPUT');
  });
});

describe('Decimal scalar: serialize', () => {
  it.each([
    ['175.00000000', '175'],
    ['100.10000000', '100.1'],
    ['-0.00000000', '0'],
    ['0.00000001', '0.00000001'],
    ['123456789012345678901234567890.12345678', '123456789012345678901234567890.12345678'],
  ])('writes the database value %j as %j', (stored, shown) => {
    expect(DecimalScalar.serialize(stored)).toBe(shown);
  });

  it('writes numbers as plain decimal strings, never with an exponent', () => {
    expect(DecimalScalar.serialize(0.1)).toBe('0.1');
    expect(DecimalScalar.serialize(1e21)).toBe('1000000000000000000000');
    expect(DecimalScalar.serialize(1e-7)).toBe('0.0000001');
  });
});

describe('formatDecimal', () => {
  it.each([
    // exact ties at the 9th decimal go to the even neighbour
    ['0.000000005', '0'],
    ['0.000000015', '0.00000002'],
    ['0.000000025', '0.00000002'],
    ['0.000000035', '0.00000004'],
    ['1.000000005', '1'],
    ['1.000000015', '1.00000002'],
    ['0.123456785', '0.12345678'],
    ['0.123456775', '0.12345678'],
    ['-0.000000015', '-0.00000002'],
    ['-0.000000025', '-0.00000002'],
    // not ties: ordinary rounding
    ['0.0000000025', '0'], // 2.5e-9
    ['0.0000000050000001', '0.00000001'],
    ['0.0000000049999999', '0'],
    ['1.999999995', '2'],
    ['1.999999994999', '1.99999999'],
    // no negative zero
    ['-0.000000005', '0'],
    ['-0.000000001', '0'],
    ['-0', '0'],
    // trailing zeros go
    ['175.00000000', '175'],
    ['100.10', '100.1'],
    ['0.50000000', '0.5'],
    ['10', '10'],
    ['-12.340', '-12.34'],
  ])('formats %j as %j', (input, expected) => {
    expect(formatDecimal(input)).toBe(expected);
    expect(formatDecimal(new Decimal(input))).toBe(expected);
  });

  it.each([
    ['1e-7', '0.0000001'],
    ['1e-8', '0.00000001'],
    ['2.5e-9', '0'],
    ['1.5e-8', '0.00000002'],
    ['1e-30', '0'],
    ['1e21', '1000000000000000000000'],
    ['1e30', '1' + '0'.repeat(30)],
    ['1.23456789e35', '123456789' + '0'.repeat(27)],
    ['1e70', '1' + '0'.repeat(70)],
    ['-1e70', '-1' + '0'.repeat(70)],
  ])('never writes an exponent: %s is %j', (input, expected) => {
    const out = formatDecimal(new Decimal(input));
    expect(out).toBe(expected);
    expect(out).not.toMatch(/e/i);
  });

  it('rounds the results of non-terminating divisions half-even to 8 places', () => {
    expect(formatDecimal(new Decimal(1).dividedBy(3))).toBe('0.33333333');
    expect(formatDecimal(new Decimal(2).dividedBy(3))).toBe('0.66666667');
    expect(formatDecimal(new Decimal(5).dividedBy(3))).toBe('1.66666667');
    expect(formatDecimal(new Decimal(-2).dividedBy(3))).toBe('-0.66666667');
  });
});

// Holdings are compared with toMatchObject, so a Holding may carry more than these three fields.
describe('applyTrade', () => {
  // an input holding, whose exact cost basis is quantity × averageCost
  const holding = (quantity: string, averageCost: string, realizedPnl = '0'): Holding => ({
    quantity,
    averageCost,
    costBasis: new Decimal(quantity).times(averageCost).toFixed(),
    realizedPnl,
  });
  // what a result must show (its exact cost basis is checked where it matters)
  const expected = (quantity: string, averageCost: string, realizedPnl = '0') => ({ quantity, averageCost, realizedPnl });
  const buys = (...legs: Array<[string, string]>) => legs.reduce<Holding | null>((h, [q, p]) => applyTrade(h, 'BUY', q, p), null) as Holding;

  it('opens a position at the price of the first buy', () => {
    expect(applyTrade(null, 'BUY', '10', '100')).toMatchObject(expected('10', '100'));
  });

  it('moves the average cost to the quantity-weighted mean on a second buy (10 @ 100 + 30 @ 200 -> 175)', () => {
    expect(buys(['10', '100'], ['30', '200'])).toMatchObject(expected('40', '175'));
  });

  it('keeps fractional quantities and prices exact', () => {
    // 0.5 @ 10.1 + 1.25 @ 20.02 = (5.05 + 25.025) / 1.75 = 17.18571428571...
    expect(buys(['0.5', '10.1'], ['1.25', '20.02'])).toMatchObject(expected('1.75', '17.18571429'));
  });

  it('rounds a non-terminating average half-even to 8 places (1 @ 1 + 2 @ 2 = 5/3)', () => {
    expect(buys(['1', '1'], ['2', '2'])).toMatchObject(expected('3', '1.66666667'));
  });

  it('rounds an average that falls exactly on a tie to the even neighbour', () => {
    // (0.00000001 + 0.00000002) / 2 = 0.000000015 -> 0.00000002; (0.00000002 + 0.00000003) / 2 = 0.000000025 -> 0.00000002
    expect(buys(['1', '0.00000001'], ['1', '0.00000002'])).toMatchObject(expected('2', '0.00000002'));
    expect(buys(['1', '0.00000002'], ['1', '0.00000003'])).toMatchObject(expected('2', '0.00000002'));
  });

  it('gives the exact weighted mean over several buys, not a mean of rounded means (1@1, 2@2, 3@3 = 14/6)', () => {
    // 14/6 = 2.3333333333... -> 2.33333333. Carrying the rounded 1.66666667 forward gives 14.00000001/6 = 2.333333335 -> 2.33333334.
    expect(buys(['1', '1'], ['2', '2'], ['3', '3'])).toMatchObject(expected('6', '2.33333333'));
  });

  it('gives the same average cost whatever the order of the buys', () => {
    const legs = Array.from({ length: 30 }, (_, i): [string, string] => [String(i + 1), `${100 + (i % 7)}.${String((i * 37) % 100).padStart(2, '0')}`]);
    const cost = legs.reduce((s, [q, p]) => s.plus(new Exact(q).times(p)), new Exact(0));
    const units = legs.reduce((s, [q]) => s.plus(q), new Exact(0));
    const want = expected(units.toFixed(), roundHalfEven8(cost.dividedBy(units)));
    expect(buys(...legs)).toMatchObject(want);
    expect(buys(...[...legs].reverse())).toMatchObject(want);
  });

  it('keeps the average cost on a sell and realises (price - average cost) x quantity', () => {
    const afterGain = applyTrade(holding('40', '175'), 'SELL', '10', '200');
    expect(afterGain).toMatchObject(expected('30', '175', '250'));
    const afterLoss = applyTrade(afterGain, 'SELL', '5', '100');
    expect(afterLoss).toMatchObject(expected('25', '175', '-125'));
  });

  it('realises fractional PnL exactly', () => {
    // 0.3 x (10.07 - 1.66666667) = 2.520999999
    expect(applyTrade(holding('3', '1.66666667'), 'SELL', '0.3', '10.07')).toMatchObject(expected('2.7', '1.66666667', '2.521'));
  });

  it('leaves quantity 0 (and the average cost) after selling exactly the holding', () => {
    expect(applyTrade(holding('40', '175'), 'SELL', '40', '180')).toMatchObject(expected('0', '175', '200'));
  });

  it('buys into a closed position at the new price', () => {
    expect(applyTrade(holding('0', '175', '200'), 'BUY', '2', '50')).toMatchObject(expected('2', '50', '200'));
  });

  it.each([
    ['more than held', holding('40', '175'), '40.00000001'],
    ['anything from a closed position', holding('0', '175'), '1'],
    ['anything without a position', null, '0.00000001'],
  ])('refuses to sell %s with BAD_USER_INPUT', (_, current, quantity) => {
    expect(codeOf(() => applyTrade(current, 'SELL', quantity, '100'))).toBe('BAD_USER_INPUT');
  });

  it('names the quantity and the holding when refusing an oversell', () => {
    try {
      applyTrade(holding('3', '1'), 'SELL', '4', '1', 'ACME');
      expect.unreachable('oversell accepted');
    } catch (e) {
      expect((e as GraphQLError).extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'quantity' });
      expect((e as Error).message).toContain('ACME');
      expect((e as Error).message).toContain('holds 3');
    }
  });

  it('refuses a buy that takes the position to 10^30 units or more', () => {
    const nines = '9'.repeat(30);
    expect(codeOf(() => applyTrade(holding(nines, '1'), 'BUY', '1', '1'))).toBe('BAD_USER_INPUT');
    expect(codeOf(() => applyTrade(holding('1' + '0'.repeat(29), '1'), 'BUY', '9' + '0'.repeat(29), '1'))).toBe('BAD_USER_INPUT');
  });

  it('accepts a buy that stays just below 10^30 units', () => {
    const justBelow = '9'.repeat(29) + '8';
    expect(applyTrade(holding(justBelow, '2'), 'BUY', '1', '2')).toMatchObject(expected('9'.repeat(30), '2'));
  });

  it('refuses a sell whose realised PnL could not be stored (|PnL| >= 10^30) with BAD_USER_INPUT', () => {
    // 10^19 units bought at 1 and sold at 99999999999999999999: PnL ~ 10^39, over numeric(38, 8)
    const units = '1' + '0'.repeat(19);
    expect(codeOf(() => applyTrade(holding(units, '1'), 'SELL', units, '9'.repeat(20)))).toBe('BAD_USER_INPUT');
  });
});

describe('formatDecimal on text that may already be canonical', () => {
  it('passes canonical text through and canonicalises the rest, exactly as decimal.js would', () => {
    const cases = [
      '0',
      '7',
      '-7',
      '12.5',
      '0.00000001',
      '-0.5',
      '123456789012345678901234567890.12345678',
      '0.10',
      '10.00000000',
      '-0',
      '-0.00000000',
      '007',
      '1.123456785',
      '1.123456795',
      '00.5',
      '.5',
      '5.',
      '1e3',
    ];
    for (const text of cases) {
      let expected: string;
      try {
        const d = new DecimalJs(text);
        const fixed = d.toDecimalPlaces(8, DecimalJs.ROUND_HALF_EVEN).toFixed();
        expected = fixed === '-0' ? '0' : fixed;
      } catch {
        expected = 'error';
      }
      let got: string;
      try {
        got = formatDecimal(text);
      } catch {
        got = 'error';
      }
      expect(got, text).toBe(expected);
    }
  });
});
