import type { Viewer } from '../admission/tokens.js';
import { rows, type Db } from '../db/client.js';
import { writeTransaction } from '../db/transaction.js';
import { sql } from 'drizzle-orm';
import type { PortfolioRow } from '../db/schema.js';
import { BadUserInputError, UnauthenticatedError } from '../errors.js';
import type { WriteOptions } from './trades.js';

export interface CreatePortfolioInput {
  name: string;
  baseCurrency?: string | null;
}

/** Creates an empty portfolio for the signed-in viewer. */
export async function createPortfolio(db: Db, viewer: Viewer, input: CreatePortfolioInput, { deadline }: WriteOptions = {}): Promise<PortfolioRow> {
  if (viewer.kind !== 'user') throw new UnauthenticatedError();
  const name = input.name.trim();
  if (name.length < 1 || name.length > 100) throw new BadUserInputError('name must be 1 to 100 characters', 'name');
  const baseCurrency = input.baseCurrency ?? 'USD';
  if (!/^[A-Z]{3}$/.test(baseCurrency)) {
    throw new BadUserInputError(
      `baseCurrency must be an ISO 4217 code of three capital letters, got ${JSON.stringify(baseCurrency.slice(0, 20))}`,
      'baseCurrency',
    );
  }
  // Inserted only if the token's user exists (a deleted user's token must not trip the foreign key).
  const [row] = await writeTransaction(db, deadline, (tx) =>
    rows<{ id: number; owner_id: number; name: string; base_currency: string; created_at: string }>(
      tx,
      sql`insert into portfolios (owner_id, name, base_currency)
        select id, ${name}, ${baseCurrency} from users where id = ${viewer.userId}
        returning id, owner_id, name, base_currency, to_json(created_at) #>> '{}' as created_at`,
    ),
  );
  if (!row) throw new UnauthenticatedError('the token names no user');
  return { id: row.id, ownerId: row.owner_id, name: row.name, baseCurrency: row.base_currency, createdAt: new Date(row.created_at) };
}
