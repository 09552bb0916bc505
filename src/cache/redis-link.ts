import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';

export interface RedisLinkOptions {
  url: string;
  /** Longest wait for one command (REDIS_COMMAND_TIMEOUT_MS); past it the command fails and the breaker opens. */
  commandTimeoutMs: number;
  /** How often a PING probes a Redis that failed, and (doubled) how long an idle healthy one may go unasked. */
  probeIntervalMs?: number;
  logger: Logger;
  /** Told every time Redis starts or stops being used (for the foliograph_redis_up gauge). */
  onState?: (up: boolean) => void;
}

/** Thrown at once, without touching the network, while the breaker is open. */
export class RedisUnavailable extends Error {
  constructor() {
    super('redis is unavailable: skipped');
    this.name = 'RedisUnavailable';
  }
}

/**
 * The one Redis client of a process (response cache, budgets, APQ) and its subscriber, behind a
 * breaker, so that a Redis that is down, hung or slow costs a request at most one command timeout:
 *
 * - no offline queue and a timeout: a command fails at once while disconnected, and within
 *   `commandTimeoutMs` when Redis does not answer;
 * - any failure opens the breaker: `run` then throws RedisUnavailable without a round trip;
 * - every `probeIntervalMs` a PING probes; once it answers (and the subscriber is subscribed again),
 *   the recovery steps run (replaying what could not reach Redis) before Redis is used again.
 *
 * All commands of a process go over one connection, so Redis applies them in the order they were sent.
 */
export interface RedisLink {
  /** Whether Redis is in use now (the breaker is closed). */
  readonly up: boolean;
  /** One step on Redis; RedisUnavailable at once while the breaker is open; a failure opens it. */
  run<T>(step: (redis: Redis) => Promise<T>): Promise<T>;
  /** Delivers the messages of `channel` (subscribed again after every reconnect). */
  subscribe(channel: string, listener: (message: string) => void): void;
  /** A step that must succeed after a failure before Redis is used again; a throw keeps the breaker open. */
  onRecover(step: (redis: Redis) => Promise<void>): void;
  /** Told when the breaker opens, and when it closes again. */
  onDown(listener: () => void): void;
  onUp(listener: () => void): void;
  /** Resolves true once Redis is in use, false if it is not within `ms`. */
  whenUp(ms: number): Promise<boolean>;
  close(): Promise<void>;
}

// "still unavailable" at most this often while the breaker stays open
const REMIND_MS = 30_000;

