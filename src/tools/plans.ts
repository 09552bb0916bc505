import DataLoader from 'dataloader';
import { TransactionRollbackError } from 'drizzle-orm';
import postgres from 'postgres';
import type { Viewer } from '../admission/tokens.js';
import { scopeDb, type Db } from '../db/client.js';
import { formatDecimal } from '../domain/decimal.js';
import { historyRange } from '../domain/forecasting/portfolio-risk.js';
import { countInstruments, listInstruments } from '../domain/instruments.js';
import { createPortfolio } from '../domain/portfolios.js';
import { recordTrade, tradeDigest, type TradeSide } from '../domain/trades.js';
import { createLoaders, type Loaders } from '../loaders/index.js';
import type { TradeCursor } from '../loaders/portfolios.js';

/**
 * Query plans of the API's own SQL (npm run db:plans). Each probe makes one loader batch or domain
 * call with keys taken from the data (a load user of `db:seed --scale N`, their portfolios, the
 * instruments they hold), capturing the statements it sends; each statement is then explained
 * with the same parameters (see "Plans" below), on a separate connection, inside a transaction that
 * is rolled back. A probe fails when a plan scans a large table sequentially, when a statement runs
 * longer than the bound, or when it sends no SQL at all.
 */

export interface PlanOptions {
  /** A statement whose Execution Time exceeds this fails its probe. */
  maxMs: number;
  /** Tables with more rows than this (pg_class.reltuples) must not be read by a Seq Scan. */
  largeRows: number;
  /** The model whose active version answers latestForecast (config.forecasts.defaultModel). */
  defaultModel: string;
  /** Only the probes whose name contains this text. */
  only?: string;
  /** Progress for people (stderr). */
  log?: (message: string) => void;
}

/** Keys taken from the data, so each probe asks what a real request would. */
export interface ProbeKeys {
  userId: number;
  loadUsers: number;
  portfolioIds: number[];
  instrumentIds: number[];
  symbols: string[];
  /** An instrument held in the first portfolio: a trade in it updates an existing position. */
  tradeSymbol: string;
  /** The sort key of the last trade of the first page of the first portfolio (a page-2 cursor). */
  tradeCursor: TradeCursor | null;
  /** About three months up to the last close of the first instrument. */
  priceWindow: { from: string; to: string };
  /** An existing trade whose input replays to the same digest (the idempotent replay path). */
  replay: { portfolioId: number; symbol: string; side: TradeSide; quantity: string; price: string; executedAt: Date; key: string } | null;
}

export interface ProbeContext {
  viewer: Viewer;
  keys: ProbeKeys;
  /** Fresh loaders for this probe (nothing cached from other probes), on the given database. */
  loaders: (db: Db) => Loaders;
  defaultModel: string;
}

export interface Probe {
  name: string;
  /** The loader (by its createLoaders name) or domain function this probe exercises. */
  covers: string;
  /** Writes: captured inside a transaction that is rolled back. */
  write?: boolean;
  run: (db: Db, ctx: ProbeContext) => Promise<unknown>;
}

const page = (first: number) => ({ first, after: null });

