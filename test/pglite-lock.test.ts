import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lockDataDir } from '../src/db/pglite-lock.js';

// The PGlite directory lock between real processes: a stale lock (its process is gone) is taken
// over by exactly one of several processes racing for it, never by two.

const dir = mkdtempSync(join(tmpdir(), 'foliograph-lock-'));
const ROUNDS = 5;
const RACERS = 6;

/** The pid of a process that has exited: what a crashed server leaves in its lock file. */
function deadPid(): number {
  const done = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(done.stdout);
}

/** A racer process, resolved once it is ready; `said()` is what it printed since. */
function racer(dataDir: string): Promise<{ child: ChildProcess; said: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/lock-racer.ts', dataDir], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.startsWith('ready\n')) resolve({ child, said: () => out.slice('ready\n'.length) });
    });
    child.once('exit', (code) => reject(new Error(`racer exited with ${code}: ${out}`)));
  });
}

describe('the PGlite directory lock', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`lets exactly one of ${RACERS} processes take over a stale lock, in each of ${ROUNDS} rounds`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const dataDir = join(dir, `race-${round}`);
      writeFileSync(`${dataDir}.lock`, String(deadPid()));
      const racers = await Promise.all(Array.from({ length: RACERS }, () => racer(dataDir)));
      for (const r of racers) r.child.stdin!.write('go\n');
      for (let i = 0; i < 200 && racers.some((r) => !r.said().includes('\n')); i++) await new Promise((res) => setTimeout(res, 25));
      const outcomes = racers.map((r) => r.said().trim()).sort();
      expect(outcomes, `round ${round}`).toEqual([...Array<string>(RACERS - 1).fill('busy'), 'won']);
      // the lock names the winner, which is alive
      const winner = racers[racers.findIndex((r) => r.said().trim() === 'won')];
      expect(Number(readFileSync(`${dataDir}.lock`, 'utf8'))).toBe(winner.child.pid);
      await Promise.all(racers.map((r) => new Promise((res) => (r.child.once('exit', res), r.child.stdin!.end()))));
      expect(existsSync(`${dataDir}.lock`)).toBe(false);
      expect(existsSync(`${dataDir}.lock.takeover`)).toBe(false);
    }
  }, 120_000);

  it('refuses, naming the file, when a process died in the middle of a takeover', () => {
    const dataDir = join(dir, 'stuck');
    writeFileSync(`${dataDir}.lock`, String(deadPid()));
    writeFileSync(`${dataDir}.lock.takeover`, String(deadPid()));
    expect(() => lockDataDir(dataDir)).toThrow(/\.lock\.takeover; remove it/);
    rmSync(`${dataDir}.lock.takeover`);
    const release = lockDataDir(dataDir);
    expect(Number(readFileSync(`${dataDir}.lock`, 'utf8'))).toBe(process.pid);
    release();
    expect(existsSync(`${dataDir}.lock`)).toBe(false);
  });
});
