import { sql } from 'drizzle-orm';
import { applyTrade, tradeDigest, type Holding, type TradeSide } from '../../domain/trades.js';
import { generateForecasts } from '../../domain/forecasting/generate.js';
import { ensureBuiltInModels } from '../../domain/forecasting/registry.js';
import { seededRandom } from '../random.js';
import type { Db } from '../../db/client.js';
import { instruments, portfolios, positions, prices, trades, users } from '../../db/schema.js';

/** Per unit of scale: 25 users × 4 portfolios × 20 positions = 100 portfolios and 2,000 positions. */
export const SCALE_SHAPE = { usersPerUnit: 25, portfoliosPerUser: 4, positionsPerPortfolio: 20, priceDays: 520 } as const;

/** The last `n` weekdays up to and including 2020-04-17 (the demo's last S&P 500 close), oldest first. */
function businessDays(n: number): string[] {
  const out: string[] = [];
  for (let t = Date.UTC(2020, 3, 17); out.length < n; t -= 86_400_000) {
    const day = new Date(t).getUTCDay();
    if (day !== 0 && day !== 6) out.push(new Date(t).toISOString().slice(0, 10));
  }
  return out.reverse();
}

async function insertChunked<T>(rowsToInsert: T[], size: number, insert: (chunk: T[]) => Promise<unknown>) {
  for (let i = 0; i < rowsToInsert.length; i += size) await insert(rowsToInsert.slice(i, i + size));
}

/**
 * Load-test data on top of the demo: synthetic instruments with random-walk prices, and
 * 25·N users with 4 portfolios of 20 positions each, built from generated trades whose positions
 * are computed by the same arithmetic as recordTrade (bulk-inserted: recording 450k trades one by
 * one would take far longer). Users that exist already are skipped, so a rerun changes nothing.
 */
export async function seedScale(db: Db, scale: number, log: (message: string) => void = () => {}): Promise<void> {
  const days = businessDays(SCALE_SHAPE.priceDays);
  const instrumentCount = Math.max(30, 5 * scale);
  const synthetic = Array.from({ length: instrumentCount }, (_, i) => ({
    symbol: `SYN${String(i + 1).padStart(4, '0')}`,
    name: `Synthetic Equity ${i + 1}`,
    assetClass: 'EQUITY',
    currency: 'USD',
  }));
  const created = await db.insert(instruments).values(synthetic).onConflictDoNothing().returning({ id: instruments.id, symbol: instruments.symbol });
  for (const inst of created) {
    const rnd = seededRandom(Number(inst.symbol.slice(3)) * 7919);
    let close = 10 + rnd() * 490;
    const vol = 0.01 + rnd() * 0.02;
    const rows = days.map((date) => {
      close *= Math.exp((rnd() - 0.5) * 2 * vol * Math.sqrt(3) + 0.0002);
      return { instrumentId: inst.id, date, close: Math.max(0.01, close).toFixed(2) };
    });
    await insertChunked(rows, 5000, (chunk) => db.insert(prices).values(chunk).onConflictDoNothing());
  }
  const pool = await db
    .select({ id: instruments.id, symbol: instruments.symbol })
    .from(instruments)
    .where(sql`${instruments.symbol} like 'SYN%'`)
    .orderBy(instruments.symbol);
  log(`synthetic instruments: ${pool.length} (${created.length} new, ${days.length} prices each)`);

  const totalUsers = scale * SCALE_SHAPE.usersPerUnit;
  let newUsers = 0;
  for (let start = 0; start < totalUsers; start += 50) {
    const batch = Array.from({ length: Math.min(50, totalUsers - start) }, (_, i) => start + i);
    await db.transaction(async (tx) => {
      const inserted = await tx
        .insert(users)
        .values(batch.map((u) => ({ email: `load-${String(u + 1).padStart(6, '0')}@example.com`, name: `Load User ${u + 1}` })))
        .onConflictDoNothing()
        .returning({ id: users.id, email: users.email });
      if (inserted.length === 0) return;
      newUsers += inserted.length;
      const owned = await tx
        .insert(portfolios)
        .values(inserted.flatMap((u) => Array.from({ length: SCALE_SHAPE.portfoliosPerUser }, (_, k) => ({ ownerId: u.id, name: `Load ${k + 1}` }))))
        .returning({ id: portfolios.id, ownerId: portfolios.ownerId, name: portfolios.name });
      const tradeRows: (typeof trades.$inferInsert)[] = [];
      const positionRows: (typeof positions.$inferInsert)[] = [];
      for (const p of owned) {
        const rnd = seededRandom(p.ownerId * 31 + Number(p.name.slice(5)));
        const chosen = new Set<number>();
        while (chosen.size < Math.min(SCALE_SHAPE.positionsPerPortfolio, pool.length)) chosen.add(Math.floor(rnd() * pool.length));
        let n = 0;
        for (const [k, index] of [...chosen].entries()) {
          const inst = pool[index];
          const buys = [1 + Math.floor(rnd() * 200), 1 + Math.floor(rnd() * 100)];
          const steps: [TradeSide, number][] = buys.map((q): [TradeSide, number] => ['BUY', q]);
          // every fourth position is partly sold, never below one unit
          if (k % 4 === 3) steps.push(['SELL', 1 + Math.floor(rnd() * Math.min(50, buys[0] + buys[1] - 1))]);
          // dated in order, so the trades replay to the same position in time order too
          const dates = steps.map(() => days[Math.floor(rnd() * days.length)]).sort();
          let holding: Holding | null = null;
          for (const [step, [side, qty]] of steps.entries()) {
            const quantity = String(qty);
            const price = (5 + rnd() * 495).toFixed(2);
            const executedAt = new Date(`${dates[step]}T15:30:00Z`);
            holding = applyTrade(holding, side, quantity, price, inst.symbol);
            tradeRows.push({
              portfolioId: p.id,
              instrumentId: inst.id,
              side,
              quantity,
              price,
              executedAt,
              idempotencyKey: `load-${++n}`,
              requestDigest: tradeDigest(inst.symbol, side, quantity, price, executedAt),
            });
          }
          positionRows.push({ portfolioId: p.id, instrumentId: inst.id, ...holding! });
        }
      }
      await insertChunked(tradeRows, 5000, (chunk) => tx.insert(trades).values(chunk));
      await insertChunked(positionRows, 5000, (chunk) => tx.insert(positions).values(chunk));
    });
    if ((start / 50) % 20 === 19) log(`load users: ${start + batch.length} of ${totalUsers}`);
  }
  log(`load users: ${newUsers} new of ${totalUsers} (${newUsers * SCALE_SHAPE.portfoliosPerUser} portfolios)`);
  if (created.length > 0) {
    await ensureBuiltInModels(db);
    const generated = await generateForecasts(db);
    log(`forecasts: ${generated.forecasts} new`);
  }
}
