import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createDatabase } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { metricSum } from '../src/observability/prom-text.js';
import { onPostgres, type TestDatabase } from './helpers/db.js';
import { privatePostgresBin, startPrivatePostgres, type PrivatePostgres } from './helpers/private-pg.js';
import { seed } from './helpers/seed.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// READ_REPLICA_URLS on a real streaming replica: a primary cluster of the test's own and a hot standby
// made from it with `pg_basebackup -R`, started on another port. The server reads from the standby
// while it keeps up, stops reading from it while its replay is paused past READ_YOUR_WRITES_MS, goes
// back once it has caught up, and answers from the primary without an error when the standby dies.

describe.runIf(onPostgres && privatePostgresBin)('reads from a streaming replica', () => {
  let primary: PrivatePostgres;
  let standby: PrivatePostgres;
  let database: TestDatabase;
  let server: TestServer;
  let symbol: string;
  let instrumentId: number;

  beforeAll(async () => {
    primary = await startPrivatePostgres();
    const opened = await createDatabase({ databaseUrl: primary.url, pgliteDataDir: 'memory://', dbPoolMax: 4 });
    database = { ...opened, url: primary.url, destroy: () => opened.close() };
    await migrate(database);
    const instrument = await seed(database.db).instrument(['10', '11'], { last: '2024-01-31' });
    symbol = instrument.symbol;
    instrumentId = instrument.id;
    standby = await startPrivatePostgres({ standbyOf: primary });
    // a window of a second: a replica more than a second behind gets no reads
    server = await startTestServer(database, { READ_REPLICA_URLS: standby.url, READ_YOUR_WRITES_MS: '1000', RESPONSE_CACHE: 'off', HOT_CACHE_TTL_MS: '0' });
  }, 180_000);
  afterAll(async () => {
    await server?.stop();
    await database?.destroy();
    standby?.destroy();
    primary?.destroy();
  });

  const latest = async () => {
    const res = await server.post({ query: 'query($s: String!) { instrument(symbol: $s) { latestPrice { date close } } }', variables: { s: symbol } });
    expect(res.body.errors).toBeUndefined();
    return res.body.data.instrument.latestPrice as { date: string; close: string };
  };
  /** Polls until `done` holds, at most 20 s: the replicas are checked every 5 s. */
  const eventually = async <T>(probe: () => Promise<T>, done: (v: T) => boolean): Promise<T> => {
    let value = await probe();
    for (let i = 0; i < 100 && !done(value); i++) {
      await new Promise((r) => setTimeout(r, 200));
      value = await probe();
    }
    return value;
  };
  const metrics = async () => (await fetch(server.url.replace('/graphql', '/metrics'))).text();
  const routed = async (reason: string) => metricSum(await metrics(), 'foliograph_db_read_routes_total', { reason });
  const addClose = (date: string, close: string) =>
    database.db.execute(sql`insert into prices (instrument_id, date, close) values (${instrumentId}, ${date}, ${close})`);

  it('reads from the standby while it keeps up', async () => {
    expect(standby.psql('select pg_is_in_recovery()')).toBe('t');
    const before = await routed('replica');
    expect(await latest()).toEqual({ date: '2024-01-31', close: '11' });
    expect(await routed('replica')).toBe(before + 1);
    expect(await metrics()).toMatch(/^foliograph_db_replica_up\{replica="0"\} 1$/m);
  });

  it('stops reading from it while its replay is paused past the window, and goes back once it has caught up', { timeout: 60_000 }, async () => {
    standby.psql('select pg_wal_replay_pause()');
    try {
      await addClose('2024-02-01', '12');
      // the next checks (every 5 s) see received WAL not replayed, older than the window
      await eventually(
        async () => Number(/^foliograph_db_replica_lag_seconds\{replica="0"\} (\S+)$/m.exec(await metrics())?.[1] ?? 0),
        (lag) => lag > 1,
      );
      const before = await routed('no_healthy_replica');
      // the primary answers: the new close is there
      expect(await latest()).toEqual({ date: '2024-02-01', close: '12' });
      expect(await routed('no_healthy_replica')).toBe(before + 1);
    } finally {
      standby.psql('select pg_wal_replay_resume()');
    }
    await eventually(
      async () => Number(/^foliograph_db_replica_lag_seconds\{replica="0"\} (\S+)$/m.exec(await metrics())?.[1] ?? 1),
      (lag) => lag === 0,
    );
    const before = await routed('replica');
    expect(await latest()).toEqual({ date: '2024-02-01', close: '12' });
    expect(await routed('replica')).toBe(before + 1);
  });

  it('answers from the primary without an error when the standby dies', async () => {
    standby.kill();
    const during = await latest();
    expect(during).toEqual({ date: '2024-02-01', close: '12' });
    const text = await metrics();
    expect(metricSum(text, 'foliograph_db_replica_failovers_total', { replica: '0' })).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^foliograph_db_replica_up\{replica="0"\} 0$/m);
  });
});
