import { and, desc, eq, sql } from 'drizzle-orm';
import { rows, type Db } from '../../db/client.js';
import { forecastModelActivations, forecastModels, type ForecastModelRow } from '../../db/schema.js';
import { notifyInvalidation } from '../../cache/invalidation.js';
import { instrumentTag } from '../../cache/tags.js';
import { MODELS, modelByName, parseParameters } from './models/index.js';

/**
 * The model registry: each row of forecast_models is a version of a built-in model (its name names
 * the implementation in ./models) with its own parameters; at most one version per name is active,
 * and forecast_model_activations remembers every switch so that a rollback knows where to return.
 * Activation and rollback change what `latestForecast` answers at once, on every server: the loaders
 * read the active flag on each request, and cached answers about instruments are invalidated.
 */

export class RegistryError extends Error {}

/** Registers each built-in model's default version, and activates it where its name has no active version yet. */
export async function ensureBuiltInModels(db: Db): Promise<void> {
  for (const model of Object.values(MODELS)) {
    const parameters = JSON.stringify(parseParameters(model, {}));
    await db.insert(forecastModels).values({ name: model.name, version: model.version, active: false, parameters }).onConflictDoNothing();
    await db.transaction(async (tx) => {
      const activated = await rows<{ id: number }>(
        tx,
        sql`update forecast_models set active = true
            where name = ${model.name} and version = ${model.version}
              and not exists (select 1 from forecast_models where name = ${model.name} and active)
            returning id`,
      );
      if (activated.length) await tx.insert(forecastModelActivations).values({ name: model.name, modelId: activated[0].id, action: 'initial' });
    });
  }
}

/** Adds a version of a built-in model with these parameters (validated, defaults filled in); inactive until activated. */
export async function registerVersion(db: Db, name: string, version: string, parameters: object): Promise<ForecastModelRow> {
  const model = modelByName(name);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$/.test(version)) throw new RegistryError(`bad version "${version}": letters, digits, '.', '_' and '-', at most 40`);
  const stored = JSON.stringify(parseParameters(model, parameters));
  const [inserted] = await db.insert(forecastModels).values({ name, version, active: false, parameters: stored }).onConflictDoNothing().returning();
  if (inserted) return inserted;
  const [existing] = await db
    .select()
    .from(forecastModels)
    .where(and(eq(forecastModels.name, name), eq(forecastModels.version, version)));
  if (existing.parameters !== stored)
    throw new RegistryError(`${name} version ${version} exists with other parameters (${existing.parameters}); versions are immutable, register a new one`);
  return existing;
}

export interface ActivationResult {
  name: string;
  version: string;
  previousVersion: string | null;
  /** False when the version was already the active one. */
  changed: boolean;
  /** The instruments whose cached answers the switch made stale (all of them; none when nothing changed). */
  instrumentIds: number[];
}

/** Makes `version` the active version of `name`. */
export async function activateVersion(db: Db, name: string, version: string): Promise<ActivationResult> {
  modelByName(name);
  return switchVersion(db, name, 'activate', (versions) => {
    const target = versions.find((v) => v.version === version);
    if (!target) throw new RegistryError(`${name} has no version "${version}"; registered: ${versions.map((v) => v.version).join(', ') || 'none'}`);
    return target;
  });
}

/** Returns `name` to the version that its latest activation replaced. */
export async function rollbackModel(db: Db, name: string): Promise<ActivationResult> {
  modelByName(name);
  return switchVersion(db, name, 'rollback', async (versions, tx) => {
    const [latest] = await tx
      .select()
      .from(forecastModelActivations)
      .where(eq(forecastModelActivations.name, name))
      .orderBy(desc(forecastModelActivations.id))
      .limit(1);
    const active = versions.find((v) => v.active);
    if (!latest || !active || latest.modelId !== active.id) throw new RegistryError(`${name} has no activation to roll back`);
    const previous = versions.find((v) => v.id === latest.previousModelId);
    if (!previous) throw new RegistryError(`${name} ${active.version} was the first active version: there is nothing to roll back to`);
    return previous;
  });
}

