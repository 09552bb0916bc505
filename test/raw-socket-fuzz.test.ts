import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../src/tools/random.js';
import { spawnServer, stopProcess, waitReady, type ServerProcess } from './helpers/process.js';

// Below HTTP: a seeded fuzz of raw bytes on TCP sockets (request lines, methods, targets that node's
// parser takes and URL does not, header floods, lying lengths, broken chunking, truncated, slow and
// abandoned bodies, pipelining) against `npm start` in a child process (production mode, embedded
// database in memory, tight HTTP timeouts). What must hold: nothing is answered 500 or
// INTERNAL_SERVER_ERROR, nothing logs an error, every socket is answered or closed by the server
// within its timeouts (none hangs), a client asking normal questions meanwhile is served throughout,
// and the process is alive and serving afterwards. Then a planted unhandled rejection is logged,
// counted and survived. Replay a failure with FUZZ_SEED=<seed> (FUZZ_RUNS changes the count).

const SEED = Number(process.env.FUZZ_SEED ?? 20_260_112);
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const CONCURRENCY = 10;
const HEADERS_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 2000;
const KEEP_ALIVE_TIMEOUT_MS = 1000;
/** A socket still open this long after it connected was neither answered nor cut off: it hangs. */
const HANG_MS = 8000;
const ALLOWED_STATUS = new Set([100, 200, 204, 400, 401, 403, 404, 405, 406, 408, 413, 415, 429, 431, 503]);

interface RawCase {
  kind: string;
  /** What is written, in order, `gapMs` apart. */
  pieces: Buffer[];
  gapMs: number;
  /** After the last piece: half-close, keep the socket open (the server must close it), or reset it. */
  then: 'end' | 'keep' | 'destroy';
}

interface Outcome {
  kind: string;
  statuses: number[];
  text: string;
  hung: boolean;
}

