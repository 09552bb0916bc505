import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { getOperationAST, parse, specifiedRules, validate, type GraphQLSchema, type ValidationRule } from 'graphql';
import { z } from 'zod';
import { rows, type Db } from '../db/client.js';
import type { CostEstimator } from '../limits/cost-estimate.js';

export const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Apollo's persisted query manifest, as @apollo/generate-persisted-query-manifest writes it. */
export const manifestSchema = z.object({
  format: z.literal('apollo-persisted-query-manifest'),
  version: z.literal(1),
  operations: z
    .array(
      z.object({
        id: z.string().regex(/^[a-f0-9]{64}$/, 'an id is the SHA-256 of the body, 64 hex digits'),
        name: z.string().min(1).max(200),
        type: z.enum(['query', 'mutation', 'subscription']),
        body: z.string().min(1).max(100_000),
      }),
    )
    .max(10_000),
});
export type Manifest = z.infer<typeof manifestSchema>;

export interface DocumentChecks {
  schema: GraphQLSchema;
  estimator: CostEstimator;
  rules: ValidationRule[];
  maxCost: number;
}

export interface CheckedOperation {
  id: string;
  name: string;
  type: string;
  body: string;
  cost: number;
}

/** Why a document cannot be trusted, or its estimated cost (variables at their defaults). */
export function checkDocument(body: string, checks: DocumentChecks): { problems: string[]; cost: number; type?: string } {
  let document;
  try {
    document = parse(body);
  } catch (e) {
    return { problems: [`does not parse: ${(e as Error).message}`], cost: 0 };
  }
  const errors = validate(checks.schema, document, [...specifiedRules, ...checks.rules]);
  if (errors.length) return { problems: errors.map((e) => e.message), cost: 0 };
  const operations = document.definitions.filter((d) => d.kind === 'OperationDefinition');
  if (operations.length !== 1) return { problems: ['a trusted document holds exactly one operation'], cost: 0 };
  const operation = getOperationAST(document)!;
  const { cost } = checks.estimator.estimate(document, operation, {});
  if (cost > checks.maxCost) return { problems: [`estimated cost ${cost} is above the limit of ${checks.maxCost}`], cost };
  return { problems: [], cost, type: operation.operation };
}

/** Checks a whole manifest: every id against its body, every body against the schema and the limits. */
export function checkManifest(input: unknown, checks: DocumentChecks): { operations: CheckedOperation[]; problems: string[] } {
  const parsed = manifestSchema.safeParse(input);
  if (!parsed.success) return { operations: [], problems: parsed.error.issues.map((i) => `${i.path.join('.') || 'manifest'}: ${i.message}`) };
  const problems: string[] = [];
  const operations: CheckedOperation[] = [];
  for (const op of parsed.data.operations) {
    const label = `${op.name} (${op.id.slice(0, 12)}…)`;
    if (sha256(op.body) !== op.id) {
      problems.push(`${label}: the id is not the SHA-256 of the body`);
      continue;
    }
    const checked = checkDocument(op.body, checks);
    if (checked.problems.length) problems.push(...checked.problems.map((p) => `${label}: ${p}`));
    else if (checked.type !== op.type) problems.push(`${label}: declared a ${op.type}, the body is a ${checked.type}`);
    else operations.push({ ...op, cost: checked.cost });
  }
  // all or nothing: a manifest with any problem offers nothing to publish
  return { operations: problems.length ? [] : operations, problems };
}

export interface PublishResult {
  published: number;
  unchanged: number;
}

/**
 * Stores a checked manifest's operations as trusted documents for one partner, or every partner when
 * `partnerId` is null, all or none. Publishing again changes nothing (and brings back a retired one).
 */
export async function publishOperations(db: Db, operations: CheckedOperation[], partnerId: number | null): Promise<PublishResult> {
  if (operations.length === 0) return { published: 0, unchanged: 0 };
  return db.transaction(async (tx) => {
    let published = 0;
    for (const op of operations) {
      const [row] = await rows<{ inserted: boolean }>(
        tx as unknown as Db,
        sql`insert into persisted_documents as d (sha256, partner_id, name, type, body, cost)
            values (${op.id}, ${partnerId}, ${op.name}, ${op.type}, ${op.body}, ${op.cost})
            on conflict (sha256, (coalesce(partner_id, 0))) do update
              set retired_at = null, name = excluded.name, cost = excluded.cost
              where d.retired_at is not null or d.name <> excluded.name or d.cost <> excluded.cost
            returning (xmax = 0) as inserted`,
      );
      if (row) published++;
    }
    return { published, unchanged: operations.length - published };
  });
}

export interface TrustedDocument {
  sha256: string;
  name: string;
  type: string;
  body: string;
}

/** The live trusted document with this hash for the partner (its own, or one published for all). */
export async function trustedDocument(db: Db, hash: string, partnerId: number): Promise<TrustedDocument | null> {
  const [row] = await rows<TrustedDocument>(
    db,
    sql`select sha256, name, type, body from persisted_documents
        where sha256 = ${hash} and (partner_id = ${partnerId} or partner_id is null) and retired_at is null
        order by partner_id nulls last limit 1`,
  );
  return row ?? null;
}

export interface PublishedListing {
  sha256: string;
  name: string;
  type: string;
  partner: string | null;
  cost: number;
  publishedAt: string;
  retired: boolean;
}

export async function listDocuments(db: Db, partnerId?: number): Promise<PublishedListing[]> {
  return rows<PublishedListing>(
    db,
    sql`select d.sha256, d.name, d.type, p.name as partner, d.cost, to_json(d.created_at) #>> '{}' as "publishedAt", d.retired_at is not null as retired
        from persisted_documents d left join partners p on p.id = d.partner_id
        where ${partnerId ?? null}::int is null or d.partner_id = ${partnerId ?? null}::int
        order by p.name nulls first, d.name`,
  );
}

/** Retires a document (for one partner, or the one published for all); returns how many. */
export async function retireDocument(db: Db, hash: string, partnerId: number | null): Promise<number> {
  const found = await rows<{ id: number }>(
    db,
    sql`update persisted_documents set retired_at = now()
        where sha256 = ${hash} and coalesce(partner_id, 0) = ${partnerId ?? 0} and retired_at is null returning id`,
  );
  return found.length;
}

export interface DocumentReport extends PublishedListing {
  problems: string[];
  /** The cost under the schema and weights of the working tree. */
  currentCost: number;
}

/** Every live published document against the schema in the working tree: still valid, and its cost now. */
export async function checkPublished(db: Db, checks: DocumentChecks): Promise<DocumentReport[]> {
  const live = await rows<PublishedListing & { body: string }>(
    db,
    sql`select d.sha256, d.name, d.type, p.name as partner, d.cost, to_json(d.created_at) #>> '{}' as "publishedAt", false as retired, d.body
        from persisted_documents d left join partners p on p.id = d.partner_id where d.retired_at is null order by p.name nulls first, d.name`,
  );
  return live.map(({ body, ...doc }) => {
    const checked = checkDocument(body, checks);
    return { ...doc, problems: checked.problems, currentCost: checked.cost };
  });
}
