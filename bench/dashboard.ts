// The dashboard benchmark of issue 13, side by side in one run: the floor (one statement behind
// node:http), PostGraphile v5 over the same tables, foliograph built with caching off and on, and a
// bare LRU server, each started in turn as a child process on the same scale-10 PostgreSQL database,
// checked to answer the same dashboards, then driven by autocannon with a different user's dashboard
// on every request. Prints req/s, p50, p99, SQL per request (pg_stat_statements), Node CPU per
// request (/proc/<pid>/stat of the server) and the ratios to PostGraphile and to the floor.
//
//   npm run bench -- dashboard [--seconds 15] [--connections 20] [--rounds 1] [--only floor,uncached]
//   npm run bench -- dashboard --profile [cached]
//
// Progress goes to stderr, the report to stdout. Nothing here passes or fails on speed: the machine is
// shared and noisy, compare only within one run.
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import postgres from 'postgres';
import { signUserToken } from '../src/admission/tokens.js';
import { SCALE_SHAPE } from '../src/tools/seed/scale.js';
import { projectRoot } from '../src/paths.js';
import { differences, fromFoliograph, fromPostGraphile, FOLIOGRAPH_DASHBOARD, POSTGRAPHILE_DASHBOARD, type Dashboard } from './dashboard-answers.js';
import { ensureSeeded, sqlCounter, startCluster, type SqlCounter } from './postgres.js';
import { formatProfileSummary, summariseProfile, type CpuProfile } from './profile-summary.js';

const USAGE = `npm run bench -- dashboard [options]

  --seconds N          measured seconds per server (default 15)
  --connections N      autocannon connections (default 20)
  --warmup N           seconds of the same load before each measured window, not counted (default 3)
  --rounds N           run every server N times, one after the other (default 1)
  --only a,b           only these servers: floor, postgraphile, uncached, cached, lru
  --database-url URL   an existing database instead of the benchmark's own PostgreSQL cluster
                       (SQL is counted only where pg_stat_statements is loaded; else "n/a")
  --pg-dir DIR         the own cluster's data directory (default .data/bench-pg; port 5470)
  --scale N            db:seed --scale N when the database is not seeded yet (default 10)
  --profile [cached]   instead: CPU-profile foliograph (uncached unless "cached") under the same load,
                       write the .cpuprofile under .data/bench-profiles/ and print it by package`;

const SECRET = 'bench-dashboard-secret-0123456789abcdef';
const PG_PORT = 5470;
const FIRST_PORT = 4700;
const SAME_DATA_USERS = 5;
/** The forecast model every server reads the latest forecast of: ewma, as in the README's figures (fhs, the default since, reads the same way). */
const DEFAULT_MODEL = 'ewma';
const say = (m: string) => process.stderr.write(`${m}\n`);

interface Options {
  seconds: number;
  connections: number;
  warmup: number;
  rounds: number;
  only: string[] | null;
  databaseUrl: string | null;
  pgDir: string;
  scale: number;
  profile: 'uncached' | 'cached' | null;
}

