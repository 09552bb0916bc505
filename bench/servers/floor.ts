// The floor: one hand-written statement per dashboard behind node:http, the token verified as
// foliograph verifies it. Nothing can answer the same data with less work per request.
//
//   PORT=4700 DATABASE_URL=postgres://… JWT_SECRET=… node --import tsx bench/servers/floor.ts
import { dashboardSource, serveDashboards } from './dashboard-source.js';

const source = dashboardSource(process.env);
serveDashboards(
  'floor',
  Number(process.env.PORT ?? 4700),
  (req) => source.answer(req),
  () => source.close(),
);
