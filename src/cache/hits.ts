import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { LRUCache } from 'lru-cache';
import Negotiator from 'negotiator';
import type { EarlyAnswer, RememberedAnswer } from '../http/handler.js';
import type { CostBudget } from '../limits/budget.js';
import type { Metrics } from '../observability/metrics.js';
import type { OperationRecorder } from '../observability/operation-log.js';
import { documentHash, operationKey } from './keys.js';
import type { ResponseStore } from './store/tiers.js';
import { sessionOf } from './tags.js';

/** What the executor learnt of an operation when it first ran it, so that a hit needs no parsing. */
export interface DocumentProfile {
  /** Whether the operation can touch PRIVATE data: its answers are kept per session. */
  private: boolean;
  /** The variables the operation declares: the only ones that name its answer. */
  declared: string[];
  /** The operation Apollo resolved (its own name): what names its answer, its metric and its log line. */
  name: string | null;
}

/** Profiles of the queries run lately, by document hash and operation name (bounded: LRU). */
export function createDocumentProfiles(max = 10_000) {
  const profiles = new LRUCache<string, DocumentProfile>({ max });
  const keyOf = (hash: string, operationName: string | null) => `${hash}\u0000${operationName ?? ''}`;
  return {
    remember: (hash: string, operationName: string | null, profile: DocumentProfile) => void profiles.set(keyOf(hash, operationName), profile),
    get: (hash: string, operationName: string | null) => profiles.get(keyOf(hash, operationName)),
  };
}

export type DocumentProfiles = ReturnType<typeof createDocumentProfiles>;

const JSON_TYPE = 'application/json; charset=utf-8';
const GRAPHQL_RESPONSE_TYPE = 'application/graphql-response+json; charset=utf-8';
// Apollo's own list, in its order (its chooseContentTypeForSingleResultResponse): the JSONP-style
// callback type is one a hit does not write, so that client goes on to Apollo
const OFFERED = [JSON_TYPE, GRAPHQL_RESPONSE_TYPE, 'application/json; callbackSpec=1.0; charset=utf-8'];

/**
 * The content type Apollo would answer with, chosen the way Apollo chooses it (negotiator over the
 * same list): application/json without an Accept header; null when the client takes neither JSON type
 * (Apollo then answers that itself).
 */
export function answerType(headers: IncomingHttpHeaders): string | null {
  if (!headers.accept) return JSON_TYPE;
  const preferred = new Negotiator({ headers: { accept: headers.accept } }).mediaType(OFFERED);
  return preferred === JSON_TYPE || preferred === GRAPHQL_RESPONSE_TYPE ? preferred : null;
}

/** The declared variables of a request, by the names its profile holds; null when they are not an object. */
function declaredOnly(variables: unknown, declared: string[]): Record<string, unknown> | null {
  if (variables === undefined || variables === null) return Object.create(null) as Record<string, unknown>;
  if (typeof variables !== 'object' || Array.isArray(variables)) return null;
  const kept: Record<string, unknown> = Object.create(null);
  for (const name of declared) if (Object.hasOwn(variables, name)) kept[name] = (variables as Record<string, unknown>)[name];
  return kept;
}

export interface HitPathOptions {
  store: ResponseStore;
  profiles: DocumentProfiles;
  budget: CostBudget;
  /** MAX_COST, for `extensions.cost.limit`. */
  maxCost: number;
  record: OperationRecorder;
  metrics: Metrics;
  /** Most requests remembered for `remembered` (and, in all, at most 64 MB of their text). */
  maxRemembered?: number;
}

/** What a hit needs that parsing and admission gave it, to answer the same request again without them. */
interface Remembered {
  budgetKey: string;
  session: string | null;
  key: string;
  operationName: string | null;
  contentType: string;
  /** When the bearer token it was admitted with expires (ms): past it, the request is admitted again. */
  expiresAt: number;
}

/** The bytes of a signed-in request that name its answer: its credential, how it is sent and what it asks. */
const rememberedKey = (req: IncomingMessage, text: string) =>
  `${req.headers.authorization}\u0000${req.headers['content-type'] ?? ''}\u0000${req.headers.accept ?? ''}\u0000${text}`;

/**
 * A response-cache hit answered before anything is parsed: the answer for (document hash, declared
 * variables, operation name, cache session) is looked up in this process's tier and its stored bytes
 * written out, with everything a hit through the executor gets: the caller authenticated (admission
 * ran first), the privacy rule of its document (learnt when it first ran: a private one is looked up
 * under the caller's session only), the stored cost estimate charged to the caller's budget, the
 * operation metric and log line, and `extensions` as the executor writes them. Whatever it cannot
 * answer so (a document not yet profiled, a mutation, a miss, a spent budget, a simple GET, which
 * CSRF prevention must see) goes on to Apollo as before.
 *
 * `remembered` answers a signed-in user's request seen before byte for byte (the same Authorization
 * header, content type, Accept header and body) before even its body is parsed or its token looked
 * up: what parsing, admission and the key gave that request the first time is remembered under those
 * bytes, until its token expires. Nothing else changes: the answer must still be in the store (an
 * invalidated one is gone, and the request goes the whole way), the budget is still charged, and a
 * request with an API key or a delegated token is never remembered (a partner's grant is checked
 * every time).
 */