function parseOptions(args: string[]): Options {
  const o: Options = {
    seconds: 15,
    connections: 20,
    warmup: 3,
    rounds: 1,
    only: null,
    databaseUrl: null,
    pgDir: join(projectRoot, '.data', 'bench-pg'),
    scale: 10,
    profile: null,
  };
  const number = (name: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < (name === 'warmup' ? 0 : 1)) throw new Error(`--${name} needs a positive number, got ${v ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => args[++i];
    if (a === '--seconds') o.seconds = number('seconds', value());
    else if (a === '--connections') o.connections = number('connections', value());
    else if (a === '--warmup') o.warmup = number('warmup', value());
    else if (a === '--rounds') o.rounds = number('rounds', value());
    else if (a === '--scale') o.scale = number('scale', value());
    else if (a === '--only') o.only = (value() ?? '').split(',').filter(Boolean);
    else if (a === '--database-url') o.databaseUrl = value() ?? null;
    else if (a === '--pg-dir') o.pgDir = value() ?? o.pgDir;
    else if (a === '--profile') o.profile = args[i + 1] === 'cached' || args[i + 1] === 'uncached' ? (value() as 'cached' | 'uncached') : 'uncached';
    else throw new Error(`unknown option ${a}\n\n${USAGE}`);
  }
  return o;
}

interface User {
  id: number;
  token: string;
}

interface DashboardRequest {
  headers: Record<string, string>;
  body: string;
}

/** One server under test: how to start it, how to ask it for a user's dashboard, how to read its answer. */
interface ServerSpec {
  name: string;
  label: string;
  /** Node's arguments after its own flags: a script and its arguments. */
  script: string[];
  env: Record<string, string>;
  ready: (port: number) => Promise<boolean>;
  request: (user: User) => DashboardRequest;
  answer: (json: unknown) => Dashboard;
  /** Ask every user's dashboard once before measuring, so that every measured request is a hit. */
  warmCache?: boolean;
  /** foliograph: read its response-cache counters from /metrics. */
  metrics?: boolean;
}

const answered = (port: number, path: string) =>
  fetch(`http://127.0.0.1:${port}${path}`).then(
    (r) => r.ok,
    () => false,
  );

function specs(modelId: number): ServerSpec[] {
  const json = { 'content-type': 'application/json' };
  const bearer = (u: User) => ({ ...json, authorization: `Bearer ${u.token}` });
  const foliographBody = JSON.stringify({ query: FOLIOGRAPH_DASHBOARD, operationName: 'Dashboard' });
  const foliograph = (env: Record<string, string>) => ({
    script: [join(projectRoot, 'dist', 'main.js')],
    env: { NODE_ENV: 'production', LOG_LEVEL: 'warn', RATE_LIMIT_COST_PER_MINUTE: '1000000000', ...env },
    ready: (port: number) => answered(port, '/readyz'),
    request: (u: User) => ({ headers: bearer(u), body: foliographBody }),
    answer: fromFoliograph,
    metrics: true,
  });
  const bare = (file: string) => ({
    script: ['--import', 'tsx', join(projectRoot, 'bench', 'servers', file)],
    env: {},
    ready: (port: number) => answered(port, '/healthz'),
    request: (u: User) => ({ headers: bearer(u), body: foliographBody }),
    answer: fromFoliograph,
  });
  return [
    { name: 'floor', label: 'one hand-written json statement behind node:http (the floor)', ...bare('floor.ts') },
    {
      name: 'postgraphile',
      label: 'PostGraphile v5.1.5 (Amber + simplify-inflection)',
      script: ['--import', 'tsx', join(projectRoot, 'bench', 'servers', 'postgraphile.ts')],
      env: { NODE_ENV: 'production' },
      ready: (port) =>
        fetch(`http://127.0.0.1:${port}/graphql`, { method: 'POST', headers: json, body: '{"query":"{ __typename }"}' }).then(
          (r) => r.ok,
          () => false,
        ),
      // PostGraphile is asked by user id: it checks no token (the header is sent all the same)
      request: (u) => ({
        headers: bearer(u),
        body: JSON.stringify({ query: POSTGRAPHILE_DASHBOARD, operationName: 'Dashboard', variables: { id: u.id, m: modelId } }),
      }),
      answer: fromPostGraphile,
    },
    {
      name: 'uncached',
      label: 'foliograph built, production, `RESPONSE_CACHE=off HOT_CACHE_TTL_MS=0`',
      ...foliograph({ RESPONSE_CACHE: 'off', HOT_CACHE_TTL_MS: '0' }),
    },
    { name: 'cached', label: 'foliograph built, production, every request a response-cache hit', ...foliograph({ RESPONSE_CACHE: 'on' }), warmCache: true },
    { name: 'lru', label: 'bare node:http answering from an in-process LRU', ...bare('lru.ts'), warmCache: true },
  ];
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the third (state) on
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

interface Running {
  child: ChildProcess;
  port: number;
  stop(): Promise<void>;
}

async function start(spec: ServerSpec, port: number, databaseUrl: string, nodeFlags: string[] = []): Promise<Running> {
  if (
    await fetch(`http://127.0.0.1:${port}/`).then(
      () => true,
      () => false,
    )
  )
    throw new Error(`port ${port} is in use: stop what listens there first`);
  const child = spawn(process.execPath, [...nodeFlags, ...spec.script], {
    cwd: projectRoot,
    // only what the server needs: no REDIS_URL, replicas or the like from this shell
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      JWT_SECRET: SECRET,
      DB_POOL_MAX: '10',
      FORECAST_DEFAULT_MODEL: DEFAULT_MODEL,
      ...spec.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => void (output = (output + chunk.toString()).slice(-4000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${spec.name} exited at start (code ${child.exitCode}):\n${output}`);
    if (await spec.ready(port)) return { child, port, stop };
    await sleep(100);
  }
  await stop();
  throw new Error(`${spec.name} did not become ready in 60 s:\n${output}`);
}

async function ask(port: number, r: DashboardRequest): Promise<{ json: unknown; bytes: number }> {
  const res = await fetch(`http://127.0.0.1:${port}/graphql`, { method: 'POST', headers: r.headers, body: r.body });
  const text = await res.text();
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 300)}`);
  return { json: JSON.parse(text), bytes: Buffer.byteLength(text) };
}

/** Every user's dashboard once, a few at a time: afterwards every answer is in the server's cache. */
async function warmCache(spec: ServerSpec, port: number, users: User[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < users.length) await ask(port, spec.request(users[next++]));
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

async function cacheCounters(port: number): Promise<{ hits: number; misses: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sum = (result: string) =>
    [...text.matchAll(new RegExp(`^foliograph_response_cache_requests_total\\{[^}]*result="${result}"[^}]*\\} (\\S+)$`, 'gm'))].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
  return { hits: sum('hit'), misses: sum('miss') };
}

interface Measurement {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  sqlPerRequest: number | null;
  /** PostgreSQL's execution time per request (pg_stat_statements' total_exec_time), ms. */
  pgMsPerRequest: number | null;
  cpuMsPerRequest: number;
  hits?: { hits: number; misses: number };
  /** process.hrtime microseconds, to cut a CPU profile to the measured window. */
  window: { start: number; end: number };
}

function load(spec: ServerSpec, port: number, users: User[], connections: number, seconds: number) {
  const prepared = users.map((u) => spec.request(u));
  let next = 0; // round robin: no two consecutive requests ask for the same dashboard
  return autocannon({
    url: `http://127.0.0.1:${port}/graphql`,
    connections,
    duration: seconds,
    requests: [{ method: 'POST', setupRequest: (req) => ({ ...req, ...prepared[next++ % prepared.length] }) }],
  });
}

