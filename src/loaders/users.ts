import { sql } from 'drizzle-orm';
import type { Viewer } from '../admission/tokens.js';
import { rows, type Db } from '../db/client.js';
import { users, type PortfolioRow, type UserRow } from '../db/schema.js';
import { trimPage, type Slice } from '../domain/pagination.js';
import { array, byKey } from './batch.js';

/** A page of the viewer's portfolios to load with the viewer (see usersById). */
export interface ViewerPortfolioPage {
  first: number;
  after: number | null;
  /** Whether the portfolios' total count is asked too. */
  count: boolean;
}

/** What the statement that loads the viewer brought of its portfolios, for their loaders' caches. */
export interface ViewerPortfolios {
  page: ViewerPortfolioPage;
  slice: Slice<PortfolioRow>;
  count: number | null;
}

interface JoinedRow {
  id: number;
  email: string;
  name: string;
  created_at: string;
  portfolios: { id: number; owner_id: number; name: string; base_currency: string; created_at: string }[];
  portfolio_count: number | null;
}

/**
 * Users by id, authorized: a user can read only themselves; every other id is null without SQL. When
 * the request will show one page of the viewer's portfolios (`page()` says which: Query.viewer looks
 * ahead), that page (and its total count, when asked) comes in the same statement as the viewer and
 * is handed to `loaded`, which primes the portfolio loaders: the dashboard's first level is one
 * statement, not three.
 */
export function usersById(db: Db, viewer: Viewer, page: () => ViewerPortfolioPage | null = () => null, loaded?: (portfolios: ViewerPortfolios) => void) {
  return async (ids: readonly number[]): Promise<(UserRow | null)[]> => {
    const allowed = ids.filter((id) => viewer.kind === 'user' && id === viewer.userId);
    if (allowed.length === 0) return ids.map(() => null);
    const wanted = page();
    if (!wanted || !loaded) {
      const found = await db
        .select()
        .from(users)
        .where(sql`${users.id} = any(${array(allowed, 'int')})`);
      return byKey(
        ids,
        found,
        (r) => r.id,
        (r) => r,
        () => null,
      );
    }
    const [row] = await rows<JoinedRow>(
      db,
      sql`select u.id, u.email, u.name, to_json(u.created_at) #>> '{}' as created_at,
                 (select coalesce(json_agg(json_build_object('id', p.id, 'owner_id', p.owner_id, 'name', p.name, 'base_currency', p.base_currency,
                                                             'created_at', to_json(p.created_at) #>> '{}') order by p.id), '[]'::json)
                  from (select * from portfolios p where p.owner_id = u.id and p.id > ${wanted.after ?? 0} order by p.id limit ${wanted.first + 1}) p) as portfolios,
                 case when ${wanted.count} then (select count(*)::int from portfolios c where c.owner_id = u.id) end as portfolio_count
          from users u where u.id = ${allowed[0]}`,
    );
    if (!row) return ids.map(() => null);
    const fetched = row.portfolios.map((p): PortfolioRow => ({
      id: p.id,
      ownerId: p.owner_id,
      name: p.name,
      baseCurrency: p.base_currency,
      createdAt: new Date(p.created_at),
    }));
    loaded({ page: wanted, slice: trimPage(fetched, wanted.first), count: row.portfolio_count === null ? null : Number(row.portfolio_count) });
    const user: UserRow = { id: row.id, email: row.email, name: row.name, createdAt: new Date(row.created_at) };
    return ids.map((id) => (id === user.id ? user : null));
  };
}