/** Every loader of createLoaders and every domain call that sends SQL, with realistic keys. */
export const PROBES: Probe[] = [
  { name: 'userById (the viewer)', covers: 'userById', run: (db, c) => c.loaders(db).userById.load(c.keys.userId) },
  {
    name: 'userById (the viewer, with its first portfolio page and count)',
    covers: 'userById',
    run: (db, c) => {
      const loaders = c.loaders(db);
      loaders.wantViewerPortfolios({ first: 20, after: null, count: true });
      return loaders.userById.load(c.keys.userId);
    },
  },
  { name: 'portfolioById (the viewer’s portfolios)', covers: 'portfolioById', run: (db, c) => c.loaders(db).portfolioById.loadMany(c.keys.portfolioIds) },
  {
    name: 'portfolioPage (first page)',
    covers: 'portfolioPage',
    run: (db, c) => c.loaders(db).portfolioPage.load({ parent: c.keys.userId, ...page(20) }),
  },
  {
    name: 'portfolioPage (after a cursor)',
    covers: 'portfolioPage',
    run: (db, c) => c.loaders(db).portfolioPage.load({ parent: c.keys.userId, first: 20, after: c.keys.portfolioIds[0] }),
  },
  { name: 'portfolioCount', covers: 'portfolioCount', run: (db, c) => c.loaders(db).portfolioCount.load(c.keys.userId) },
  {
    name: 'openPositions (all the viewer’s portfolios, with instruments, latest prices and 21-day forecasts)',
    covers: 'openPositions',
    run: (db, c) => {
      const loaders = c.loaders(db);
      loaders.wantPositionForecasts(21);
      return loaders.openPositions.loadMany(c.keys.portfolioIds);
    },
  },
  {
    name: 'tradePage (first page of each portfolio)',
    covers: 'tradePage',
    run: (db, c) => c.loaders(db).tradePage.loadMany(c.keys.portfolioIds.map((parent) => ({ parent, ...page(20) }))),
  },
  {
    name: 'tradePage (second page, after a cursor)',
    covers: 'tradePage',
    run: (db, c) => c.loaders(db).tradePage.load({ parent: c.keys.portfolioIds[0], first: 20, after: c.keys.tradeCursor }),
  },
  { name: 'tradeCount (each portfolio)', covers: 'tradeCount', run: (db, c) => c.loaders(db).tradeCount.loadMany(c.keys.portfolioIds) },
  { name: 'instrumentById (held instruments)', covers: 'instrumentById', run: (db, c) => c.loaders(db).instrumentById.loadMany(c.keys.instrumentIds) },
  { name: 'instrumentBySymbol (held symbols)', covers: 'instrumentBySymbol', run: (db, c) => c.loaders(db).instrumentBySymbol.loadMany(c.keys.symbols) },
  { name: 'latestPrice (held instruments, a valuation)', covers: 'latestPrice', run: (db, c) => c.loaders(db).latestPrice.loadMany(c.keys.instrumentIds) },
  {
    name: 'priceRange (latest 100 closes, 10 instruments)',
    covers: 'priceRange',
    run: (db, c) =>
      c.loaders(db).priceRange.loadMany(c.keys.instrumentIds.slice(0, 10).map((instrumentId) => ({ instrumentId, from: '', to: '', first: 100 }))),
  },
  {
    name: 'priceRange (a three-month window, up to 1000)',
    covers: 'priceRange',
    run: (db, c) =>
      c.loaders(db).priceRange.loadMany(c.keys.instrumentIds.slice(0, 10).map((instrumentId) => ({ instrumentId, ...c.keys.priceWindow, first: 1000 }))),
  },
  {
    name: 'latestForecast (held instruments, 21 days)',
    covers: 'latestForecast',
    run: (db, c) => c.loaders(db).latestForecast.loadMany(c.keys.instrumentIds.map((instrumentId) => ({ instrumentId, horizonDays: 21 }))),
  },
  {
    name: 'forecastList (any model and horizon, 10 instruments)',
    covers: 'forecastList',
    run: (db, c) =>
      c
        .loaders(db)
        .forecastList.loadMany(c.keys.instrumentIds.slice(0, 10).map((instrumentId) => ({ instrumentId, model: '', version: '', horizonDays: 0, first: 20 }))),
  },
  {
    name: 'forecastList (the default model, 21 days)',
    covers: 'forecastList',
    run: (db, c) =>
      c
        .loaders(db)
        .forecastList.loadMany(
          c.keys.instrumentIds.slice(0, 10).map((instrumentId) => ({ instrumentId, model: c.defaultModel, version: '', horizonDays: 21, first: 20 })),
        ),
  },
  {
    name: 'priceHistory (the risk window of held instruments)',
    covers: 'priceHistory',
    run: (db, c) => c.loaders(db).priceHistory.loadMany(c.keys.instrumentIds.map((instrumentId) => ({ instrumentId, ...historyRange(c.keys.priceWindow.to) }))),
  },
  { name: 'listInstruments (first page)', covers: 'listInstruments', run: (db) => listInstruments(db, page(20)) },
  {
    name: 'listInstruments (a search, after a cursor)',
    covers: 'listInstruments',
    run: (db, c) => listInstruments(db, { first: 20, after: c.keys.symbols[0] }, c.keys.symbols[0].slice(0, 3).toLowerCase()),
  },
  { name: 'countInstruments', covers: 'countInstruments', run: (db) => countInstruments(db) },
  { name: 'countInstruments (a search)', covers: 'countInstruments', run: (db, c) => countInstruments(db, c.keys.symbols[0].slice(0, 3).toLowerCase()) },
  {
    name: 'createPortfolio',
    covers: 'createPortfolio',
    write: true,
    run: (db, c) => createPortfolio(db, c.viewer, { name: 'db:plans probe (rolled back)' }),
  },
  {
    name: 'recordTrade (a new trade in a held instrument)',
    covers: 'recordTrade',
    write: true,
    run: (db, c) =>
      recordTrade(db, c.viewer, {
        portfolioId: String(c.keys.portfolioIds[0]),
        symbol: c.keys.tradeSymbol,
        side: 'BUY',
        quantity: '1',
        price: '100.25',
        idempotencyKey: `db-plans-${process.pid}-${Date.now()}`,
      }),
  },
  {
    name: 'recordTrade (an idempotent replay)',
    covers: 'recordTrade',
    write: true,
    run: async (db, c) => {
      const r = c.keys.replay;
      if (!r) throw new Error('no trade in the data set replays to its own digest');
      const result = await recordTrade(db, c.viewer, {
        portfolioId: String(r.portfolioId),
        symbol: r.symbol,
        side: r.side,
        quantity: r.quantity,
        price: r.price,
        executedAt: r.executedAt,
        idempotencyKey: r.key,
      });
      if (!result.replayed) throw new Error('the replay recorded a new trade instead of answering the first');
      return result;
    },
  },
];

