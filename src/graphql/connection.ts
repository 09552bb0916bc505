import type { Slice } from '../domain/pagination.js';

/**
 * A Relay connection as resolvers see it: the page and the count are fetched only when a client asks
 * for them (through the request's loaders, so asking twice costs nothing more).
 */
export interface Connection<T> {
  page(): Promise<Slice<T>>;
  totalCount(): Promise<number>;
  cursor(row: T): string;
}

export interface Edge<T> {
  cursor: string;
  node: T;
}

export interface PageInfoResult {
  hasNextPage: boolean;
  endCursor: string | null;
}

/** Resolvers shared by every XConnection type. */
export const connectionResolvers = {
  edges: async <T>(c: Connection<T>): Promise<Edge<T>[]> => (await c.page()).rows.map((node) => ({ cursor: c.cursor(node), node })),
  nodes: async <T>(c: Connection<T>): Promise<T[]> => (await c.page()).rows,
  pageInfo: async <T>(c: Connection<T>): Promise<PageInfoResult> => {
    const { rows, hasNextPage } = await c.page();
    return { hasNextPage, endCursor: rows.length ? c.cursor(rows[rows.length - 1]) : null };
  },
  totalCount: <T>(c: Connection<T>): Promise<number> => c.totalCount(),
};
