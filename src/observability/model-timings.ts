import { sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Database, Db } from '../db/client.js';
import type { Logger } from './logger.js';
import { boundedLabel, type Metrics } from './metrics.js';

/**
 * Model runs happen in commands (forecasts:generate, seeds), not in the servers that Prometheus
 * scrapes. A command announces each run's timings on this channel when it is done, and every server
 * on the database observes them into foliograph_forecast_model_duration_seconds, so inference and
 * generation times by model and version show up beside the request metrics, live.
 */
export const MODEL_TIMING_CHANNEL = 'foliograph_model_timing';

export interface ModelTiming {
  model: string;
  version: string;
  stage: 'inference' | 'generation';
  seconds: number;
}

const timing = z.object({
  model: z.string().min(1).max(100),
  version: z.string().min(1).max(100),
  stage: z.enum(['inference', 'generation']),
  seconds: z.number().nonnegative().finite(),
});

/** Sends the timings, in payloads well under NOTIFY's 8,000 bytes. */
export async function publishModelTimings(db: Db, timings: ModelTiming[]): Promise<void> {
  for (let i = 0; i < timings.length; i += 50) {
    await db.execute(sql`select pg_notify(${MODEL_TIMING_CHANNEL}, ${JSON.stringify(timings.slice(i, i + 50))})`);
  }
}

/** The valid timings of a payload; anything malformed is dropped. */
export function parseModelTimings(payload: string): ModelTiming[] {
  try {
    const parsed = z.array(z.unknown()).parse(JSON.parse(payload));
    return parsed.flatMap((t) => {
      const ok = timing.safeParse(t);
      return ok.success ? [ok.data] : [];
    });
  } catch {
    return [];
  }
}

/**
 * Model runs of commands on this database (forecasts:generate, backtests) reach this server's
 * /metrics: they are announced with NOTIFY on MODEL_TIMING_CHANNEL, and every server observes them.
 * Model names and versions come from the database: their labels are bounded all the same.
 */
export function createModelTimingListener({ database, metrics, logger }: { database: Database; metrics: Metrics; logger: Logger }) {
  const modelLabel = boundedLabel(50);
  const versionLabel = boundedLabel(200);
  let stop: (() => Promise<void>) | undefined;
  return {
    async start() {
      stop = await database
        .listen(MODEL_TIMING_CHANNEL, (payload) => {
          for (const t of parseModelTimings(payload))
            metrics.modelDuration.observe({ model: modelLabel(t.model), version: versionLabel(t.version), stage: t.stage }, t.seconds);
        })
        .catch((e) => {
          logger.warn({ err: e }, 'cannot LISTEN for model timings: forecasts:generate runs will not show in /metrics');
          return undefined;
        });
    },
    async stop() {
      await stop?.().catch(() => {});
    },
  };
}