// ---------------------------------------------------------------------------------------------
// Keys

type Sql = postgres.Sql;

/** Picks a load user in the middle of the data set and everything probes need about them. */
async function findKeys(sql: Sql): Promise<ProbeKeys> {
  const [schema] = await sql<{ ok: boolean }[]>`select to_regclass('users') is not null and to_regclass('trades') is not null as ok`;
  if (!schema?.ok) throw new Error('this database has no foliograph tables: run npm run db:seed -- --scale N against it first');
  const loadUsers = await sql<{ id: number }[]>`select id from users where email like 'load-%' order by id`;
  if (loadUsers.length === 0) throw new Error('no load users in this database: seed it first with npm run db:seed -- --scale N');
  const userId = loadUsers[Math.floor(loadUsers.length / 2)].id;
  const portfolioIds = (await sql<{ id: number }[]>`select id from portfolios where owner_id = ${userId} order by id`).map((r) => r.id);
  if (portfolioIds.length === 0) throw new Error(`load user ${userId} has no portfolios`);
  const held = await sql<{ id: number; symbol: string }[]>`
    select distinct i.id, i.symbol from positions p join instruments i on i.id = p.instrument_id
    where p.portfolio_id = any(${portfolioIds}::int[]) and p.quantity > 0 order by i.id`;
  if (held.length === 0) throw new Error(`load user ${userId} holds no instruments`);
  const [first] = await sql<{ symbol: string }[]>`
    select i.symbol from positions p join instruments i on i.id = p.instrument_id
    where p.portfolio_id = ${portfolioIds[0]} and p.quantity > 0 order by p.id limit 1`;
  const [cursor] = await sql<{ executed_at: Date; id: string }[]>`
    select executed_at, id::text as id from trades where portfolio_id = ${portfolioIds[0]}
    order by executed_at desc, id desc offset 19 limit 1`;
  const [window] = await sql<{ from: string; to: string }[]>`
    select (max(date) - 91)::text as from, max(date)::text as to from prices where instrument_id = ${held[0].id}`;
  const candidates = await sql<
    { portfolio_id: number; symbol: string; side: TradeSide; quantity: string; price: string; executed_at: Date; key: string; digest: string }[]
  >`
    select t.portfolio_id, i.symbol, t.side, t.quantity::text as quantity, t.price::text as price, t.executed_at,
           t.idempotency_key as key, t.request_digest as digest
    from trades t join instruments i on i.id = t.instrument_id
    where t.portfolio_id = any(${portfolioIds}::int[]) and t.idempotency_key is not null
    order by t.id limit 200`;
  const match = candidates.find((t) => tradeDigest(t.symbol, t.side, formatDecimal(t.quantity), formatDecimal(t.price), t.executed_at) === t.digest);
  return {
    userId,
    loadUsers: loadUsers.length,
    portfolioIds,
    instrumentIds: held.map((h) => h.id),
    symbols: held.map((h) => h.symbol),
    tradeSymbol: first?.symbol ?? held[0].symbol,
    tradeCursor: cursor ? { at: cursor.executed_at.toISOString(), id: Number(cursor.id) } : null,
    priceWindow: { from: window?.from ?? '', to: window?.to ?? '' },
    replay: match
      ? {
          portfolioId: match.portfolio_id,
          symbol: match.symbol,
          side: match.side,
          quantity: match.quantity,
          price: match.price,
          executedAt: match.executed_at,
          key: match.key,
        }
      : null,
  };
}

