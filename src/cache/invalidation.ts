import { sql } from 'drizzle-orm';
import type { Database, Db } from '../db/client.js';
import type { Logger } from '../observability/logger.js';
import type { HotCache } from './hot.js';
import type { RedisLink } from './redis-link.js';
import type { ResponseStore } from './store/tiers.js';

// Two channels carry invalidations. PostgreSQL's (NOTIFY/LISTEN, below): every server on a database
// hears the writers of every process, commands included. Redis's (the shared tier's, next): the
// instances sharing a Redis hear each other's drops with the generation each gave its tags, so a
// process knows which of its copies already reflect a write.

/**
 * What travels on the Redis channel: tags to drop, with the generation ("<epoch>:<clock>") the
 * invalidation gave them, or a reset (drop every private answer).
 */
export type PeerMessage = { from: string; tags: string[]; at: string } | { from: string; reset: true };

export const encodeReset = (from: string) => JSON.stringify({ from, reset: true });

/** The message of an invalidation but its generation, which the shared tier's INVALIDATE script appends (and closes). */
export const encodeInvalidation = (from: string, tags: string[]) => `${JSON.stringify({ from, tags }).slice(0, -1)},"at":"`;

export function decodePeerMessage(text: string): PeerMessage | null {
  try {
    const m = JSON.parse(text) as Partial<{ from: unknown; tags: unknown; reset: unknown; at: unknown }>;
    if (typeof m.from !== 'string') return null;
    if (m.reset === true) return { from: m.from, reset: true };
    if (Array.isArray(m.tags) && typeof m.at === 'string') return { from: m.from, tags: m.tags.filter((t): t is string => typeof t === 'string'), at: m.at };
  } catch {
    /* not ours */
  }
  return null;
}

/** Hears the other instances on the Redis channel (this process's own messages, from `origin`, are skipped). */
export function listenToPeers(link: RedisLink, channel: string, origin: string, on: { dropped(tags: string[], at: string): void; reset(): void }): void {
  link.subscribe(channel, (text) => {
    const message = decodePeerMessage(text);
    if (!message || message.from === origin) return;
    if ('reset' in message) on.reset();
    else on.dropped(message.tags, message.at);
  });
}

/** The tag that names every instrument (and its prices): a hot cache dropped whole. */
const ALL_INSTRUMENTS = 'Instrument';

/** The PostgreSQL channel on which writers announce what changed to every server on the database. */
export const INVALIDATION_CHANNEL = 'foliograph_invalidate';

/**
 * Tells every server on this database (and the commands' own process) that answers naming these
 * entities are stale: NOTIFY reaches them whatever their Redis set-up, as soon as the writer's
 * transaction commits. Payloads stay far below NOTIFY's 8,000-byte limit.
 */
export async function notifyInvalidation(db: Db, tags: string[]): Promise<void> {
  for (let i = 0; i < tags.length; i += 200) {
    await db.execute(sql`select pg_notify(${INVALIDATION_CHANNEL}, ${JSON.stringify(tags.slice(i, i + 200))})`);
  }
}

export function parseInvalidation(payload: string): string[] {
  try {
    const tags = JSON.parse(payload);
    return Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string') : [];
  } catch {
    return [];
  }
}

export interface InvalidationListenerOptions {
  database: Database;
  /** The response cache (null with caching off): it drops answers, here and in Redis. */
  store: ResponseStore | null;
  /** Instruments and latest prices shared across requests. */
  hot?: HotCache;
  /** Told of the tags of every invalidation heard (e.g. the read router: public data changed). */
  onTags?: (tags: string[]) => void;
  logger: Logger;
}

/**
 * Writers in other processes (forecasts:generate, model activation, seeds) announce stale entities
 * with NOTIFY on INVALIDATION_CHANNEL when they commit; every server LISTENs and drops them, through
 * the store (so their generations in Redis move too, and no instance copies a pre-write answer back).
 * NOTIFYs sent while the LISTEN connection was down never arrive: when it comes back, everything
 * cached here is dropped, since any of it may have missed one.
 */
export function createInvalidationListener({ database, store, hot, onTags, logger }: InvalidationListenerOptions) {
  let stop: (() => Promise<void>) | undefined;
  const drop = (tags: string[]) => {
    if (store) void store.invalidate(tags);
    else hot?.invalidate(tags);
    onTags?.(tags);
  };
  return {
    async start() {
      stop = await database
        .listen(
          INVALIDATION_CHANNEL,
          (payload) => drop(parseInvalidation(payload)),
          () => {
            logger.warn('listening for invalidations again after a lost connection: dropping every cached answer, which may have missed one');
            store?.forgetLocal();
            hot?.invalidate([ALL_INSTRUMENTS]);
          },
        )
        .catch((e) => {
          logger.warn({ err: e }, 'cannot LISTEN for invalidations: cached public data refreshes at its TTL');
          return undefined;
        });
    },
    async stop() {
      await stop?.().catch(() => {});
    },
  };
}
