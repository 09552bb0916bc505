import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANONYMOUS, type Viewer } from '../src/admission/tokens.js';
import { notifyInvalidation } from '../src/cache/invalidation.js';
import { createDatabase, type Db } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { createWritePositions, formatLsn, parseLsn, UNKNOWN, UNREACHABLE, type WritePositions } from '../src/db/causal.js';
import { createReadRouter, positionTtlMs, type PrimarySample, type ReplicaHealth } from '../src/db/replicas.js';
import { createLogger } from '../src/observability/logger.js';
import { metricSum } from '../src/observability/prom-text.js';
import { createTestDatabase, onPostgres, type TestDatabase } from './helpers/db.js';
import { privatePostgresBin, startPrivatePostgres, type PrivatePostgres } from './helpers/private-pg.js';
import { seed } from './helpers/seed.js';
import { until } from './helpers/until.js';
import { startTestServer, type TestServer } from './helpers/server.js';

// READ_REPLICA_URLS: queries read from replicas that have replayed what they must see; mutations, and
// the reads that need a position no replica has replayed yet, from the primary.

describe('the read router', () => {
  const [r1, r2] = [{ name: 'r1' }, { name: 'r2' }] as unknown as Db[];
  const alice = { kind: 'user' as const, userId: 1 };
  const bob = { kind: 'user' as const, userId: 2 };
  /** A standby that answered its last check, replayed up to `replayed`. */
  const standby = (replayed: bigint): ReplicaHealth => ({ up: true, lagSeconds: 0, replayed, lagBytes: 0 });
  const reasons = async (router: ReturnType<typeof createReadRouter>, viewer: Viewer, after?: bigint) => (await router.route('query', viewer, after)).reason;

  it('sends queries to the replicas in turn, mutations to the primary', async () => {
    const router = createReadRouter({ replicas: [r1, r2], maxLagMs: 1000 });
    expect(router.enabled).toBe(true);
    const dbs = [];
    for (let i = 0; i < 3; i++) dbs.push((await router.route('query', ANONYMOUS)).db);
    expect(dbs).toEqual([r1, r2, r1]);
    expect(await router.route('mutation', alice)).toEqual({ db: undefined, target: 'primary', reason: 'mutation' });
  });

  it("sends a writer's reads to a replica only once it has replayed their commit, and nobody else's waits", async () => {
    const positions = createWritePositions({ namespace: 'test', ttlMs: 60_000 });
    const health = [standby(90n)];
    const router = createReadRouter({ replicas: [r1], maxLagMs: 5000, health, positions });
    await positions.record(alice.userId, 100n);
    expect(await reasons(router, alice)).toBe('read_your_writes');
    expect(await reasons(router, bob)).toBe('replica');
    health[0] = standby(100n);
    expect(await router.route('query', alice)).toEqual({ db: r1, target: 'replica', reason: 'replica' });
    // an older position recorded later (a slower instance's) does not move it back
    await positions.record(alice.userId, 95n);
    health[0] = standby(99n);
    expect(await reasons(router, alice)).toBe('read_your_writes');
  });

  it('reads from the primary for a signed-in caller while their position cannot be known', async () => {
    const positions: WritePositions = { record: async () => {}, of: async () => UNKNOWN };
    const router = createReadRouter({ replicas: [r1], maxLagMs: 5000, health: [standby(500n)], positions });
    expect(await reasons(router, alice)).toBe('positions_unknown');
    expect(await reasons(router, ANONYMOUS)).toBe('replica');
  });

  it('honours a position the client sends back (X-Consistent-After), whoever asks', async () => {
    const health = [standby(150n)];
    const router = createReadRouter({ replicas: [r1], maxLagMs: 5000, health });
    expect(await reasons(router, ANONYMOUS, 200n)).toBe('consistent_after');
    expect(await reasons(router, ANONYMOUS, 150n)).toBe('replica');
    health[0] = standby(200n);
    expect(await reasons(router, bob, 200n)).toBe('replica');
  });

  it("after public data changed, reads wait for the primary's next sample, then for a replica past it, and forget it in time", async () => {
    let clock = 0;
    const checks = { primary: { written: 300n, inserted: 300n, check: 4 } as PrimarySample | undefined, checks: 4 };
    const health: ReplicaHealth[] = [standby(300n), { up: true, lagSeconds: 0, replayed: null, lagBytes: null }];
    const router = createReadRouter({ replicas: [r1, r2], maxLagMs: 2000, health, checks, now: () => clock });
    router.publicDataChanged();
    // the change may be after the last sample: the primary answers until a check begun after it samples the primary
    expect(await reasons(router, ANONYMOUS)).toBe('catch_up');
    checks.checks = 5;
    checks.primary = { written: 400n, inserted: 400n, check: 5 };
    // the standby has not replayed 400; the second replica is no standby (no comparable position)
    expect(await reasons(router, ANONYMOUS)).toBe('catch_up');
    health[0] = standby(400n);
    expect((await router.route('query', ANONYMOUS)).db).toBe(r1);
    expect((await router.route('query', ANONYMOUS)).db).toBe(r1);
    // long after, every replica close enough to serve holds the change: the non-standby serves again
    clock = positionTtlMs(2000) + 1;
    const dbs = new Set();
    for (let i = 0; i < 2; i++) dbs.add((await router.route('query', ANONYMOUS)).db);
    expect(dbs).toEqual(new Set([r1, r2]));
  });

  it('waits for a sample begun after the latest change heard, not the first of several', async () => {
    const checks = { primary: { written: 10n, inserted: 10n, check: 1 } as PrimarySample | undefined, checks: 1 };
    const health = [standby(10n)];
    const router = createReadRouter({ replicas: [r1], maxLagMs: 5000, health, checks });
    router.publicDataChanged();
    checks.checks = 2;
    // a second change, heard while check 2 runs (its sample may be from before it)
    router.publicDataChanged();
    checks.primary = { written: 20n, inserted: 20n, check: 2 };
    health[0] = standby(20n);
    expect(await reasons(router, ANONYMOUS)).toBe('catch_up');
    checks.checks = 3;
    checks.primary = { written: 30n, inserted: 30n, check: 3 };
    expect(await reasons(router, ANONYMOUS)).toBe('catch_up');
    health[0] = standby(30n);
    expect(await reasons(router, ANONYMOUS)).toBe('replica');
  });

  it('keeps a writer whose commit position could not be read on the primary', async () => {
    const positions = createWritePositions({ namespace: 'test', ttlMs: 60_000 });
    const router = createReadRouter({ replicas: [r1], maxLagMs: 5000, health: [standby(0xffff_ffff_0000n)], positions });
    await positions.record(alice.userId, UNREACHABLE);
    expect(await reasons(router, alice)).toBe('read_your_writes');
    expect(await reasons(router, bob)).toBe('replica');
  });

  it('skips replicas that are down or lag beyond READ_REPLICA_MAX_LAG_MS', async () => {
    const health: ReplicaHealth[] = [{ up: false, lagSeconds: null, replayed: null, lagBytes: null }, standby(5n)];
    const router = createReadRouter({ replicas: [r1, r2], maxLagMs: 1000, health });
    const dbs = [];
    for (let i = 0; i < 3; i++) dbs.push((await router.route('query', ANONYMOUS)).db);
    expect(dbs).toEqual([r2, r2, r2]);
    health[1] = { ...standby(5n), lagSeconds: 1.5 };
    expect(await router.route('query', ANONYMOUS)).toEqual({ db: undefined, target: 'primary', reason: 'no_healthy_replica' });
    health[0] = standby(5n);
    expect((await router.route('query', ANONYMOUS)).db).toBe(r1);
  });

  it('is off without replicas', async () => {
    const router = createReadRouter({ replicas: [], maxLagMs: 1000 });
    expect(router.enabled).toBe(false);
    expect(await reasons(router, ANONYMOUS)).toBe('no_replica');
  });
});