// ---------------------------------------------------------------------------------------------
// Plans
//
// Each statement is explained twice, in this order, in the probe's transaction:
//   1. EXPLAIN (FORMAT JSON), which plans without running: the Seq Scan check reads its node types
//      and relation names as data, not by matching text.
//   2. EXPLAIN (ANALYZE, BUFFERS), which runs the statement once: its text, PostgreSQL's own, is the
//      plan shown, and its Execution Time is the one checked against the bound.
// Both see the same state with the same parameters, so the planner chooses the same plan; a write is
// run once only (a second ANALYZE would insert twice, and see its own first run).

/** One node of EXPLAIN's JSON output (only the fields read here are typed). */
interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

export interface StatementReport {
  query: string;
  params: unknown[];
  executionMs: number | null;
  planningMs: number | null;
  sharedHit: number;
  sharedRead: number;
  /** Seq Scans in the plan, with the table's estimated rows. */
  seqScans: { relation: string; rows: number; large: boolean }[];
  /** EXPLAIN (ANALYZE, BUFFERS) as PostgreSQL writes it. */
  plan: string;
  problems: string[];
}

export interface ProbeReport {
  name: string;
  covers: string;
  statements: StatementReport[];
  problems: string[];
}

export interface PlansReport {
  keys: ProbeKeys;
  probes: ProbeReport[];
  /** Loaders of createLoaders that no probe exercises. */
  uncovered: string[];
  analyzed: string[];
  options: Pick<PlanOptions, 'maxMs' | 'largeRows'>;
  failed: boolean;
}

/** Every node of a plan, depth first. */
function* nodes(node: PlanNode): Generator<PlanNode> {
  yield node;
  for (const child of node.Plans ?? []) yield* nodes(child);
}

const ms = (n: number | null | undefined) => (n == null ? '?' : `${n.toFixed(3)} ms`);

/** The numbers of an EXPLAIN (ANALYZE, BUFFERS) text: its summary lines, and the root node's shared buffers. */
function analyzedNumbers(text: string) {
  const lines = text.split('\n');
  const time = (label: string) => {
    const line = lines.find((l) => l.startsWith(`${label}: `));
    return line === undefined ? null : Number.parseFloat(line.slice(label.length + 2));
  };
  // the tree ends at the first unindented line after the root ("Planning:", "Planning Time: ..."); the
  // root's detail lines are indented by two spaces, and its buffers include its children's
  const end = lines.findIndex((l, i) => i > 0 && /^\S/.test(l));
  const root = lines.slice(1, end < 0 ? undefined : end).find((l) => l.startsWith('  Buffers: shared '));
  // "Buffers: shared hit=4 read=1 dirtied=2, local hit=3, temp read=5": shared comes first
  const shared = new Map([...(root?.split(',')[0].matchAll(/(\w+)=(\d+)/g) ?? [])].map((m) => [m[1], Number(m[2])]));
  return { executionMs: time('Execution Time'), planningMs: time('Planning Time'), sharedHit: shared.get('hit') ?? 0, sharedRead: shared.get('read') ?? 0 };
}

