/**
 * Probes until `done` holds, at most about 2 s (40 × 50 ms): a bounded wait for something that
 * arrives asynchronously (a NOTIFY, a Redis message), not a timing assertion. Returns the last value.
 */
export async function until<T>(probe: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await probe();
  for (let i = 0; i < 40 && !done(value); i++) {
    await new Promise((r) => setTimeout(r, 50));
    value = await probe();
  }
  return value;
}