export function createRedisLink({ url, commandTimeoutMs, probeIntervalMs = 250, logger, onState }: RedisLinkOptions): RedisLink {
  const options = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: Math.max(1000, 10 * commandTimeoutMs),
    // reconnect soon: the breaker, not the client, decides when Redis is used again
    retryStrategy: (times: number) => Math.min(50 * times, 500),
    autoResubscribe: false,
  };
  const client = new Redis(url, options);
  const subscriber = new Redis(url, options);
  const channels = new Map<string, (message: string) => void>();
  const recoverSteps: ((redis: Redis) => Promise<void>)[] = [];
  const downListeners: (() => void)[] = [];
  const upListeners: (() => void)[] = [];
  let state: 'up' | 'down' | 'recovering' | 'closed' = 'down';
  let subscribed = false;
  let downSince = performance.now();
  let lastUsed = 0;
  let skipped = 0;
  let remindedAt = downSince;
  let started = false;

  /**
   * A step's answer within `commandTimeoutMs`, else a failure. The timeout is checked once more after
   * one turn of I/O (setImmediate runs after the poll phase), so that a process that was itself
   * stalled (GC, CPU) past the timeout reads a reply that arrived meanwhile instead of calling a
   * healthy Redis failed.
   */
  function bounded<T>(step: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(
        () =>
          setImmediate(() => {
            if (settled) return;
            settled = true;
            reject(new Error(`redis did not answer within ${commandTimeoutMs} ms`));
          }),
        commandTimeoutMs,
      );
      step.then(
        (value) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(value);
        },
        (e) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  // errors reach the log through the breaker's transitions, never once per command
  client.on('error', () => {});
  subscriber.on('error', () => {});

  function fail(reason: unknown) {
    if (state === 'recovering') state = 'down';
    if (state !== 'up') return;
    state = 'down';
    downSince = performance.now();
    remindedAt = downSince;
    skipped = 0;
    // the message only: a command's arguments (tags, callers, documents) stay out of the log
    logger.warn(
      { reason: (reason as Error)?.message ?? String(reason) },
      'redis is failing: skipping it (answers come from PostgreSQL, budgets are open) until it answers again',
    );
    onState?.(false);
    for (const listener of downListeners) listener();
  }

  client.on('close', () => fail(new Error('connection closed')));
  client.on('ready', () => void probe());
  subscriber.on('close', () => {
    subscribed = false;
    fail(new Error('subscriber connection closed'));
  });
  subscriber.on('ready', () => void resubscribe());
  subscriber.on('message', (channel: string, message: string) => channels.get(channel)?.(message));

  async function resubscribe() {
    if (channels.size === 0) return;
    try {
      await subscriber.subscribe(...channels.keys());
      subscribed = true;
      void probe();
    } catch (e) {
      subscribed = false;
      fail(e);
    }
  }

  let probing = false;
  async function probe() {
    if (state !== 'down' || probing) return;
    if (client.status !== 'ready' || (channels.size > 0 && !subscribed)) return;
    probing = true;
    try {
      await bounded(client.ping());
      state = 'recovering';
      // a restarted Redis knows no scripts: loaded before any step, so that no EVALSHA falls back to
      // EVAL after a NOSCRIPT round trip and lets commands sent after it overtake it
      for (const source of scripts) await bounded(client.script('LOAD', source));
      for (const step of recoverSteps) await bounded(step(client));
      if (state !== 'recovering') return;
      state = 'up';
      lastUsed = performance.now();
      if (started) logger.info({ downMs: Math.round(performance.now() - downSince), skipped }, 'redis answers again: in use');
      started = true;
      onState?.(true);
      for (const listener of upListeners) listener();
    } catch {
      if (state === 'recovering') state = 'down';
    } finally {
      probing = false;
    }
  }

  const timer = setInterval(() => {
    if (state === 'down') {
      if (performance.now() - remindedAt > REMIND_MS) {
        remindedAt = performance.now();
        logger.warn(
          { downMs: Math.round(remindedAt - downSince), skipped },
          started ? 'redis is still failing: still skipped' : 'redis does not answer yet: running without it',
        );
      }
      void probe();
    } else if (state === 'up' && performance.now() - lastUsed > 2 * probeIntervalMs) {
      // a quiet instance would not notice a hung Redis (and the invalidations it cannot hear)
      void link.run((redis) => redis.ping()).catch(() => {});
    }
  }, probeIntervalMs);
  timer.unref();

  const link: RedisLink = {
    get up() {
      return state === 'up';
    },
    async run(step) {
      if (state !== 'up') {
        skipped++;
        throw new RedisUnavailable();
      }
      try {
        const value = await bounded(step(client));
        lastUsed = performance.now();
        return value;
      } catch (e) {
        fail(e);
        throw e;
      }
    },
    subscribe(channel, listener) {
      channels.set(channel, listener);
      if (subscriber.status === 'ready') void resubscribe();
    },
    onRecover(step) {
      recoverSteps.push(step);
    },
    onDown(listener) {
      downListeners.push(listener);
    },
    onUp(listener) {
      upListeners.push(listener);
    },
    async whenUp(ms) {
      const until = performance.now() + ms;
      while (state !== 'up' && state !== 'closed' && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
      return state === 'up';
    },
    async close() {
      state = 'closed';
      clearInterval(timer);
      await Promise.all([client, subscriber].map((c) => c.quit().catch(() => c.disconnect())));
    },
  };
  return link;
}

/** Every script of the process, loaded into Redis whenever the link (re)connects. */
const scripts: string[] = [];

/**
 * A Lua script run by its SHA-1 (EVALSHA): the link loads every script when Redis comes (back), and a
 * Redis that forgot it anyway (SCRIPT FLUSH) gets its text once by EVAL.
 */
export function luaScript(source: string) {
  scripts.push(source);
  const sha = createHash('sha1').update(source).digest('hex');
  return async (redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> => {
    try {
      return await redis.evalsha(sha, keys.length, ...keys, ...args);
    } catch (e) {
      if (!(e instanceof Error) || !e.message.startsWith('NOSCRIPT')) throw e;
      return redis.eval(source, keys.length, ...keys, ...args);
    }
  };
}