/** Checks one statement against the bounds; `tables` maps relation names to their estimated rows. */
function checkPlan(plan: PlanNode, executionMs: number | null, tables: Map<string, number>, options: Pick<PlanOptions, 'maxMs' | 'largeRows'>) {
  const seqScans: StatementReport['seqScans'] = [];
  for (const n of nodes(plan)) {
    if (n['Node Type'] !== 'Seq Scan' || !n['Relation Name']) continue;
    const rows = tables.get(n['Relation Name']) ?? 0;
    seqScans.push({ relation: n['Relation Name'], rows, large: rows > options.largeRows });
  }
  const problems: string[] = [];
  for (const s of seqScans) {
    if (s.large) problems.push(`Seq Scan on ${s.relation} (~${Math.round(s.rows)} rows, over ${options.largeRows})`);
  }
  if (executionMs === null) problems.push('EXPLAIN ANALYZE gave no Execution Time');
  else if (executionMs > options.maxMs) problems.push(`Execution Time ${ms(executionMs)} over ${options.maxMs} ms`);
  return { seqScans, problems };
}

const ROLLBACK = Symbol('rollback');

/** Runs a probe's call and returns the statements it sent (writes inside a transaction rolled back). */
async function capture(db: Db, probe: Probe, ctx: ProbeContext) {
  const stats = { statements: 0, capture: [] as { query: string; params: unknown[] }[] };
  const counted = scopeDb(db, stats);
  if (!probe.write) {
    await probe.run(counted, ctx);
    return stats.capture;
  }
  try {
    await counted.transaction(async (tx) => {
      await probe.run(tx as unknown as Db, ctx);
      tx.rollback();
    });
  } catch (e) {
    if (!(e instanceof TransactionRollbackError)) throw e;
  }
  return stats.capture;
}

interface Explained {
  /** The plan without running it (FORMAT JSON). */
  plan: PlanNode;
  /** EXPLAIN (ANALYZE, BUFFERS) as text, one line per row of its result. */
  text: string;
}

/** EXPLAINs each statement in order, in one transaction that is rolled back (writes see earlier writes). */
async function explainAll(sql: Sql, statements: { query: string; params: unknown[] }[]): Promise<(Explained | Error)[]> {
  const results: (Explained | Error)[] = [];
  try {
    await sql.begin(async (tx) => {
      for (const s of statements) {
        try {
          const [shape] = await tx.unsafe(`explain (format json) ${s.query}`, s.params as never[]);
          const json = shape['QUERY PLAN'] as { Plan: PlanNode }[] | string;
          const plan = (typeof json === 'string' ? (JSON.parse(json) as { Plan: PlanNode }[]) : json)[0].Plan;
          const analyzed = await tx.unsafe(`explain (analyze, buffers) ${s.query}`, s.params as never[]);
          results.push({ plan, text: analyzed.map((row) => row['QUERY PLAN'] as string).join('\n') });
        } catch (e) {
          // the transaction is aborted: later statements cannot be explained in it
          results.push(e instanceof Error ? e : new Error(String(e)));
          break;
        }
      }
      throw ROLLBACK;
    });
  } catch (e) {
    if (e !== ROLLBACK) throw e;
  }
  return results;
}