describe('WAL positions', () => {
  it('reads and writes them as PostgreSQL does, and refuses anything else', () => {
    expect(parseLsn('0/16B3748')).toBe(0x16b3748n);
    expect(parseLsn('1A/0')).toBe(0x1an << 32n);
    expect(formatLsn(parseLsn('16/b374d848')!)).toBe('16/B374D848');
    for (const bad of ['', '16', '/1', '1/', '123456789/0', '0/123456789', '0x1/2', ' 0/1', '0/1;drop', 'G/0']) expect(parseLsn(bad)).toBeNull();
  });
});

// The replica here is a second database that lags far behind: it has the instrument without its
// last close, and none of the users, so answers show where reads went.
describe.runIf(onPostgres)('reads from a replica (PostgreSQL)', () => {
  let primary: TestDatabase;
  let replica: TestDatabase;
  let server: TestServer;
  let symbol: string;
  let alice: Awaited<ReturnType<ReturnType<typeof seed>['user']>>;
  let bob: Awaited<ReturnType<ReturnType<typeof seed>['user']>>;
  let alicePortfolio: number;
  const metrics = async () => (await fetch(server.url.replace('/graphql', '/metrics'))).text();
  const routes = (text: string, reason: string) => metricSum(text, 'foliograph_db_read_routes_total', { reason });
  const warnings: string[] = [];

  beforeAll(async () => {
    primary = await createTestDatabase();
    replica = await createTestDatabase();
    const s = seed(primary.db);
    const instrument = await s.instrument(['10', '11'], { last: '2024-01-31' });
    symbol = instrument.symbol;
    const behind = await seed(replica.db).instrument(['10'], { symbol, last: '2024-01-30' });
    expect(behind.id).toBe(instrument.id);
    alice = await s.user();
    bob = await s.user();
    alicePortfolio = (await s.portfolio(alice)).id;
    await s.portfolio(bob);
    // the first replica in the list does not exist: it fails its health check and gets no reads
    const logger = createLogger('warn', 'test', new Writable({ write: (chunk, _, done) => (warnings.push(String(chunk)), done()) }));
    server = await startTestServer(primary, { READ_REPLICA_URLS: `${missingReplica()},${replica.url!}`, READ_REPLICA_MAX_LAG_MS: '60000' }, { logger });
  });
  afterAll(async () => {
    await server?.stop();
    await replica?.destroy();
    await primary?.destroy();
  });

  const missingReplica = () => {
    const url = new URL(replica.url!);
    url.pathname = '/foliograph_no_such_replica';
    return url.toString();
  };
  const quote = async () =>
    (await server.post({ query: 'query($s: String!) { instrument(symbol: $s) { id latestPrice { date close } } }', variables: { s: symbol } })).body.data
      .instrument;
  const mine = async (userId: number) =>
    server.post({ query: '{ viewer { portfolios { totalCount } } }' }, { authorization: `Bearer ${await server.token(userId)}` });

  it('answers queries from the replica that is up, never from the one that is down', async () => {
    expect((await quote()).latestPrice).toEqual({ date: '2024-01-30', close: '10' });
    expect((await mine(alice.id)).body.data.viewer).toBeNull();
    expect((await quote()).latestPrice.close).toBe('10');
    const text = await metrics();
    // the second quote is a response-cache hit answered before parsing: it reads nowhere
    expect(routes(text, 'replica')).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/^foliograph_db_replica_up\{replica="0"\} 0$/m);
    expect(text).toMatch(/^foliograph_db_replica_up\{replica="1"\} 1$/m);
    expect(text).toMatch(/^foliograph_db_replica_lag_seconds\{replica="1"\} 0$/m);
    // this stand-in is no standby: the server says so, once, naming it by its place in the list
    const said = warnings.filter((w) => w.includes('is not a standby'));
    expect(said).toHaveLength(1);
    expect(JSON.parse(said[0]!).replica).toBe(1);
  });

  it('reads from the primary when no replica is usable', async () => {
    const alone = await startTestServer(primary, { READ_REPLICA_URLS: missingReplica() });
    try {
      const answer = await alone.post({ query: 'query($s: String!) { instrument(symbol: $s) { latestPrice { close } } }', variables: { s: symbol } });
      expect(answer.body.data.instrument.latestPrice.close).toBe('11');
      const text = await (await fetch(alone.url.replace('/graphql', '/metrics'))).text();
      expect(text).toMatch(/^foliograph_db_read_routes_total\{target="primary",reason="no_healthy_replica"\} 1$/m);
    } finally {
      await alone.stop();
    }
  });

  it("runs mutations on the primary, and its writer's next reads too, not anyone else's", async () => {
    const record = await server.post(
      {
        query: 'mutation($input: RecordTradeInput!) { recordTrade(input: $input) { position { quantity instrument { symbol } } } }',
        variables: { input: { portfolioId: String(alicePortfolio), symbol, side: 'BUY', quantity: '3', price: '10' } },
      },
      { authorization: `Bearer ${await server.token(alice.id)}` },
    );
    expect(record.body.errors).toBeUndefined();
    expect(record.body.data.recordTrade.position).toEqual({ quantity: '3', instrument: { symbol } });
    // alice reads her write back; bob, who wrote nothing, still reads the replica
    expect((await mine(alice.id)).body.data.viewer.portfolios.totalCount).toBe(1);
    expect((await mine(bob.id)).body.data.viewer).toBeNull();
    const text = await metrics();
    expect(routes(text, 'mutation')).toBe(1);
    expect(routes(text, 'read_your_writes')).toBeGreaterThanOrEqual(1);
  });

  it('reads public data from the primary once it changed, and drops the answers cached from the replica', async () => {
    const stale = await quote(); // cached from the replica
    expect(stale.latestPrice.close).toBe('10');
    // a new close on the primary, announced as writers do
    await notifyInvalidation(primary.db, [`Instrument:${stale.id}`]);
    const found = await until(quote, (answer) => answer.latestPrice.close === '11');
    expect(found.latestPrice).toEqual({ date: '2024-01-31', close: '11' });
    expect(routes(await metrics(), 'catch_up')).toBeGreaterThanOrEqual(1);
  });
});