/**
 * Waits until a server has finished the requests it was sent (autocannon stops with some in flight,
 * which the server still answers): its CPU use falls quiet, or 5 s pass.
 */
async function settle(pid: number): Promise<void> {
  for (let i = 0; i < 25; i++) {
    const before = cpuMs(pid);
    await sleep(200);
    if (cpuMs(pid) - before < 20) return;
  }
}

// CPU and SQL are counted from a quiet server to a quiet server, and divided by the requests sent
// (those still in flight when the load stopped included), so neither the warm-up's tail nor the
// last requests' work is counted without its request.
async function measure(spec: ServerSpec, running: Running, users: User[], o: Options, counter: SqlCounter | null): Promise<Measurement> {
  const pid = running.child.pid!;
  if (o.warmup > 0) await load(spec, running.port, users, o.connections, o.warmup);
  await settle(pid);
  const before = spec.metrics ? await cacheCounters(running.port) : null;
  await counter?.reset();
  const cpuBefore = cpuMs(pid);
  const start = Number(process.hrtime.bigint() / 1000n);
  const result = await load(spec, running.port, users, o.connections, o.seconds);
  const end = Number(process.hrtime.bigint() / 1000n);
  await settle(pid);
  const cpu = cpuMs(pid) - cpuBefore;
  const statements = counter ? await counter.read() : null;
  const after = spec.metrics ? await cacheCounters(running.port) : null;
  const sent = Math.max(result.requests.sent, 1);
  return {
    requests: result.requests.total,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx + result.timeouts,
    sqlPerRequest: statements === null ? null : statements.statements / sent,
    pgMsPerRequest: statements === null ? null : statements.execMs / sent,
    cpuMsPerRequest: cpu / sent,
    hits: before && after ? { hits: after.hits - before.hits, misses: after.misses - before.misses } : undefined,
    window: { start, end },
  };
}

