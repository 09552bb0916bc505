// PostGraphile v5 over foliograph's tables, served by its own grafserv node adaptor: the Amber preset
// with simplify-inflection, nothing else. It asks for a user by id (`user(rowId:)`), so it does no
// authentication of its own.
//
//   PORT=4701 DATABASE_URL=postgres://… node --import tsx bench/servers/postgraphile.ts
import { createServer } from 'node:http';

// PostGraphile 5.1 targets Node 22; on Node 20 it needs Promise.withResolvers before it loads, hence
// the dynamic imports below (static ones would load first).
if (!('withResolvers' in Promise)) {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value<T>() {
      let resolve!: (value: T | PromiseLike<T>) => void;
      let reject!: (reason?: unknown) => void;
      const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

const { postgraphile } = await import('postgraphile');
const { PostGraphileAmberPreset } = await import('postgraphile/presets/amber');
const { makePgService } = await import('postgraphile/adaptors/pg');
const { grafserv } = await import('postgraphile/grafserv/node');
const { PgSimplifyInflectionPreset } = await import('@graphile/simplify-inflection');

const port = Number(process.env.PORT ?? 4701);
const pgl = postgraphile({
  extends: [PostGraphileAmberPreset, PgSimplifyInflectionPreset],
  pgServices: [makePgService({ connectionString: process.env.DATABASE_URL, schemas: ['public'], poolConfig: { max: Number(process.env.DB_POOL_MAX ?? 10) } })],
  grafserv: { graphiql: false, watch: false },
  grafast: { explain: false },
});
const server = createServer();
await pgl.createServ(grafserv).addTo(server, false);
server.listen(port, '127.0.0.1', () => process.stderr.write(`postgraphile listening on ${port}\n`));
const stop = () =>
  server.close(async () => {
    await pgl.release();
    process.exit(0);
  });
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
