import { isIPv6 } from 'node:net';
import type { AuthenticatedPartner } from './partners.js';
import type { Viewer } from './tokens.js';

/** How many leading bits of an IPv6 address one anonymous caller owns: a site's usual allocation. */
export const IPV6_CALLER_PREFIX = 64;

/**
 * The budget key of an anonymous client's address. An IPv4 address is one caller; so is a whole
 * IPv6 /64, since any host is handed 2^64 addresses of its own and could take a fresh one (and a
 * fresh budget) per request. An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, a dual-stack socket's
 * view of an IPv4 peer) is its IPv4 address. Returns e.g. `203.0.113.7` or `2001:db8:1:2::/64`.
 */
export function addressCaller(address: string | undefined): string {
  if (!address) return 'unknown';
  const bare = address.split('%')[0].toLowerCase(); // a zone id (fe80::1%eth0) names an interface, not a host
  if (!isIPv6(bare)) return bare;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(bare);
  if (mapped) return mapped[1];
  // an embedded IPv4 tail (64:ff9b::1.2.3.4) fills the last two groups, which the prefix never reaches
  const groups = (part: string) => (part ? part.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])) : []);
  const [head, tail] = bare.includes('::') ? bare.split('::') : [bare, undefined];
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const full = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const prefix = full.slice(0, IPV6_CALLER_PREFIX / 16).map((g) => parseInt(g, 16).toString(16));
  return `${prefix.join(':')}::/${IPV6_CALLER_PREFIX}`;
}

/** Who is calling, settled before anything runs: on whose behalf, which partner, and whose budget pays. */
export interface Caller {
  viewer: Viewer;
  /** The partner of the request's API key, if any. */
  partner: AuthenticatedPartner | null;
  /** Whose cost budget pays: `partner:<id>` (whoever it acts for), `user:<id>`, or `ip:<address>`. */
  budgetKey: string;
  /** Whether the token was delegated to the partner (its grant is checked on every request). */
  delegated?: boolean;
  /** When the request's token expires (ms), if it has one that says. */
  expiresAt?: number | null;
}

export function budgetKeyOf(viewer: Viewer, partner: AuthenticatedPartner | null, address: string | undefined): string {
  if (partner) return `partner:${partner.id}`;
  return viewer.kind === 'user' ? `user:${viewer.userId}` : `ip:${addressCaller(address)}`;
}