/** The users picked for the same-data check: spread over the list. */
const sample = (users: User[]) =>
  Array.from({ length: Math.min(SAME_DATA_USERS, users.length) }, (_, i) => users[Math.floor((i * (users.length - 1)) / Math.max(SAME_DATA_USERS - 1, 1))]);

/** The build, when dist/ is missing or older than anything in src/. */
function buildIfStale(): void {
  const built = join(projectRoot, 'dist', 'main.js');
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce(
      (t, e) => Math.max(t, e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs),
      0,
    );
  if (existsSync(built) && statSync(built).mtimeMs >= newest(join(projectRoot, 'src'))) return;
  say('building foliograph (npm run build)');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: projectRoot, stdio: ['ignore', 'inherit', 'inherit'] });
}

interface Setup {
  databaseUrl: string;
  users: User[];
  modelId: number;
  counter: SqlCounter | null;
  postgresVersion: string;
  close(): Promise<void>;
}

async function setUp(o: Options): Promise<Setup> {
  const cluster = o.databaseUrl ? null : startCluster({ dir: o.pgDir, port: PG_PORT }, say);
  try {
    const databaseUrl = o.databaseUrl ?? cluster!.url.replace(/\/postgres$/, '/foliograph_bench');
    const ids = await ensureSeeded(databaseUrl, o.scale, SCALE_SHAPE.usersPerUnit, say);
    const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    const [model] = await sql`select m.id, current_setting('server_version') as version from forecast_models m where m.name = ${DEFAULT_MODEL} and m.active`;
    await sql.end();
    if (!model) throw new Error(`the forecast model ${DEFAULT_MODEL} has no active version: run npm run forecasts:generate`);
    const counter = await sqlCounter(databaseUrl, cluster !== null);
    if (!counter) say('pg_stat_statements is not loaded in that database: SQL per request is "n/a"');
    const users = await Promise.all(ids.map(async (id) => ({ id, token: await signUserToken(SECRET, id, '12h') })));
    return {
      databaseUrl,
      users,
      modelId: Number(model.id),
      counter,
      postgresVersion: String(model.version).split(' ')[0],
      async close() {
        await counter?.close();
        cluster?.stop();
      },
    };
  } catch (e) {
    cluster?.stop();
    throw e;
  }
}

function header(o: Options, s: Setup, args: string[]): string[] {
  const cpu = cpus();
  return [
    `npm run bench -- dashboard${args.length ? ` ${args.join(' ')}` : ''}`,
    '',
    `machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown CPU'}), Node.js ${process.version}, PostgreSQL ${s.postgresVersion}; load average ${loadavg()[0].toFixed(1)} at the start`,
    `load: ${o.connections} connections, ${o.seconds} s per server after ${o.warmup} s of warm-up, round robin over ${s.users.length} users' dashboards; autocannon runs in this process, on the same cores`,
  ];
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

export async function dashboardBenchmark(args: string[]): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) return void process.stdout.write(`${USAGE}\n`);
  const o = parseOptions(args);
  buildIfStale();
  const setup = await setUp(o);
  try {
    if (o.profile) await profile(o, setup, args);
    else await sideBySide(o, setup, args);
  } finally {
    await setup.close();
  }
}

