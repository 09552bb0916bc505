import { DataDirBusyError, lockDataDir } from '../../src/db/pglite-lock.js';

// One racer of test/pglite-lock.test.ts: says "ready", waits for "go" on stdin, tries to lock the
// PGlite directory given as its argument, says "won" or "busy", and holds what it won until stdin ends.
const dir = process.argv[2];
process.stdout.write('ready\n');
process.stdin.setEncoding('utf8');
let input = '';
let release: (() => void) | undefined;
process.stdin.on('data', (chunk) => {
  input += chunk;
  if (!input.includes('go\n') || release) return;
  try {
    release = lockDataDir(dir);
    process.stdout.write('won\n');
  } catch (e) {
    process.stdout.write(e instanceof DataDirBusyError ? 'busy\n' : `error ${(e as Error).message}\n`);
    release = () => {};
  }
});
process.stdin.on('end', () => {
  release?.();
  process.exit(0);
});
