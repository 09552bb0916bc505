import { LRUCache } from 'lru-cache';
import type { Db } from '../db/client.js';
import { CodedError, ErrorCode } from '../errors.js';
import type { IncomingGraphQL } from './request.js';
import { sha256, trustedDocument, type TrustedDocument } from './trusted-documents.js';
import { partnerForKey, type AuthenticatedPartner } from './partners.js';

/** What Apollo should run, and for which partner (null for everyone else). */
export interface Admitted {
  request: IncomingGraphQL;
  partner: AuthenticatedPartner | null;
  /** The trusted document a partner runs. */
  document?: TrustedDocument;
}

export interface PartnerAdmissionOptions {
  db: Db;
  /** How long a key's or document's lookup is reused (a revoked key or retired document stops within it). */
  cacheTtlMs?: number;
}

const refuse = (code: ErrorCode, message: string, status: number) => new CodedError(code, message, {}, status);

/**
 * Admission before Apollo parses anything. A hash sent with a query must be that query's SHA-256
 * (for everyone). Partners (X-Api-Key) are authenticated first and may only run trusted documents:
 * a hash of a document published for them or for all partners; the document's text replaces the
 * request's, so a partner can never register a new operation (Apollo's APQ never sees its requests).
 */
export function createPartnerAdmission({ db, cacheTtlMs = 10_000 }: PartnerAdmissionOptions) {
  const ttl = Math.max(1, cacheTtlMs);
  const keys = new LRUCache<string, { partner: AuthenticatedPartner | null }>({ max: 10_000, ttl });
  const documents = new LRUCache<string, { document: TrustedDocument | null }>({ max: 10_000, ttl });

  async function partnerOf(apiKey: string): Promise<AuthenticatedPartner | null> {
    if (apiKey.length > 200) return null;
    let hit = cacheTtlMs > 0 ? keys.get(apiKey) : undefined;
    if (!hit) {
      hit = { partner: await partnerForKey(db, apiKey) };
      if (cacheTtlMs > 0) keys.set(apiKey, hit);
    }
    return hit.partner;
  }

  async function documentFor(partner: AuthenticatedPartner, hash: string): Promise<TrustedDocument | null> {
    const key = `${partner.id}:${hash}`;
    let hit = cacheTtlMs > 0 ? documents.get(key) : undefined;
    if (!hit) {
      hit = { document: await trustedDocument(db, hash, partner.id) };
      if (cacheTtlMs > 0) documents.set(key, hit);
    }
    return hit.document;
  }

  return {
    /** Credentials come first: an unknown or revoked key is refused before the request is even read. */
    async authenticate(apiKey: string): Promise<AuthenticatedPartner> {
      const partner = await partnerOf(apiKey.trim());
      if (!partner) throw refuse(ErrorCode.UNAUTHENTICATED, 'the API key is unknown or revoked', 401);
      return partner;
    },

    async admit(request: IncomingGraphQL, partner: AuthenticatedPartner | null): Promise<Admitted> {
      const { params } = request;
      const persisted = params.extensions?.persistedQuery;
      const hash = typeof persisted?.sha256Hash === 'string' ? persisted.sha256Hash : undefined;
      if (hash !== undefined && typeof params.query === 'string' && sha256(params.query) !== hash.toLowerCase()) {
        throw refuse(ErrorCode.PERSISTED_QUERY_HASH_MISMATCH, 'extensions.persistedQuery.sha256Hash is not the SHA-256 of the query sent with it', 400);
      }
      if (!partner) return { request, partner: null };
      if (hash === undefined) {
        throw refuse(
          ErrorCode.PERSISTED_QUERY_REQUIRED,
          'partners may run trusted documents only: send extensions.persistedQuery.sha256Hash of a published operation',
          403,
        );
      }
      const document = /^[a-f0-9]{64}$/i.test(hash) ? await documentFor(partner, hash.toLowerCase()) : null;
      if (!document) {
        if (typeof params.query === 'string')
          throw refuse(
            ErrorCode.PERSISTED_QUERY_REQUIRED,
            'this operation is not a trusted document of this partner: publish it first (npm run pq:publish)',
            403,
          );
        // Apollo's persisted-query code, so that clients see the protocol they know; sending the
        // query along will not register it.
        throw refuse(ErrorCode.PERSISTED_QUERY_NOT_FOUND, 'PersistedQueryNotFound', 200);
      }
      if (document.type === 'mutation') {
        if (request.method !== 'POST') throw refuse(ErrorCode.BAD_USER_INPUT, 'a mutation must be sent with POST', 405);
        if (!partner.scopes.includes('trades:write')) throw refuse(ErrorCode.FORBIDDEN, 'this partner has no trades:write scope', 403);
      }
      // the document's text replaces the request's: Apollo sees a plain JSON POST
      const operationName = typeof params.operationName === 'string' ? params.operationName : document.name;
      // (Apollo refuses a `variables` key whose value is undefined: leave it out when none were sent)
      const replaced = { query: document.body, operationName, ...(params.variables !== undefined ? { variables: params.variables } : {}) };
      return { request: { method: 'POST', body: replaced, search: '', params: replaced }, partner, document };
    },
  };
}

export type PartnerAdmission = ReturnType<typeof createPartnerAdmission>;