async function sideBySide(o: Options, s: Setup, args: string[]): Promise<void> {
  const all = specs(s.modelId);
  const unknown = (o.only ?? []).filter((n) => !all.some((x) => x.name === n));
  if (unknown.length) throw new Error(`unknown server ${unknown.join(', ')} (known: ${all.map((x) => x.name).join(', ')})`);
  const chosen = o.only ? all.filter((x) => o.only!.includes(x.name)) : all;
  const checked = sample(s.users);
  let reference: { name: string; dashboards: Dashboard[]; bytes: number } | null = null;
  const results = new Map<string, Measurement[]>(chosen.map((x) => [x.name, []]));

  for (let round = 1; round <= o.rounds; round++) {
    for (const [i, spec] of chosen.entries()) {
      say(`round ${round}: ${spec.name}: starting`);
      const running = await start(spec, FIRST_PORT + i, s.databaseUrl);
      try {
        if (round === 1) {
          const answers = await Promise.all(checked.map((u) => ask(running.port, spec.request(u)))).catch((e) => {
            throw new Error(`${spec.name} answered ${(e as Error).message}; no figures printed`);
          });
          const dashboards = answers.map((a, k) => {
            try {
              return spec.answer(a.json);
            } catch (e) {
              throw new Error(`${spec.name} ${(e as Error).message} for user ${checked[k].id}; no figures printed`);
            }
          });
          if (!reference) reference = { name: spec.name, dashboards, bytes: answers.reduce((n, a) => n + a.bytes, 0) / answers.length };
          else {
            const found = dashboards.flatMap((d, k) => differences(reference!.dashboards[k], d).map((line) => `user ${checked[k].id}: ${line}`));
            if (found.length)
              throw new Error(
                `${spec.name} does not answer the same data as ${reference.name} (${reference.name}'s value first):\n  ${found.slice(0, 10).join('\n  ')}\nno figures printed`,
              );
          }
        }
        if (spec.warmCache) {
          say(`round ${round}: ${spec.name}: warming its cache with every user's dashboard`);
          await warmCache(spec, running.port, s.users);
        }
        say(`round ${round}: ${spec.name}: measuring`);
        results.get(spec.name)!.push(await measure(spec, running, s.users, o, s.counter));
      } finally {
        await running.stop();
      }
    }
  }
  process.stdout.write(`${report(o, s, args, chosen, results, reference!).join('\n')}\n`);
}