async function switchVersion(
  db: Db,
  name: string,
  action: 'activate' | 'rollback',
  choose: (versions: ForecastModelRow[], tx: Db) => ForecastModelRow | Promise<ForecastModelRow>,
): Promise<ActivationResult> {
  return db.transaction(async (tx) => {
    // every version of the model, locked: concurrent switches of one model take turns
    const versions = await tx.select().from(forecastModels).where(eq(forecastModels.name, name)).orderBy(forecastModels.id).for('update');
    const target = await choose(versions, tx as unknown as Db);
    const current = versions.find((v) => v.active) ?? null;
    if (current?.id === target.id) return { name, version: target.version, previousVersion: current.version, changed: false, instrumentIds: [] };
    if (current) await tx.update(forecastModels).set({ active: false }).where(eq(forecastModels.id, current.id));
    await tx.update(forecastModels).set({ active: true }).where(eq(forecastModels.id, target.id));
    await tx.insert(forecastModelActivations).values({ name, modelId: target.id, previousModelId: current?.id ?? null, action });
    // delivered when this transaction commits: every server drops its answers about instruments
    const instrumentIds = (await rows<{ id: number }>(tx, sql`select id from instruments order by id`)).map((i) => i.id);
    await notifyInvalidation(tx as unknown as Db, instrumentIds.map(instrumentTag));
    return { name, version: target.version, previousVersion: current?.version ?? null, changed: true, instrumentIds };
  });
}

export interface RegisteredVersion {
  name: string;
  version: string;
  active: boolean;
  parameters: unknown;
  createdAt: string;
  forecasts: number;
  latestAsOf: string | null;
}

/** Every registered version with how many forecasts it has stored. */
export async function listVersions(db: Db): Promise<RegisteredVersion[]> {
  const found = await rows<{
    name: string;
    version: string;
    active: boolean;
    parameters: string;
    created_at: string | Date;
    forecasts: string | number;
    latest_as_of: string | null;
  }>(
    db,
    sql`select m.name, m.version, m.active, m.parameters, m.created_at,
               (select count(*) from forecasts f where f.model_id = m.id) as forecasts,
               (select max(f.as_of)::text from forecasts f where f.model_id = m.id) as latest_as_of
        from forecast_models m order by m.name, m.id`,
  );
  return found.map((r) => ({
    name: r.name,
    version: r.version,
    active: r.active,
    parameters: JSON.parse(r.parameters),
    createdAt: new Date(r.created_at).toISOString(),
    forecasts: Number(r.forecasts),
    latestAsOf: r.latest_as_of,
  }));
}

/** A model's activation history, newest first. */
export async function activationHistory(db: Db, name: string) {
  return rows<{ version: string; previous_version: string | null; action: string; activated_at: string | Date }>(
    db,
    sql`select m.version, p.version as previous_version, a.action, a.activated_at
        from forecast_model_activations a
        join forecast_models m on m.id = a.model_id
        left join forecast_models p on p.id = a.previous_model_id
        where a.name = ${name} order by a.id desc`,
  );
}

/**
 * Whether `latestForecast` can answer: the default model needs an active version with forecasts. A
 * database seeded before that model existed has neither until `forecasts:generate` runs.
 */
export async function defaultModelStatus(db: Db, name: string): Promise<'ready' | 'no-active-version' | 'no-forecasts'> {
  const [found] = await rows<{ id: number; has_forecasts: boolean }>(
    db,
    sql`select m.id, exists (select 1 from forecasts f where f.model_id = m.id) as has_forecasts
        from forecast_models m where m.name = ${name} and m.active`,
  );
  if (!found) return 'no-active-version';
  return found.has_forecasts ? 'ready' : 'no-forecasts';
}
