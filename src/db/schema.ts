import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  date,
  doublePrecision,
  index,
  integer,
  numeric,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

// Money and quantities: 30 integer digits and 8 decimals, more than any input can reach
// (inputs have at most 20 integer digits) so sums of many trades still fit.
const money = (name: string) => numeric(name, { precision: 38, scale: 8 });
const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();

export const users = pgTable('users', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  email: text('email').notNull().unique(),
  name: text('name').notNull(),
  createdAt: createdAt(),
});

export const portfolios = pgTable(
  'portfolios',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    ownerId: integer('owner_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    baseCurrency: text('base_currency').notNull().default('USD'),
    createdAt: createdAt(),
  },
  // portfoliosByOwner pages by (owner_id, id)
  (t) => [index('portfolios_owner_id_idx').on(t.ownerId, t.id)],
);

export const instruments = pgTable('instruments', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  symbol: text('symbol').notNull().unique(),
  name: text('name').notNull(),
  assetClass: text('asset_class').notNull(),
  currency: text('currency').notNull().default('USD'),
});

export const prices = pgTable(
  'prices',
  {
    instrumentId: integer('instrument_id')
      .notNull()
      .references(() => instruments.id, { onDelete: 'cascade' }),
    date: date('date', { mode: 'string' }).notNull(),
    close: money('close').notNull(),
  },
  // The primary key's index serves "latest price" (walked backwards) and date ranges.
  (t) => [primaryKey({ columns: [t.instrumentId, t.date] }), check('prices_close_positive', sql`${t.close} > 0`)],
);

export const tradeSide = pgEnum('trade_side', ['BUY', 'SELL']);

export const trades = pgTable(
  'trades',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    portfolioId: integer('portfolio_id')
      .notNull()
      .references(() => portfolios.id, { onDelete: 'cascade' }),
    instrumentId: integer('instrument_id')
      .notNull()
      .references(() => instruments.id),
    side: tradeSide('side').notNull(),
    quantity: money('quantity').notNull(),
    price: money('price').notNull(),
    // milliseconds, the precision the API shows and trade cursors carry
    executedAt: timestamp('executed_at', { withTimezone: true, mode: 'date', precision: 3 }).notNull(),
    idempotencyKey: text('idempotency_key'),
    // A digest of the request's input, to tell a replay of an idempotency key from a conflicting reuse.
    requestDigest: text('request_digest').notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('trades_portfolio_idempotency_key_idx').on(t.portfolioId, t.idempotencyKey),
    // tradesByPortfolio pages newest first
    index('trades_portfolio_executed_idx').on(t.portfolioId, t.executedAt.desc(), t.id.desc()),
    index('trades_instrument_id_idx').on(t.instrumentId),
    check('trades_quantity_positive', sql`${t.quantity} > 0`),
    check('trades_price_positive', sql`${t.price} > 0`),
  ],
);

/** Derived from trades by the trade domain only; one row per (portfolio, instrument) ever traded. */
export const positions = pgTable(
  'positions',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    portfolioId: integer('portfolio_id')
      .notNull()
      .references(() => portfolios.id, { onDelete: 'cascade' }),
    instrumentId: integer('instrument_id')
      .notNull()
      .references(() => instruments.id),
    quantity: money('quantity').notNull(),
    averageCost: money('average_cost').notNull(),
    // exact: no scale, so the average cost is always rounded once from exact sums (see applyTrade)
    costBasis: numeric('cost_basis').notNull().default('0'),
    realizedPnl: money('realized_pnl').notNull().default('0'),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('positions_portfolio_instrument_idx').on(t.portfolioId, t.instrumentId),
    index('positions_instrument_id_idx').on(t.instrumentId),
    check('positions_quantity_non_negative', sql`${t.quantity} >= 0`),
  ],
);

export const forecastModels = pgTable(
  'forecast_models',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    name: text('name').notNull(),
    version: text('version').notNull(),
    active: boolean('active').notNull().default(false),
    parameters: text('parameters').notNull().default('{}'),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('forecast_models_name_version_idx').on(t.name, t.version),
    // at most one active version per model
    uniqueIndex('forecast_models_one_active_idx')
      .on(t.name)
      .where(sql`${t.active}`),
  ],
);

/**
 * Every change of a model's active version, oldest first: who was active before, so that a rollback
 * knows where to go back to, and an audit of when each version started answering.
 */