export function createHitPath({ store, profiles, budget, maxCost, record, metrics, maxRemembered = 10_000 }: HitPathOptions): {
  answer: EarlyAnswer;
  remembered: RememberedAnswer;
} {
  const remembered = new LRUCache<string, Remembered>({
    max: maxRemembered,
    maxSize: 64 * 1024 * 1024,
    sizeCalculation: (_value, key) => Math.max(1, key.length),
  });

  /** Writes the stored answer under `key` when there is one and the budget pays for it; false otherwise. */
  async function answerHit(
    res: ServerResponse,
    req: IncomingMessage,
    hit: { budgetKey: string; session: string | null; key: string; operationName: string | null; contentType: string; partner: string | null; sync: boolean },
    requestId: string,
    arrived: number,
  ): Promise<boolean> {
    const { session } = hit;
    // a write acknowledged on another instance reaches this one's copies first (one Redis round trip)
    if (session && hit.sync) await store.sync(session);
    const stored = store.peek(hit.key, session);
    if (!stored) return false;
    const decision = await budget.spend(hit.budgetKey, stored.cost);
    // refused: Apollo's path answers the refusal as it always does (the refused spend cost nothing)
    if (!decision.allowed) return false;

    const cost = {
      estimated: stored.cost,
      limit: maxCost,
      actual: { sqlStatements: 0, loaderBatches: 0, loaderKeys: 0, rows: 0 },
      budget: { limit: decision.limit, remaining: decision.remaining },
    };
    // the stored bytes as they are but their closing brace, then the extensions: nothing re-encoded
    const tail = `,"extensions":{"responseCache":{"hit":true},"cost":${JSON.stringify(cost)}}}`;
    const head = stored.body.subarray(0, stored.body.length - 1);
    res.statusCode = 200;
    res.setHeader('content-type', hit.contentType);
    res.setHeader('content-length', head.length + Buffer.byteLength(tail));
    res.setHeader('server-timing', `app;dur=${(performance.now() - arrived).toFixed(2)}`);
    res.write(head);
    res.end(tail);
    metrics.earlyHits.inc();
    record({
      requestId,
      operationName: hit.operationName,
      type: 'query',
      client: header(req.headers['apollographql-client-name']),
      clientVersion: header(req.headers['apollographql-client-version']),
      caller: hit.budgetKey,
      partner: hit.partner,
      cost: stored.cost,
      sql: 0,
      rows: 0,
      seconds: (performance.now() - arrived) / 1000,
      outcome: 'ok',
      codes: [],
    });
    return true;
  }

  const answer: EarlyAnswer = async (res, { req, requestId, admitted, caller, arrived, text }) => {
    const { request } = admitted;
    const { params } = request;
    // a browser may send a simple GET cross-site: Apollo's CSRF prevention wants it preflighted
    if (request.method === 'GET' && !req.headers['apollo-require-preflight'] && !req.headers['x-apollo-operation-name']) return false;
    const contentType = answerType(req.headers);
    if (!contentType) return false;
    const persisted = params.extensions?.persistedQuery?.sha256Hash;
    const hash =
      typeof params.query === 'string'
        ? documentHash(params.query)
        : typeof persisted === 'string' && /^[0-9a-f]{64}$/i.test(persisted)
          ? persisted.toLowerCase()
          : null;
    if (hash === null) return false;
    const operationName = typeof params.operationName === 'string' ? params.operationName : null;
    const profile = profiles.get(hash, operationName);
    if (!profile) return false;
    const variables = declaredOnly(params.variables, profile.declared);
    if (!variables) return false;
    const session = profile.private ? sessionOf(caller.viewer) : null;
    const key = operationKey({ session, documentKey: hash, operationName: profile.name, variables });
    const hit = { budgetKey: caller.budgetKey, session, key, operationName: profile.name, contentType, partner: caller.partner?.name ?? null };
    if (!(await answerHit(res, req, { ...hit, sync: caller.viewer.kind === 'user' }, requestId, arrived))) return false;
    // a signed-in user's own token, no partner: the same bytes again need none of the above
    if (text !== null && !admitted.partner && !caller.delegated && caller.viewer.kind === 'user' && caller.expiresAt) {
      remembered.set(rememberedKey(req, text), { ...hit, expiresAt: caller.expiresAt });
    }
    return true;
  };

  return {
    answer,
    remembered: async (res, { req, text, requestId, arrived }) => {
      if (req.headers.authorization === undefined) return false;
      const key = rememberedKey(req, text);
      const known = remembered.get(key);
      if (!known) return false;
      if (known.expiresAt <= Date.now()) {
        remembered.delete(key);
        return false;
      }
      return answerHit(res, req, { ...known, partner: null, sync: true }, requestId, arrived);
    },
  };
}

const header = (value: string | string[] | undefined): string | null => (Array.isArray(value) ? value.join(', ') : (value ?? null));
