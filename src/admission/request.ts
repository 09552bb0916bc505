/** What GraphQL over HTTP sends, read once from a POST's JSON body or a GET's search string. */
export interface GraphQLParams {
  query?: unknown;
  variables?: unknown;
  operationName?: unknown;
  extensions?: { persistedQuery?: { version?: unknown; sha256Hash?: unknown } } & Record<string, unknown>;
}

/** A request as Apollo takes it (`body` parsed JSON or text), with its GraphQL parameters beside. */
export interface IncomingGraphQL {
  method: 'GET' | 'POST';
  body: unknown;
  /** The query string, with its leading "?". */
  search: string;
  params: GraphQLParams;
}
