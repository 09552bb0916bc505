import type { Viewer } from '../auth/tokens.js';
import type { Db } from '../db/client.js';
import { portfolios, type PortfolioRow } from '../db/schema.js';
import { BadUserInputError, UnauthenticatedError } from '../errors.js';

export interface CreatePortfolioInput {
  name: string;
  baseCurrency?: string | null;
}

/** Creates an empty portfolio for the signed-in viewer. */
export async function createPortfolio(db: Db, viewer: Viewer, input: CreatePortfolioInput): Promise<PortfolioRow> {
  if (viewer.kind !== 'user') throw new UnauthenticatedError();
  const name = input.name.trim();
  if (name.length < 1 || name.length > 100) throw new BadUserInputError('name must be 1 to 100 characters', 'name');
  const baseCurrency = input.baseCurrency ?? 'USD';
  if (!/^[A-Z]{3}$/.test(baseCurrency)) {
    throw new BadUserInputError(`baseCurrency must be an ISO 4217 code of three capital letters, got ${JSON.stringify(baseCurrency.slice(0, 20))}`, 'baseCurrency');
  }
  const [row] = await db.insert(portfolios).values({ ownerId: viewer.userId, name, baseCurrency }).returning();
  return row;
}
