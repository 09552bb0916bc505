import { Decimal as DecimalJs } from 'decimal.js';

/**
 * Exact decimal arithmetic for money and quantities. Precision is far above what numeric(38, 8) can
 * hold, so no intermediate result is ever rounded; results are rounded half-even to 8 places.
 */
export const Decimal = DecimalJs.clone({ precision: 120, rounding: DecimalJs.ROUND_HALF_EVEN, toExpNeg: -40, toExpPos: 60 });
export type Decimal = InstanceType<typeof Decimal>;

/** What a Decimal input must look like (CONTRACT.md): no sign but '-', no exponent, ≤ 20.8 digits. */
export const DECIMAL_INPUT = /^-?[0-9]{1,20}(\.[0-9]{1,8})?$/;

export const SCALE = 8;

// Text that is already canonical: no leading zeros, at most 8 decimals, none of them trailing, and no "-0".
const CANONICAL = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]{0,7}[1-9])?$/;

/** The canonical text of a value: rounded half-even to 8 places, without trailing zeros. */
export function formatDecimal(value: Decimal | string): string {
  // what PostgreSQL returns with trim_scale is canonical already: most values served never touch decimal.js
  if (typeof value === 'string' && CANONICAL.test(value) && value !== '-0') return value;
  const d = typeof value === 'string' ? new Decimal(value) : value;
  const text = d.toDecimalPlaces(SCALE, Decimal.ROUND_HALF_EVEN).toFixed();
  return text === '-0' ? '0' : text;
}
