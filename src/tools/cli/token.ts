import { eq } from 'drizzle-orm';
import { signUserToken } from '../../admission/tokens.js';
import { users } from '../../db/schema.js';
import { mintDelegatedToken } from '../../admission/delegation.js';
import { option, runCommand, say } from './common.js';

// npm run token -- EMAIL [--expires 30d]                                  a user's own bearer token
// npm run token -- EMAIL --partner NAME [--scopes a,b] [--expires 1h]     a token delegated to a partner
// Either way the token, and nothing else, goes to stdout.
const args = process.argv.slice(2);
const email = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const partner = option(args, 'partner');
const usage = 'usage: npm run token -- EMAIL [--expires 30d] | npm run token -- EMAIL --partner NAME [--scopes portfolios:read,trades:write] [--expires 1h]';
await runCommand(async ({ config, database }) => {
  if (!email) throw new Error(usage);
  if (partner !== undefined) {
    if (partner.startsWith('--') || partner === '') throw new Error(usage);
    const scopes = option(args, 'scopes')?.split(',').map((s) => s.trim()).filter(Boolean);
    const minted = await mintDelegatedToken(database.db, config.jwtSecret, { partner, email, scopes, expires: option(args, 'expires') });
    say(`a token for ${partner} to act for ${email} with ${minted.scopes.join(', ')} until ${minted.expiresAt.toISOString()}; send it beside ${partner}'s X-Api-Key`);
    process.stdout.write(`${minted.token}\n`);
    return;
  }
  if (args.includes('--scopes')) throw new Error('--scopes is for a token delegated to a partner: add --partner NAME');
  const [user] = await database.db.select().from(users).where(eq(users.email, email.trim().toLowerCase()));
  if (!user) throw new Error(`no user with the email ${email}`);
  process.stdout.write(`${await signUserToken(config.jwtSecret, user.id, option(args, 'expires') ?? '30d')}\n`);
});
