import type { PoolGate } from '../../src/db/gate.js';
import type { Priority } from '../../src/db/sql-stats.js';

/**
 * Holds every permit of `gate` and queues `n` statements of `priority` behind them: a line for
 * database connections the test controls. Resolves, once released, when every one has run.
 */
export function overload(gate: PoolGate, n: number, priority: Priority): () => Promise<void> {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const runs = [
    ...Array.from({ length: gate.permits }, () => gate.run(() => held)),
    ...Array.from({ length: n }, () => gate.run(async () => {}, 'select', { statements: 0, priority })),
  ];
  return async () => {
    release();
    await Promise.all(runs);
  };
}