/** Estimated rows of the tables (and materialised views) on the search path. */
async function tableSizes(sql: Sql): Promise<Map<string, number>> {
  const found = await sql<{ name: string; rows: number }[]>`
    select c.relname as name, c.reltuples::float8 as rows from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p', 'm') and n.nspname = any(current_schemas(false))`;
  return new Map(found.map((r) => [r.name, Number(r.rows)]));
}

/**
 * Tables without statistics, or changed a lot since their last ANALYZE (a seed just ran), are
 * analysed first: plans and the large-table check both read those statistics.
 */
async function analyzeStale(sql: Sql): Promise<string[]> {
  const stale = await sql<{ schema: string; name: string }[]>`
    select s.schemaname as schema, s.relname as name from pg_stat_user_tables s join pg_class c on c.oid = s.relid
    where s.schemaname = any(current_schemas(false))
      and (c.reltuples < 0 or (s.last_analyze is null and s.last_autoanalyze is null and s.n_live_tup > 0)
           or s.n_mod_since_analyze > greatest(1000, 0.1 * c.reltuples))
    order by s.relname`;
  const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;
  for (const t of stale) await sql.unsafe(`analyze ${ident(t.schema)}.${ident(t.name)}`);
  return stale.map((t) => t.name);
}

/** A separate connection for EXPLAIN, binding parameters as the application's Drizzle client does. */
function explainConnection(url: string): Sql {
  const sql = postgres(url, {
    max: 1,
    onnotice: () => {},
    connect_timeout: 10,
    connection: {
      application_name: 'foliograph:db-plans',
      // EXPLAIN ANALYZE runs each statement to the end: a runaway plan fails its probe instead of hanging CI
      statement_timeout: 60_000,
    },
  });
  // Drizzle passes dates, times and JSON as text already: send them as given (as drizzle-orm/postgres-js does)
  for (const type of [1184, 1082, 1083, 1114, 1182, 1185, 1115, 1231, 114, 3802]) sql.options.serializers[type] = (v: unknown) => v;
  return sql;
}

