import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';

export class DataDirBusyError extends Error {
  constructor(dir: string, pid: number) {
    super(
      `the embedded database ${dir} is in use by process ${pid} (a running server?). ` +
        'PGlite allows one process per data directory: stop that process first, or set DATABASE_URL.',
    );
    this.name = 'DataDirBusyError';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid a lock file names, or null when it is missing or names none. */
function holderOf(path: string): number | null {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * Creates `path` holding our pid, atomically: the pid is written to a file of our own, then hard-linked
 * to `path`, which fails if `path` exists. So a lock file is never seen empty or half written (an
 * empty one would read as stale), and of two processes creating it, exactly one succeeds.
 */
function create(path: string): boolean {
  const mine = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(mine, String(process.pid), { flag: 'wx' });
  try {
    linkSync(mine, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    rmSync(mine, { force: true });
  }
}

/**
 * Takes `<dir>.lock` (beside the directory, not in it, so PGlite's files stay its own) holding our pid.
 * A lock left by a dead process is taken over; one held by a live process is refused. Returns release.
 *
 * Taking over is the racy part: two processes may both see the same stale lock, and if each removed
 * "the stale lock" and created its own, the second would remove the first's fresh one and both would
 * open the directory. So a lock file is only ever removed by the holder of `<dir>.lock.takeover`
 * (created atomically as above), after reading it again under that lock and finding it still stale.
 * A takeover lock left by a process that died during a takeover is never broken automatically: the
 * message names it, so that two such breakers cannot race in turn.
 */
export function lockDataDir(dir: string): () => void {
  const path = `${resolve(dir)}.lock`;
  const takeover = `${path}.takeover`;
  mkdirSync(dirname(path), { recursive: true });
  const release = () => rmSync(path, { force: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    if (create(path)) return release;
    const holder = holderOf(path);
    if (holder !== null && holder !== process.pid && alive(holder)) throw new DataDirBusyError(dir, holder);
    if (!create(takeover)) {
      const taker = holderOf(takeover);
      if (taker === null) continue; // released as we looked: look again
      if (alive(taker)) throw new DataDirBusyError(dir, taker);
      throw new Error(`could not lock ${path}: a process that died while taking over a stale lock left ${takeover}; remove it if no process uses ${dir}`);
    }
    try {
      const still = holderOf(path);
      if (still !== null && still !== process.pid && alive(still)) throw new DataDirBusyError(dir, still);
      rmSync(path, { force: true }); // stale, and no one else may remove or replace it while we hold the takeover lock
      if (create(path)) return release;
    } finally {
      rmSync(takeover, { force: true });
    }
  }
  throw new Error(`could not lock ${path}`);
}
