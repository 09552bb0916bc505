import type postgres from 'postgres';
import { within } from './deadline.js';

/**
 * A client of one connection for small statements outside the pool (a probe, a replica's check, the
 * primary's WAL position, the idle count): opened on first use, every statement bounded in time, and
 * thrown away after any failure, so that the next statement gets a client of its own.
 *
 * The last part is not caution. postgres.js 3.4.9 can keep a query waiting for ever on a connection
 * the server closed and then refused at start-up (a database not accepting connections, one starting
 * up: seen here after pg_terminate_backend, and reported as porsager/postgres#1193). With one
 * connection, every later statement waits behind it: a probe would call a database down long after it
 * came back, and a replica's checks would never see it again.
 */
export function oneConnection(open: () => postgres.Sql) {
  let current: postgres.Sql | undefined;
  return {
    async run<T>(ms: number, statement: (sql: postgres.Sql) => PromiseLike<T>): Promise<T> {
      const sql = (current ??= open());
      try {
        return await within(ms, statement(sql));
      } catch (e) {
        if (current === sql) current = undefined;
        void sql.end({ timeout: 0 }).catch(() => {});
        throw e;
      }
    },
    async end() {
      const sql = current;
      current = undefined;
      await sql?.end({ timeout: 1 });
    },
  };
}
