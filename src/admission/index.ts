import type { IncomingMessage } from 'node:http';
import type { Db } from '../db/client.js';
import { createPartnerAdmission, type Admitted } from './admit.js';
import { budgetKeyOf, type Caller } from './caller.js';
import { credentialFromHeaders } from './credentials.js';
import { createDelegation } from './delegation.js';
import type { AuthenticatedPartner } from './partners.js';
import type { IncomingGraphQL } from './request.js';

export type { Admitted } from './admit.js';
export type { Caller } from './caller.js';
export type { AuthenticatedPartner } from './partners.js';
export type { GraphQLParams, IncomingGraphQL } from './request.js';

export interface AdmissionOptions {
  db: Db;
  /** The HS256 secret of bearer tokens. */
  jwtSecret: string;
  /** How long an API key's, trusted document's or grant's lookup is reused (PARTNER_CACHE_TTL_MS). */
  cacheTtlMs: number;
}

/**
 * Credentials to caller, before anything of the operation runs, in the order a request meets them:
 * the API key (checked before the body is even read), the document a partner may run, then who the
 * request acts for and whose budget pays. Every refusal is a coded error with its HTTP status.
 */
export function createAdmission({ db, jwtSecret, cacheTtlMs }: AdmissionOptions) {
  const partners = createPartnerAdmission({ db, cacheTtlMs });
  const delegation = createDelegation({ db, cacheTtlMs });
  return {
    /** The partner of an API key; an unknown or revoked key is UNAUTHENTICATED (401). */
    authenticate: (apiKey: string): Promise<AuthenticatedPartner> => partners.authenticate(apiKey),
    /** A hash must match its query; a partner runs only its trusted documents (whose text replaces the request's). */
    admit: (request: IncomingGraphQL, partner: AuthenticatedPartner | null): Promise<Admitted> => partners.admit(request, partner),
    /** Who the request acts for: its bearer token, or a partner's delegated one (see delegation.ts). */
    async callerOf(req: IncomingMessage, admitted: Admitted): Promise<Caller> {
      const { credential, expiresAt } = await credentialFromHeaders(req.headers.authorization, jwtSecret);
      const viewer = await delegation.viewerFor(credential, admitted.partner, admitted.document?.type);
      return {
        viewer,
        partner: admitted.partner,
        budgetKey: budgetKeyOf(viewer, admitted.partner, req.socket.remoteAddress),
        delegated: credential.kind === 'delegated',
        expiresAt,
      };
    },
  };
}

export type Admission = ReturnType<typeof createAdmission>;
