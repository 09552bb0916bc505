import type { Viewer } from '../auth/tokens.js';
import type { Db } from '../db/client.js';
import type { SqlStats } from '../db/sql-stats.js';
import type { Loaders } from '../loaders/index.js';

/** What every resolver gets: who asks, and that request's own loaders over the database. */
export interface Context {
  requestId: string;
  viewer: Viewer;
  /** For domain functions that write; reads go through the loaders. */
  db: Db;
  loaders: Loaders;
  /** Statements this request has sent so far. */
  sql: SqlStats;
}
