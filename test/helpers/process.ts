import { spawn, type ChildProcess } from 'node:child_process';

export interface ServerProcess {
  child: ChildProcess;
  /** e.g. http://127.0.0.1:41234 (no path). */
  base: string;
  /** Everything the process wrote to stderr so far (its JSON log lines). */
  log(): string;
}

/**
 * `npm start` as a child process (src/main.ts through tsx), resolved once it listens (its "listening"
 * line: LOG_LEVEL must be info or lower). `preload` are modules given to node with --import before
 * the server's own code (test/helpers/plant-rejection.ts). A child that does not listen within a
 * minute is killed.
 */
export function spawnServer(env: NodeJS.ProcessEnv, preload: string[] = []): Promise<ServerProcess> {
  const imports = ['tsx', ...preload].flatMap((m) => ['--import', m]);
  const child = spawn(process.execPath, [...imports, 'src/main.ts'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not listen within 60 s: ${log.slice(-500)}`));
    }, 60_000);
    child.stderr!.on('data', (chunk) => {
      log += chunk;
      const m = /"url":"(http:\/\/[^"]+)\/graphql","database"/.exec(log);
      if (!m) return;
      clearTimeout(timer);
      resolve({ child, base: m[1], log: () => log });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${log.slice(-500)}`));
    });
  });
}

/** Polls /readyz until it answers 200 (at most a minute). */
export async function waitReady(base: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const res = await fetch(`${base}/readyz`).catch(() => null);
    if (res?.status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('never ready');
}

/** Sends `signal` (SIGTERM by default) and resolves with the exit code. */
export function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
    child.kill(signal);
  });
}
