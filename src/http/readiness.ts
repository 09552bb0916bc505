import type { Database } from '../db/client.js';
import type { Metrics } from '../observability/metrics.js';

/**
 * Why the server is not ready, as one word a client may see (`starting`, `database`); the cause, which
 * may name hosts or say why a login failed, goes to the log only.
 */
export class NotReady extends Error {
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`not ready: ${reason}`, options);
    this.name = 'NotReady';
  }
}

export interface ReadinessOptions {
  database: Database;
  metrics: Metrics;
  /** Whether start-up work (migrations, first seed) is done. */
  isStarted: () => boolean;
  /** What /readyz shows beside, ready or not: what the server depends on but can serve without (Redis). */
  details?: () => Record<string, string>;
}

/**
 * Whether the server can serve: started, and its database answering (a ping over the availability
 * probe's own connection, so it never waits behind requests; at once "no" while the database is known
 * to be down). /readyz asks on every call; `foliograph_ready` follows between scrapes, from a loop that
 * pings only when no statement has succeeded in the last 5 s (a busy server adds nothing to the load).
 */
export function createReadiness({ database, metrics, isStarted, details }: ReadinessOptions) {
  let loop: NodeJS.Timeout | undefined;

  async function check(): Promise<void> {
    try {
      if (!isStarted()) throw new NotReady('starting');
      if (database.availability.down) throw new NotReady('database', { cause: new Error('the database cannot be reached') });
      await Promise.race([
        database.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('the database did not answer within 2 s')), 2000).unref()),
      ]).catch((e: unknown) => {
        throw new NotReady('database', { cause: e });
      });
      metrics.ready.set(1);
    } catch (e) {
      metrics.ready.set(0);
      throw e;
    }
  }

  return {
    check,
    details: () => details?.() ?? {},
    async start() {
      void check().catch(() => {});
      loop = setInterval(() => {
        if (isStarted() && !database.availability.down && performance.now() - database.pool.lastSuccess < 5000) metrics.ready.set(1);
        else void check().catch(() => {});
      }, 5000);
      loop.unref();
    },
    async stop() {
      clearInterval(loop);
    },
  };
}

export type Readiness = ReturnType<typeof createReadiness>;