export const forecastModelActivations = pgTable(
  'forecast_model_activations',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    name: text('name').notNull(),
    modelId: integer('model_id')
      .notNull()
      .references(() => forecastModels.id, { onDelete: 'cascade' }),
    previousModelId: integer('previous_model_id').references(() => forecastModels.id, { onDelete: 'set null' }),
    /** 'activate' or 'rollback' ('initial' when a built-in model became active on its own). */
    action: text('action').notNull(),
    activatedAt: timestamp('activated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [index('forecast_model_activations_name_idx').on(t.name, t.id)],
);

export const forecasts = pgTable(
  'forecasts',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    modelId: integer('model_id')
      .notNull()
      .references(() => forecastModels.id, { onDelete: 'cascade' }),
    instrumentId: integer('instrument_id')
      .notNull()
      .references(() => instruments.id, { onDelete: 'cascade' }),
    asOf: date('as_of', { mode: 'string' }).notNull(),
    horizonDays: integer('horizon_days').notNull(),
    expectedReturn: doublePrecision('expected_return').notNull(),
    lower95: doublePrecision('lower95').notNull(),
    upper95: doublePrecision('upper95').notNull(),
    // the central intervals at the other levels the calibration watches (null on forecasts stored before them)
    lower50: doublePrecision('lower50'),
    upper50: doublePrecision('upper50'),
    lower80: doublePrecision('lower80'),
    upper80: doublePrecision('upper80'),
    lower90: doublePrecision('lower90'),
    upper90: doublePrecision('upper90'),
    lower99: doublePrecision('lower99'),
    upper99: doublePrecision('upper99'),
    generatedAt: timestamp('generated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    // the outcome, once the price `horizon_days` trading days after as_of has arrived (src/domain/forecasting/scoring.ts)
    realisedReturn: doublePrecision('realised_return'),
    outcomeDate: date('outcome_date', { mode: 'string' }),
  },
  (t) => [
    // one forecast per model version, instrument, date and horizon; regeneration replaces it
    uniqueIndex('forecasts_model_instrument_horizon_asof_idx').on(t.modelId, t.instrumentId, t.horizonDays, t.asOf),
    index('forecasts_instrument_horizon_idx').on(t.instrumentId, t.horizonDays),
    // the live calibration window: a version's latest outcomes at a horizon
    index('forecasts_scored_idx')
      .on(t.modelId, t.horizonDays, t.outcomeDate.desc(), t.id.desc())
      .where(sql`${t.realisedReturn} is not null`),
    // forecasts still waiting for their outcome, by instrument
    index('forecasts_unscored_idx')
      .on(t.instrumentId)
      .where(sql`${t.realisedReturn} is null`),
    check('forecasts_horizon_positive', sql`${t.horizonDays} > 0`),
  ],
);

/** Small facts about the database itself, such as whether the demo data set is complete. */
export const appMeta = pgTable('app_meta', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

export type UserRow = typeof users.$inferSelect;
export type PortfolioRow = typeof portfolios.$inferSelect;
export type InstrumentRow = typeof instruments.$inferSelect;
export type PriceRow = typeof prices.$inferSelect;
export type TradeRow = typeof trades.$inferSelect;
export type PositionRow = typeof positions.$inferSelect;
export type ForecastModelRow = typeof forecastModels.$inferSelect;

/**
 * What operations and list fields really cost against what the schema's @cost/@listSize estimate,
 * summed per name (kind 'operation': an operation name; kind 'field': a schema coordinate), so that
 * `npm run cost:report` can point at the weights furthest from the truth.
 */
export const costObservations = pgTable(
  'cost_observations',
  {
    kind: text('kind').notNull(),
    name: text('name').notNull(),
    samples: bigint('samples', { mode: 'number' }).notNull(),
    estimatedSum: doublePrecision('estimated_sum').notNull(),
    actualSum: doublePrecision('actual_sum').notNull(),
    sqlStatementsSum: bigint('sql_statements_sum', { mode: 'number' }).notNull(),
    sqlMsSum: doublePrecision('sql_ms_sum').notNull(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.kind, t.name] })],
);

/** Partners call with API keys and may run only trusted documents. */
export const partners = pgTable('partners', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  name: text('name').notNull().unique(),
  /** What the partner may do: see src/admission/scopes.ts. */
  scopes: text('scopes')
    .array()
    .notNull()
    .default(sql`'{instruments:read}'::text[]`),
  createdAt: createdAt(),
});

/** API keys, stored as SHA-256 digests; the key itself is shown once, when it is made. */
export const apiKeys = pgTable(
  'api_keys',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    partnerId: integer('partner_id')
      .notNull()
      .references(() => partners.id, { onDelete: 'cascade' }),
    keyHash: text('key_hash').notNull().unique(),
    /** The first characters of the key, to tell keys apart in listings. */
    prefix: text('prefix').notNull(),
    createdAt: createdAt(),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [index('api_keys_partner_id_idx').on(t.partnerId)],
);

/**
 * Users' consent for a partner to act for them (within the partner's scopes). A revoked grant keeps
 * its row (when consent was given and withdrawn); granting again makes a new row, with a new id, so
 * the delegated tokens minted on the old one (they name the grant's id) stay dead.
 */
export const partnerGrants = pgTable(
  'partner_grants',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    partnerId: integer('partner_id')
      .notNull()
      .references(() => partners.id, { onDelete: 'cascade' }),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: createdAt(),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
  },
  // at most one live grant per partner and user
  (t) => [
    uniqueIndex('partner_grants_live_idx')
      .on(t.partnerId, t.userId)
      .where(sql`${t.revokedAt} is null`),
  ],
);

/**
 * Trusted documents from Apollo persisted query manifests, by SHA-256 of their text, for one partner
 * or (partner_id null) for every partner.
 */
export const persistedDocuments = pgTable(
  'persisted_documents',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    sha256: text('sha256').notNull(),
    partnerId: integer('partner_id').references(() => partners.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    type: text('type').notNull(),
    body: text('body').notNull(),
    /** The estimated cost when published (variables at their defaults). */
    cost: integer('cost').notNull(),
    publishedAt: createdAt(),
    retiredAt: timestamp('retired_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [uniqueIndex('persisted_documents_sha_partner_idx').on(t.sha256, sql`coalesce(${t.partnerId}, 0)`)],
);

export type PartnerRow = typeof partners.$inferSelect;
export type PersistedDocumentRow = typeof persistedDocuments.$inferSelect;
