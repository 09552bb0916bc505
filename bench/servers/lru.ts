// The cache ceiling: node:http answering each bearer token's dashboard from an in-process LRU (a miss
// runs the floor's statement). No budget, no metrics, no privacy rules: what a cache hit costs at
// the least.
//
//   PORT=4704 DATABASE_URL=postgres://… JWT_SECRET=… node --import tsx bench/servers/lru.ts
import { LRUCache } from 'lru-cache';
import { dashboardSource, serveDashboards } from './dashboard-source.js';

const source = dashboardSource(process.env);
const cache = new LRUCache<string, Buffer>({ max: 10_000 });
serveDashboards(
  'lru',
  Number(process.env.PORT ?? 4704),
  async (req) => {
    const key = req.headers.authorization ?? '';
    const hit = cache.get(key);
    if (hit) return hit;
    const body = await source.answer(req);
    if (body) cache.set(key, body);
    return body;
  },
  () => source.close(),
);