function report(
  o: Options,
  s: Setup,
  args: string[],
  chosen: ServerSpec[],
  results: Map<string, Measurement[]>,
  reference: { name: string; dashboards: Dashboard[]; bytes: number },
): string[] {
  const per = (name: string) => results.get(name);
  const cells = (name: string, f: (m: Measurement, round: number) => string) => per(name)!.map(f).join(' / ');
  const ratio = (name: string, to: string, f: (m: Measurement) => number) => (per(to) ? cells(name, (m, r) => `${(f(m) / f(per(to)![r])).toFixed(2)}×`) : '–');
  const lines = [
    ...header(o, s, args),
    `same data: every server answered the same dashboards as ${reference.name} for users ${sample(s.users)
      .map((u) => u.id)
      .join(', ')} (about ${fmt(reference.bytes / 1024, 1)} kB each; decimals compared as decimals)`,
  ];
  for (const spec of chosen.filter((x) => x.warmCache)) {
    const hits = per(spec.name)!
      .map((m) => (m.hits ? `${fmt(m.hits.hits)} hits, ${fmt(m.hits.misses)} misses` : null))
      .filter(Boolean);
    lines.push(`${spec.name}: warmed with every user's dashboard before measuring${hits.length ? `; measured: ${hits.join(' / ')}` : ''}`);
  }
  lines.push(
    '',
    `| server | req/s${o.rounds > 1 ? ` (${o.rounds} rounds)` : ''} | p50 ms | p99 ms | SQL/request | PostgreSQL ms/request | Node CPU ms/request | req/s ÷ PostGraphile | req/s ÷ floor | CPU ÷ PostGraphile | errors |`,
    '|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const spec of chosen) {
    lines.push(
      `| ${spec.label} | ${cells(spec.name, (m) => fmt(m.rps))} | ${cells(spec.name, (m) => fmt(m.p50))} | ${cells(spec.name, (m) => fmt(m.p99))} | ` +
        `${cells(spec.name, (m) => (m.sqlPerRequest === null ? 'n/a' : fmt(m.sqlPerRequest, 2)))} | ${cells(spec.name, (m) => (m.pgMsPerRequest === null ? 'n/a' : fmt(m.pgMsPerRequest, 2)))} | ` +
        `${cells(spec.name, (m) => fmt(m.cpuMsPerRequest, 2))} | ` +
        `${ratio(spec.name, 'postgraphile', (m) => m.rps)} | ${ratio(spec.name, 'floor', (m) => m.rps)} | ${ratio(spec.name, 'postgraphile', (m) => m.cpuMsPerRequest)} | ` +
        `${cells(spec.name, (m) => fmt(m.errors))} |`,
    );
  }
  const goals: string[] = [];
  if (per('uncached') && per('postgraphile')) {
    goals.push(
      `uncached at ${ratio('uncached', 'postgraphile', (m) => m.rps)} PostGraphile's throughput (goal ≥ 1.2×), ` +
        `${cells('uncached', (m) => (m.sqlPerRequest === null ? 'n/a' : fmt(m.sqlPerRequest, 2)))} SQL/request (goal ≤ 4), ` +
        `${ratio('uncached', 'postgraphile', (m) => m.cpuMsPerRequest)} its CPU per request (goal ≤ 1×)`,
    );
  }
  if (per('cached') && per('lru')) goals.push(`a cache hit at ${ratio('cached', 'lru', (m) => m.rps)} the bare LRU server's throughput (goal ≥ 0.5×)`);
  if (goals.length) lines.push('', `goals of issue 13: ${goals.join('; ')}`);
  return lines;
}

async function profile(o: Options, s: Setup, args: string[]): Promise<void> {
  const spec = specs(s.modelId).find((x) => x.name === o.profile)!;
  const dir = join(projectRoot, '.data', 'bench-profiles');
  mkdirSync(dir, { recursive: true });
  const name = `foliograph-${spec.name}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`;
  say(`profiling foliograph ${spec.name}`);
  const running = await start(spec, FIRST_PORT, s.databaseUrl, ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-name', name]);
  let m: Measurement;
  try {
    if (spec.warmCache) await warmCache(spec, running.port, s.users);
    m = await measure(spec, running, s.users, o, s.counter);
  } finally {
    await running.stop(); // the profile is written as the process exits
  }
  const file = join(dir, name);
  if (!existsSync(file)) throw new Error(`no profile was written at ${file}`);
  const cpuProfile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  let summary = summariseProfile(cpuProfile, projectRoot, m.window);
  let scope = 'the measured window only';
  if (summary.samples === 0) {
    summary = summariseProfile(cpuProfile, projectRoot); // the clocks did not line up: the whole run
    scope = 'the whole run (start-up and warm-up included)';
  }
  process.stdout.write(
    [
      ...header(o, s, args),
      `foliograph ${spec.name}, profiled (--cpu-prof slows it): ${fmt(m.rps)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms, ` +
        `${m.sqlPerRequest === null ? 'n/a' : fmt(m.sqlPerRequest, 2)} SQL/request, ${m.pgMsPerRequest === null ? 'n/a' : fmt(m.pgMsPerRequest, 2)} ms PostgreSQL/request, ${fmt(m.cpuMsPerRequest, 2)} ms Node CPU/request, ${m.errors} errors` +
        (m.hits && spec.warmCache ? `, ${fmt(m.hits.hits)} cache hits and ${fmt(m.hits.misses)} misses` : ''),
      `profile: ${file} (open it in Chrome DevTools or speedscope); summarised over ${scope}`,
      '',
      formatProfileSummary(summary),
    ].join('\n') + '\n',
  );
}