// A replica that dies: a PostgreSQL server of the test's own, stopped while the server reads from it.
// Reads it cannot run for a connection reason run again on the primary: no query fails for it.
describe.runIf(onPostgres && privatePostgresBin)('a replica that dies (PostgreSQL)', () => {
  let primary: TestDatabase;
  let cluster: PrivatePostgres;
  let server: TestServer;
  let symbol: string;

  beforeAll(async () => {
    primary = await createTestDatabase();
    symbol = (await seed(primary.db).instrument(['10', '11'], { last: '2024-01-31' })).symbol;
    cluster = await startPrivatePostgres();
    // the replica has the instrument without its last close: answers show where they were read
    const replica = await createDatabase({ databaseUrl: cluster.url, pgliteDataDir: 'memory://', dbPoolMax: 2 });
    await migrate(replica);
    await seed(replica.db).instrument(['10'], { symbol, last: '2024-01-30' });
    await replica.close();
    // checked once, at start: the read after the stop finds the replica gone itself, not through a check
    server = await startTestServer(primary, {
      READ_REPLICA_URLS: cluster.url,
      READ_REPLICA_CHECK_MS: '60000',
      READ_REPLICA_MAX_LAG_MS: '60000',
      RESPONSE_CACHE: 'off',
      HOT_CACHE_TTL_MS: '0',
    });
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    cluster?.destroy();
    await primary?.destroy();
  });

  const quote = () => server.post({ query: 'query($s: String!) { instrument(symbol: $s) { latestPrice { date close } } }', variables: { s: symbol } });
  const metrics = async () => (await fetch(server.url.replace('/graphql', '/metrics'))).text();

  it('runs the reads of a replica that went away on the primary, marks it down at once, and counts the failover', async () => {
    expect((await quote()).body.data.instrument.latestPrice).toEqual({ date: '2024-01-30', close: '10' });
    expect(await metrics()).toMatch(/^foliograph_db_replica_pool_connections\{replica="0",state="in_use"\} 0$/m);
    cluster.stop();
    // the first read after: its replica fails it, the primary answers it
    const during = await quote();
    expect(during.status).toBe(200);
    expect(during.body.errors).toBeUndefined();
    expect(during.body.data.instrument.latestPrice).toEqual({ date: '2024-01-31', close: '11' });
    const text = await metrics();
    expect(metricSum(text, 'foliograph_db_replica_failovers_total', { replica: '0' })).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^foliograph_db_replica_up\{replica="0"\} 0$/m);
    // and the next reads go to the primary without trying the replica
    const failovers = metricSum(text, 'foliograph_db_replica_failovers_total');
    for (let i = 0; i < 3; i++) expect((await quote()).body.data.instrument.latestPrice.close).toBe('11');
    const after = await metrics();
    expect(metricSum(after, 'foliograph_db_replica_failovers_total')).toBe(failovers);
    expect(metricSum(after, 'foliograph_db_read_routes_total', { reason: 'no_healthy_replica' })).toBeGreaterThanOrEqual(3);
  }, 60_000);
});
