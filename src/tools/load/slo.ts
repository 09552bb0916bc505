import { z } from 'zod';
import { triedOf, type LoadReport } from './run.js';

/**
 * A service-level objective a load run is judged by (`npm run load -- --slo FILE`): every stage must
 * hold each bound given; a stage that breaks one makes the run exit 1. A JSON file, for example
 * `{ "p99Ms": 1000, "maxFailedRatio": 0.01, "minSucceeded": { "trade": 0.9, "healthz": 1 } }`.
 */
const sloSchema = z
  .object({
    /** The p99 latency of every request of a stage, as the load client saw it, in ms. */
    p99Ms: z.number().positive().optional(),
    /** The largest share of a stage's answers that may be refused or fail: 429, 5xx, connection errors. */
    maxFailedRatio: z.number().min(0).max(1).optional(),
    /** Kind of request → the least share of those sent that must be answered 200 without errors (see triedOf). */
    minSucceeded: z.record(z.string().max(50), z.number().min(0).max(1)).optional(),
    /** Only these stages are judged (by name); all of them when absent. */
    stages: z.array(z.string().max(100)).max(100).optional(),
  })
  .strict();

export type Slo = z.infer<typeof sloSchema>;

/** Reads an SLO from its JSON text; throws with what is wrong. */
export function parseSlo(text: string): Slo {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`the SLO file is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const parsed = sloSchema.safeParse(json);
  if (!parsed.success) {
    throw new Error(`the SLO file is not valid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

export interface StageVerdict {
  stage: string;
  /** What the stage broke, in words; empty when it held. */
  breaches: string[];
}

/** Each judged stage against the SLO. */
export function judge(report: LoadReport, slo: Slo): StageVerdict[] {
  // a stage the SLO names that the run did not have is a breach, not a silent pass
  const missing = (slo.stages ?? [])
    .filter((name) => !report.stages.some((s) => s.name === name))
    .map((stage) => ({ stage, breaches: ['no such stage in the run'] }));
  const judged = report.stages
    .filter((s) => !slo.stages || slo.stages.includes(s.name))
    .map((s) => {
      const breaches: string[] = [];
      if (slo.p99Ms !== undefined && s.latencyMs.p99 > slo.p99Ms) breaches.push(`p99 ${s.latencyMs.p99} ms > ${slo.p99Ms} ms`);
      if (slo.maxFailedRatio !== undefined) {
        const answered = Object.values(s.statuses).reduce((a, n) => a + n, 0);
        const failed = Object.entries(s.statuses)
          .filter(([code]) => code === 'error' || code === '429' || code.startsWith('5'))
          .reduce((a, [, n]) => a + n, 0);
        const ratio = answered ? failed / answered : 0;
        if (ratio > slo.maxFailedRatio) breaches.push(`${(100 * ratio).toFixed(1)}% refused or failed > ${(100 * slo.maxFailedRatio).toFixed(1)}%`);
      }
      for (const [kind, least] of Object.entries(slo.minSucceeded ?? {})) {
        const tried = triedOf(s, kind);
        const ratio = tried ? (s.succeeded[kind] ?? 0) / tried : 0;
        if (ratio < least) breaches.push(`${kind}: ${(100 * ratio).toFixed(1)}% answered ok < ${(100 * least).toFixed(1)}%${tried ? '' : ' (none sent)'}`);
      }
      return { stage: s.name, breaches };
    });
  return [...judged, ...missing];
}
