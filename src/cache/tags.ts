import type { CacheEntityRecord } from '@envelop/response-cache';
import type { Viewer } from '../admission/tokens.js';

// The only place cache tags and session names are built or read. A tag names what an answer holds:
// an entity (`Portfolio:7`, `Instrument:3`), a whole type (`Instrument`), or a caller's session
// (`Session:user:7`, which every private answer of that caller carries, lists included).

const SESSION = 'Session:';
const USER = 'user:';

/** The cache session of a caller's private answers: `user:<id>`, or one shared by anonymous callers (whose answers hold no private data). */
export const sessionOf = (viewer: Viewer): string => (viewer.kind === 'user' ? `${USER}${viewer.userId}` : 'anonymous');

/** The tag every private answer of a session carries. */
export const sessionTag = (session: string): string => `${SESSION}${session}`;

/** The tag of a user's session: what their write invalidates. */
export const userSessionTag = (userId: number): string => sessionTag(`${USER}${userId}`);

/** The session a tag names (`user:7` for `Session:user:7`), or null for an entity's tag. */
export const sessionOfTag = (tag: string): string | null => (tag.startsWith(SESSION) ? tag.slice(SESSION.length) : null);

/** The tag of an entity envelop saw in an answer (or of a whole type, without an id). */
export const tagOfEntity = (e: CacheEntityRecord): string => (e.id === undefined || e.id === null ? e.typename : `${e.typename}:${e.id}`);

/** The tag of one instrument: what its new prices or forecasts invalidate. */
export const instrumentTag = (id: number): string => `Instrument:${id}`;

/** For a tag naming instruments or prices: the instrument's id, or 'all' for the whole type; null for any other tag. */
export function instrumentOfTag(tag: string): number | 'all' | null {
  const [type, id] = tag.split(':');
  if (type !== 'Instrument' && type !== 'Price') return null;
  if (id === undefined) return 'all';
  const n = Number(id);
  return Number.isSafeInteger(n) ? n : null;
}

/** The kind of a tag, for metrics: `Session`, `Instrument`, `Portfolio`, ... */
export const typeOfTag = (tag: string): string => tag.split(':')[0];
