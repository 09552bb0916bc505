// What the dashboard benchmark asks each server, and how their answers are brought to one shape so
// that "every server answered the same data" can be checked before any figure is printed.

/** foliograph's dashboard (also the body the floor and the LRU server receive). */
export const FOLIOGRAPH_DASHBOARD = `query Dashboard { viewer { portfolios(first: 20) { nodes { id name
  positions(first: 200) { nodes { quantity averageCost instrument { symbol latestPrice { date close }
  latestForecast(horizonDays: 21) { expectedReturn lower upper } } } } } } } }`;

/**
 * The same data from PostGraphile v5 (Amber preset, simplify-inflection) on foliograph's tables: the
 * user by id, `$m` the default forecast model's active version.
 */
export const POSTGRAPHILE_DASHBOARD = `query Dashboard($id: Int!, $m: Int!) { user(rowId: $id) {
  portfoliosByOwnerId(first: 20, orderBy: PRIMARY_KEY_ASC) { nodes { rowId name
    positions(first: 200, orderBy: PRIMARY_KEY_ASC) { nodes { quantity averageCost instrument { symbol
      prices(first: 1, orderBy: DATE_DESC) { nodes { date close } }
      forecasts(first: 1, condition: { modelId: $m, horizonDays: 21 }, orderBy: AS_OF_DESC) { nodes { expectedReturn lower95 upper95 } } } } } } } } }`;

/** A dashboard as every server's answer is compared: foliograph's names, decimals in canonical form. */
export interface Dashboard {
  portfolios: {
    id: string;
    name: string;
    positions: {
      quantity: string;
      averageCost: string;
      symbol: string;
      latestPrice: { date: string; close: string } | null;
      latestForecast: { expectedReturn: number; lower: number; upper: number } | null;
    }[];
  }[];
}

const DECIMAL = /^(-?)(\d+)(?:\.(\d*))?$/;

/** "0010.50000000" and "10.5" are the same decimal: the shortest text of it (no trailing zeros, no "-0"). */
export function canonicalDecimal(text: string): string {
  const m = DECIMAL.exec(text);
  if (!m) return text;
  const whole = m[2].replace(/^0+(?=\d)/, '');
  const fraction = (m[3] ?? '').replace(/0+$/, '');
  const digits = fraction ? `${whole}.${fraction}` : whole;
  return m[1] && /[1-9]/.test(digits) ? `-${digits}` : digits;
}

/** The data of a GraphQL answer; throws, naming its errors, when there is none to compare. */
function dataOf(answer: any): any {
  if (answer?.errors?.length) throw new Error(`answered errors: ${answer.errors.map((e: any) => e.message).join('; ')}`);
  if (!answer?.data) throw new Error('answered no data');
  return answer.data;
}

/** foliograph's answer (and the floor's and the LRU server's, which answer in its shape). */
export function fromFoliograph(answer: any): Dashboard {
  const viewer = dataOf(answer).viewer;
  if (!viewer) throw new Error('answered viewer: null');
  return {
    portfolios: viewer.portfolios.nodes.map((p: any) => ({
      id: String(p.id),
      name: p.name,
      positions: p.positions.nodes.map((pos: any) => ({
        quantity: canonicalDecimal(pos.quantity),
        averageCost: canonicalDecimal(pos.averageCost),
        symbol: pos.instrument.symbol,
        latestPrice: pos.instrument.latestPrice && { date: pos.instrument.latestPrice.date, close: canonicalDecimal(pos.instrument.latestPrice.close) },
        latestForecast: pos.instrument.latestForecast && {
          expectedReturn: pos.instrument.latestForecast.expectedReturn,
          lower: pos.instrument.latestForecast.lower,
          upper: pos.instrument.latestForecast.upper,
        },
      })),
    })),
  };
}

export function fromPostGraphile(answer: any): Dashboard {
  const user = dataOf(answer).user;
  if (!user) throw new Error('answered user: null');
  return {
    portfolios: user.portfoliosByOwnerId.nodes.map((p: any) => ({
      id: String(p.rowId),
      name: p.name,
      positions: p.positions.nodes.map((pos: any) => {
        const [price] = pos.instrument.prices.nodes;
        const [forecast] = pos.instrument.forecasts.nodes;
        return {
          quantity: canonicalDecimal(pos.quantity),
          averageCost: canonicalDecimal(pos.averageCost),
          symbol: pos.instrument.symbol,
          latestPrice: price ? { date: price.date, close: canonicalDecimal(price.close) } : null,
          latestForecast: forecast ? { expectedReturn: forecast.expectedReturn, lower: forecast.lower95, upper: forecast.upper95 } : null,
        };
      }),
    })),
  };
}

/**
 * Where two dashboards differ, as `path: expected vs actual` lines (at most `limit`); none when they
 * are the same data. Lists that differ in length say so once, and their common items are compared.
 */
export function differences(expected: unknown, actual: unknown, limit = 5): string[] {
  const out: string[] = [];
  const show = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v));
  const walk = (a: unknown, b: unknown, path: string) => {
    if (out.length >= limit) return;
    if (Array.isArray(a) && Array.isArray(b)) {
      if (a.length !== b.length) out.push(`${path}: ${a.length} items vs ${b.length}`);
      for (let i = 0; i < Math.min(a.length, b.length); i++) walk(a[i], b[i], `${path}[${i}]`);
      return;
    }
    if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
      const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
      for (const k of keys) walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
      return;
    }
    if (!Object.is(a, b)) out.push(`${path || '(answer)'}: ${show(a)} vs ${show(b)}`);
  };
  walk(expected, actual, '');
  return out;
}
