import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { rows } from '../src/db/client.js';
import { seedDemo } from '../src/tools/seed/demo.js';
import { seedScale } from '../src/tools/seed/scale.js';
import { formatProbe, formatSummary, runPlans, type PlansReport } from '../src/tools/plans.js';
import { createTestDatabase, onPostgres, type TestDatabase } from './helpers/db.js';

// db:plans (CI's query-plan check) on a small seeded data set: PostgreSQL only, as the tool is.

const SEEDING = 180_000;
const DEFAULT_MODEL = 'ewma';

describe.skipIf(!onPostgres)('db:plans', () => {
  let db: TestDatabase;
  let url: string;
  let tradesBefore: number;
  const tradeCount = async () => Number((await rows<{ n: number }>(db.db, sql`select count(*)::int as n from trades`))[0].n);

  beforeAll(async () => {
    db = await createTestDatabase();
    url = db.url!;
    await seedDemo(db.db);
    await seedScale(db.db, 1);
    tradesBefore = await tradeCount();
  }, SEEDING);
  afterAll(() => db?.destroy());

  describe('within generous bounds', () => {
    let report: PlansReport;
    beforeAll(async () => {
      report = await runPlans(db.db, url, { maxMs: 60_000, largeRows: 1_000_000_000, defaultModel: DEFAULT_MODEL });
    }, SEEDING);

    it('passes, with every loader probed and every statement explained', () => {
      expect(report.uncovered).toEqual([]);
      expect(report.probes.flatMap((p) => p.problems)).toEqual([]);
      expect(report.failed).toBe(false);
      expect(report.probes.every((p) => p.statements.length > 0)).toBe(true);
      expect(formatSummary(report).split('\n').at(-1)).toMatch(/^db:plans ok: \d+ probes within 60000 ms/);
    });

    it('shows the plan as PostgreSQL writes it, with the numbers it reports read from that text', () => {
      for (const s of report.probes.flatMap((p) => p.statements)) {
        const lines = s.plan.split('\n');
        // EXPLAIN (ANALYZE, BUFFERS)'s own text: estimates beside actuals, its summary lines last
        expect(lines[0]).toMatch(/\(cost=[\d.]+\.\.[\d.]+ rows=\d+ width=\d+\) \(actual time=[\d.]+\.\.[\d.]+ rows=\d+ loops=\d+\)$/);
        expect(lines.at(-1)).toBe(`Execution Time: ${s.executionMs!.toFixed(3)} ms`);
        expect(lines).toContain(`Planning Time: ${s.planningMs!.toFixed(3)} ms`);
        // the root node's buffers (its children's included): its detail line indented by two, in the tree above "Planning"
        const tree = lines.slice(
          1,
          lines.findIndex((l) => l.startsWith('Planning')),
        );
        const buffers = tree.find((l) => l.startsWith('  Buffers: '));
        const counts = [s.sharedHit && `hit=${s.sharedHit}`, s.sharedRead && `read=${s.sharedRead}`].filter(Boolean).join(' ');
        if (s.sharedHit + s.sharedRead > 0) expect(buffers).toMatch(new RegExp(`^  Buffers: shared ${counts}( |,|$)`));
        else expect(buffers ?? '').not.toMatch(/shared/);
      }
      const userById = report.probes.find((p) => p.covers === 'userById')!;
      expect(formatProbe(userById)).toContain(userById.statements[0].plan.split('\n')[0]);
    });

    it('runs each write once, and rolls it back', async () => {
      const trade = report.probes.find((p) => p.name.startsWith('recordTrade (a new'))!;
      const insert = trade.statements.find((s) => s.query.startsWith('insert into "trades"'))!;
      expect(insert.plan).toMatch(/^Insert on trades .*\(actual time=[\d.]+\.\.[\d.]+ rows=1 loops=1\)$/m);
      expect(await tradeCount()).toBe(tradesBefore);
    });
  });

  it(
    'fails a sequential scan of a table over --large-rows, naming the table',
    async () => {
      const [{ n: users }] = await rows<{ n: number }>(db.db, sql`select reltuples::int as n from pg_class where relname = 'users'`);
      const report = await runPlans(db.db, url, { maxMs: 60_000, largeRows: Number(users) - 1, defaultModel: DEFAULT_MODEL, only: 'userById (the viewer)' });
      expect(report.failed).toBe(true);
      expect(report.probes.map((p) => p.problems)).toEqual([[`Seq Scan on users (~${users} rows, over ${Number(users) - 1})`]]);
      expect(report.probes[0].statements[0].plan).toMatch(/^Seq Scan on users /);
      expect(formatSummary(report)).toMatch(/db:plans FAILED: 1 of 1 probes/);
    },
    SEEDING,
  );

  it(
    'fails a statement over --max-ms with the Execution Time PostgreSQL reported',
    async () => {
      const report = await runPlans(db.db, url, { maxMs: 0.000_001, largeRows: 1_000_000_000, defaultModel: DEFAULT_MODEL, only: 'tradePage' });
      expect(report.failed).toBe(true);
      const statements = report.probes.flatMap((p) => p.statements);
      expect(statements.length).toBe(2);
      for (const s of statements) expect(s.problems).toEqual([`Execution Time ${s.executionMs!.toFixed(3)} ms over 0.000001 ms`]);
    },
    SEEDING,
  );
});