export async function runPlans(db: Db, url: string, options: PlanOptions): Promise<PlansReport> {
  const log = options.log ?? (() => {});
  const sql = explainConnection(url);
  try {
    const analyzed = await analyzeStale(sql);
    if (analyzed.length) log(`analyzed (statistics missing or stale): ${analyzed.join(', ')}`);
    const tables = await tableSizes(sql);
    const keys = await findKeys(sql);
    log(`probing as load user ${keys.userId} (of ${keys.loadUsers}): ${keys.portfolioIds.length} portfolios, ${keys.instrumentIds.length} held instruments`);
    const viewer: Viewer = { kind: 'user', userId: keys.userId };
    const ctx: ProbeContext = {
      viewer,
      keys,
      defaultModel: options.defaultModel,
      loaders: (on) => createLoaders(on, viewer, { defaultModel: options.defaultModel }),
    };

    const only = options.only?.toLowerCase();
    const selected = PROBES.filter((p) => !only || p.name.toLowerCase().includes(only) || p.covers.toLowerCase() === only);
    const probes: ProbeReport[] = [];
    for (const probe of selected) {
      const report: ProbeReport = { name: probe.name, covers: probe.covers, statements: [], problems: [] };
      probes.push(report);
      let captured: { query: string; params: unknown[] }[];
      try {
        captured = await capture(db, probe, ctx);
      } catch (e) {
        report.problems.push(`the call failed: ${e instanceof Error ? e.message : String(e)}`);
        continue;
      }
      if (captured.length === 0) report.problems.push('sent no SQL (nothing to explain: are the keys right?)');
      const explained = await explainAll(sql, captured);
      captured.forEach((s, i) => {
        const result = explained[i];
        const statement: StatementReport = {
          query: s.query,
          params: s.params,
          executionMs: null,
          planningMs: null,
          sharedHit: 0,
          sharedRead: 0,
          seqScans: [],
          plan: '',
          problems: [],
        };
        report.statements.push(statement);
        if (result === undefined) statement.problems.push('not explained: an earlier statement of this probe failed');
        else if (result instanceof Error) statement.problems.push(`EXPLAIN failed: ${result.message}`);
        else {
          Object.assign(statement, analyzedNumbers(result.text), { plan: result.text });
          const checked = checkPlan(result.plan, statement.executionMs, tables, options);
          statement.seqScans = checked.seqScans;
          statement.problems.push(...checked.problems);
        }
        report.problems.push(...statement.problems);
      });
    }

    const covered = new Set(selected.map((p) => p.covers));
    const uncovered = options.only
      ? []
      : Object.entries(ctx.loaders(db))
          .filter(([, value]) => value instanceof DataLoader)
          .map(([name]) => name)
          .filter((name) => !covered.has(name));
    const failed = uncovered.length > 0 || probes.some((p) => p.problems.length > 0);
    return { keys, probes, uncovered, analyzed, options: { maxMs: options.maxMs, largeRows: options.largeRows }, failed };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

// ---------------------------------------------------------------------------------------------
// Output

const oneLine = (text: string, max: number) => {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

const indent = (text: string, by: string) =>
  text
    .split('\n')
    .map((l) => by + l)
    .join('\n');

/** One probe: its statements, each with time, buffers, problems and plan. */
export function formatProbe(p: ProbeReport): string {
  const out = [`── ${p.problems.length ? 'FAIL' : 'ok  '} ${p.name}  [${p.covers}]`];
  if (p.statements.length === 0) out.push(...p.problems.map((x) => `   ! ${x}`));
  p.statements.forEach((s, i) => {
    out.push(`   statement ${i + 1}/${p.statements.length}: ${oneLine(s.query, 160)}`);
    out.push(
      `   params: ${oneLine(
        JSON.stringify(s.params, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)),
        160,
      )}`,
    );
    const scans = s.seqScans.length ? `; seq scans: ${s.seqScans.map((x) => `${x.relation} (~${Math.round(x.rows)} rows)`).join(', ')}` : '';
    out.push(`   execution ${ms(s.executionMs)}, planning ${ms(s.planningMs)}; buffers shared hit=${s.sharedHit} read=${s.sharedRead}${scans}`);
    for (const problem of s.problems) out.push(`   ! ${problem}`);
    if (s.plan) out.push(indent(s.plan, '     '));
  });
  if (p.statements.length) out.push(...p.problems.filter((x) => !p.statements.some((s) => s.problems.includes(x))).map((x) => `   ! ${x}`));
  return out.join('\n');
}

/** One line per probe, then the verdict. */
export function formatSummary(r: PlansReport): string {
  const rows = r.probes.map((p) => {
    const slowest = Math.max(0, ...p.statements.map((s) => s.executionMs ?? 0));
    const hit = p.statements.reduce((n, s) => n + s.sharedHit, 0);
    const read = p.statements.reduce((n, s) => n + s.sharedRead, 0);
    const scans = [...new Set(p.statements.flatMap((s) => s.seqScans.map((x) => x.relation)))];
    return [p.problems.length ? 'FAIL' : 'ok', p.name, String(p.statements.length), slowest.toFixed(3), `${hit}/${read}`, scans.join(',') || '-'];
  });
  const header = ['result', 'probe', 'stmts', 'max ms', 'hit/read', 'seq scans'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const fmt = (row: string[]) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  const lines = [fmt(header), ...rows.map(fmt)];
  for (const name of r.uncovered) lines.push(`FAIL  loader ${name} has no probe: add one to PROBES in src/tools/plans.ts`);
  const failed = r.probes.filter((p) => p.problems.length).length;
  lines.push(
    r.failed
      ? `db:plans FAILED: ${failed} of ${r.probes.length} probes${r.uncovered.length ? `, ${r.uncovered.length} loaders without a probe` : ''} (bounds: ${r.options.maxMs} ms, no Seq Scan on tables over ${r.options.largeRows} rows)`
      : `db:plans ok: ${r.probes.length} probes within ${r.options.maxMs} ms, no Seq Scan on tables over ${r.options.largeRows} rows`,
  );
  return lines.join('\n');
}