function generator(random: () => number) {
  const int = (n: number) => Math.floor(random() * n);
  const chance = (p: number) => random() < p;
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const deep = (n: number) => `${'['.repeat(n)}1${']'.repeat(n)}`;
  const cursor = (text: string) => Buffer.from(text).toString('base64url');

  const METHODS = [
    'GET',
    'POST',
    'OPTIONS',
    'HEAD',
    'PUT',
    'DELETE',
    'PATCH',
    'CONNECT',
    'TRACE',
    'get',
    'post',
    'XYZZY',
    'PRI',
    'M'.repeat(300),
    'GE T',
    'POST\u0000',
    '',
  ];
  const TARGETS = [
    '//:99999',
    '//[',
    '//a:b:c',
    '//:0',
    '//[::1',
    '//user@:1/graphql',
    '//%zz/graphql',
    'http://[/graphql',
    'http://evil.example/graphql',
    '//evil.example/graphql',
    '*',
    '/%',
    '/%00',
    '/%E0%A4%A',
    '/graphql?%',
    '/graphql?query=%zz',
    '/graphql#x',
    '/graphql/../graphql',
    '/' + 'a'.repeat(20_000),
    '?',
    '',
    ' ',
    '/\t/',
    '/healthz',
    '/readyz',
    '/metrics',
    '/nope',
    '/graphql',
    '/graphql?query=' + encodeURIComponent('{ __typename }'),
    '/graphql?query=' + encodeURIComponent('query($v: Int) { __typename }') + '&variables=' + encodeURIComponent(`{"v":${deep(3000)}}`),
    '/graphql?query=' + encodeURIComponent('{ __typename }') + '&extensions=' + encodeURIComponent(deep(3000)),
  ];
  const BODIES = [
    '{"query":"{ __typename }"}',
    '{"query":"{ instrument(symbol: \\"AAPL\\") { symbol latestPrice { close } } }"}',
    JSON.stringify({
      query: 'query($f: Int, $a: String) { instruments(first: $f, after: $a) { totalCount } }',
      variables: { f: 2, a: cursor('["instruments","A\\u0000"]') },
    }),
    JSON.stringify({ query: '{ instruments(first: 1) { totalCount } }', variables: { junk: 1 } }).replace('1}', `${deep(20_000)}}`),
    JSON.stringify({ query: '{ __typename }', extensions: { persistedQuery: { version: 1, sha256Hash: 'x'.repeat(64) } } }),
    JSON.stringify({ query: 'mutation { createPortfolio(input: { name: "raw" }) { portfolio { id } } }' }),
    '{"query":',
    '[{"query":"{ __typename }"}]',
    'null',
    '"x"',
    '{"query":"{ __typename }"}garbage',
    '\u0000\u0001\u0002',
    '{'.repeat(50_000),
  ];

  const header = (): [string, string] =>
    pick<() => [string, string]>([
      () => ['authorization', pick(['Bearer x', 'Bearer ', 'Basic Zm9vOmJhcg==', 'Bearer ' + 'a'.repeat(2000), 'bearer a.b.c'])],
      () => ['x-api-key', pick(['', 'x', 'fgk_' + 'a'.repeat(60), '\u00ff'])],
      () => ['origin', pick(['http://localhost:3000', 'null', 'https://evil.example', '\u00ff'])],
      () => ['x-request-id', pick(['a b', 'x'.repeat(500), 'ok-1'])],
      () => ['apollo-require-preflight', 'true'],
      () => ['accept', pick(['application/json', 'application/graphql-response+json', 'text/html', '*/*', 'application/xml', ''])],
      () => ['expect', '100-continue'],
      () => ['connection', pick(['close', 'keep-alive', 'upgrade', 'x'])],
      () => ['upgrade', 'websocket'],
      () => ['x-huge', 'h'.repeat(chance(0.5) ? 20_000 : 5_000)],
      () => ['bad header', 'x'],
      () => ['x-nul', 'a\u0000b'],
      () => ['x-fold', 'a\r\n folded'],
      () => [pick(['apollographql-client-name', 'apollographql-client-version']), pick(['web', 'x'.repeat(1000), '\u00e9'])],
    ])();

  const chunked = (body: string): string => {
    const size = Buffer.byteLength(body);
    return pick([
      () => `${size.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
      () => `${(size + 5).toString(16)}\r\n${body}\r\n0\r\n\r\n`, // a size that lies
      () => `${size.toString(16)};ext=${'e'.repeat(100)}\r\n${body}\r\n0\r\n\r\n`,
      () => `ffffffffffffffff\r\n${body}`, // absurd size
      () => `${size.toString(16)}\r\n${body}\r\n`, // no last chunk
      () => `zz\r\n${body}\r\n0\r\n\r\n`,
      () => `-1\r\n${body}\r\n0\r\n\r\n`,
    ])();
  };

  const request = (): { kind: string; text: string } => {
    const method = chance(0.45) ? 'POST' : chance(0.5) ? 'GET' : pick(METHODS);
    const target = chance(0.5) ? '/graphql' : pick(TARGETS);
    const version = chance(0.9) ? 'HTTP/1.1' : pick(['HTTP/1.0', 'HTTP/2.0', 'HTTP/9.9', 'HTTP/1.1 extra', 'HTTP/', '']);
    const body = method === 'GET' || chance(0.1) ? (chance(0.8) ? '' : pick(BODIES)) : pick(BODIES);
    const headers: [string, string][] = [];
    if (chance(0.95)) headers.push(['host', chance(0.9) ? '127.0.0.1' : pick(['', 'a b', 'x'.repeat(300)])]);
    if (chance(0.9))
      headers.push([
        'content-type',
        chance(0.8)
          ? 'application/json'
          : pick(['text/plain', 'application/graphql-response+json', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', '\u00ff']),
      ]);
    if (method === 'GET' && chance(0.7)) headers.push(['apollo-require-preflight', 'true']);
    for (let n = int(3); n > 0; n--) headers.push(header());
    if (chance(0.05)) for (let n = 0; n < 150; n++) headers.push([`x-many-${n}`, 'v']);

    let kind = `${method.slice(0, 10)} ${target.slice(0, 30)}`;
    let framed = body;
    const length = Buffer.byteLength(body);
    const framing = int(10);
    if (framing < 6) headers.push(['content-length', String(length)]);
    else if (framing === 6) {
      headers.push(['content-length', String(length + 1 + int(5000))]); // more than will come: a truncated body
      kind += ' truncated';
    } else if (framing === 7) {
      headers.push(['content-length', pick([String(Math.max(0, length - 3)), '-1', 'abc', '1e3', ' 5', '99999999999999999999'])]);
      kind += ' bad length';
    } else if (framing === 8) {
      headers.push(['transfer-encoding', pick(['chunked', 'chunked', 'gzip, chunked', 'identity', 'chunked, chunked'])]);
      if (chance(0.2)) headers.push(['content-length', String(length)]);
      framed = chunked(body);
      kind += ' chunked';
    } else {
      headers.push(['content-length', String(length)], ['content-length', String(length + 1)]);
      kind += ' two lengths';
    }
    const lines = [`${method} ${target} ${version}`.trimEnd(), ...headers.map(([k, v]) => `${k}: ${v}`)];
    return { kind, text: `${lines.join('\r\n')}\r\n\r\n${framed}` };
  };

  return (): RawCase => {
    const first = request();
    const pipelined = chance(0.1) ? request() : null;
    const bytes = Buffer.from(first.text + (pipelined?.text ?? ''), chance(0.9) ? 'utf8' : 'latin1');
    const style = int(10);
    if (style < 6) return { kind: `${first.kind}${pipelined ? ' +pipelined' : ''}`, pieces: [bytes], gapMs: 0, then: chance(0.5) ? 'end' : 'keep' };
    if (style < 8) {
      // cut short: part of the request, then the client resets or half-closes
      const cut = bytes.subarray(0, 1 + int(bytes.length - 1));
      return { kind: `${first.kind} cut`, pieces: [cut], gapMs: 0, then: chance(0.5) ? 'destroy' : 'end' };
    }
    // slow: the request trickles in (headers or body), far slower than the server's timeouts allow
    const size = 1 + int(3);
    const pieces: Buffer[] = [];
    for (let at = 0; at < bytes.length && pieces.length < 40; at += size) pieces.push(bytes.subarray(at, at + size));
    return { kind: `${first.kind} slow`, pieces, gapMs: 150 + int(100), then: 'keep' };
  };
}

/** Plays one case on a new socket; resolves when the server has closed it (or it hangs past HANG_MS). */
function play(port: number, c: RawCase): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let hung = false;
    let writing: NodeJS.Timeout | undefined;
    const hang = setTimeout(() => {
      hung = true;
      socket.destroy();
    }, HANG_MS);
    socket.on('data', (d) => received.push(d));
    socket.on('error', () => {}); // a reset by either side is an outcome, not a failure
    socket.on('close', () => {
      clearTimeout(hang);
      clearTimeout(writing);
      const text = Buffer.concat(received).toString('latin1');
      const statuses = [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
      resolve({ kind: c.kind, statuses, text, hung });
    });
    socket.once('connect', () => {
      let i = 0;
      const next = () => {
        if (socket.destroyed) return;
        if (i < c.pieces.length) {
          socket.write(c.pieces[i++]);
          writing = setTimeout(next, c.gapMs);
          return;
        }
        if (c.then === 'end') socket.end();
        else if (c.then === 'destroy') socket.destroy();
      };
      next();
    });
  });
}

describe('raw sockets against the server process', () => {
  let server: ServerProcess;
  let port: number;

  beforeAll(async () => {
    server = await spawnServer(
      {
        ...process.env,
        DATABASE_URL: '',
        PGLITE_DATA_DIR: 'memory://',
        NODE_ENV: 'production',
        JWT_SECRET: 'raw-socket-fuzz-secret-0123456789',
        LOG_LEVEL: 'info',
        PORT: '0',
        HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
        HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        HTTP_KEEP_ALIVE_TIMEOUT_MS: String(KEEP_ALIVE_TIMEOUT_MS),
      },
      ['./test/helpers/plant-rejection.ts'],
    );
    port = Number(new URL(server.base).port);
    await waitReady(server.base);
  }, 180_000);
  afterAll(async () => {
    if (server) await stopProcess(server.child);
  });

  const quote = async () => {
    const res = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ instrument(symbol: "AAPL") { symbol latestPrice { date close } } }' }),
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  it(`answers or closes every one of ${RUNS} hostile connections, never with a 500, and keeps serving (seed ${SEED})`, async () => {
    const next = generator(seededRandom(SEED));
    const cases = Array.from({ length: RUNS }, next);
    const outcomes: Outcome[] = [];
    let done = false;
    // a well-behaved client asking all along: every one of its questions is answered
    const canary = (async () => {
      const answers: string[] = [];
      while (!done) {
        answers.push(
          await quote().then(
            ({ status, body }) => `${status} ${body.data?.instrument?.symbol}`,
            (e: Error) => e.message,
          ),
        );
        await new Promise((r) => setTimeout(r, 100));
      }
      return answers;
    })();
    let at = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (at < cases.length) outcomes.push(await play(port, cases[at++]));
      }),
    );
    done = true;
    const canaryAnswers = await canary;

    expect(server.child.exitCode).toBeNull();
    expect(canaryAnswers.length).toBeGreaterThan(0);
    expect(canaryAnswers.filter((a) => a !== '200 AAPL')).toEqual([]);
    expect(outcomes.filter((o) => o.hung).map((o) => o.kind)).toEqual([]);
    const bad = outcomes.filter((o) => o.statuses.some((s) => !ALLOWED_STATUS.has(s)) || o.text.includes('INTERNAL_SERVER_ERROR'));
    expect(bad.map((o) => `${o.kind}: ${o.text.slice(0, 300)}`)).toEqual([]);
    // the generator reaches every part of the request path, not only node's parser
    const statuses = new Set(outcomes.flatMap((o) => o.statuses));
    for (const s of [200, 400, 404, 408]) expect(statuses, `no ${s} among ${[...statuses]}`).toContain(s);
    // nothing was logged as an error (a handler failure, an unhandled rejection)
    const errors = server
      .log()
      .split('\n')
      .filter((line) => /"level":(50|60)/.test(line));
    expect(errors).toEqual([]);

    expect((await fetch(`${server.base}/healthz`)).status).toBe(200);
    const after = await quote();
    expect(after.status).toBe(200);
    expect(after.body.data.instrument.latestPrice).toEqual({ date: '2010-03-01', close: '223.02' });
  }, 240_000);

  it('logs and counts an unhandled rejection, and keeps serving', async () => {
    server.child.kill('SIGUSR2');
    let line: string | undefined;
    for (let i = 0; i < 50 && !line; i++) {
      await new Promise((r) => setTimeout(r, 100));
      line = server
        .log()
        .split('\n')
        .find((l) => l.includes('unhandled promise rejection'));
    }
    expect(JSON.parse(line!)).toMatchObject({ level: 50, err: { message: 'planted unhandled rejection' } });
    expect(server.child.exitCode).toBeNull();
    const after = await quote();
    expect(after.body.data.instrument.symbol).toBe('AAPL');
    const metrics = await (await fetch(`${server.base}/metrics`)).text();
    expect(metrics).toMatch(/^foliograph_process_errors_total\{kind="unhandled_rejection"\} 1$/m);
  });
});
