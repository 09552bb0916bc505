import { eq } from 'drizzle-orm';
import { signUserToken } from '../auth/tokens.js';
import { users } from '../db/schema.js';
import { option, runCommand } from './common.js';

// npm run token -- EMAIL [--expires 30d] — prints a bearer token for that user, and nothing else.
const args = process.argv.slice(2);
const email = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
await runCommand(async ({ config, database }) => {
  if (!email) throw new Error('usage: npm run token -- EMAIL [--expires 30d]');
  const [user] = await database.db.select().from(users).where(eq(users.email, email.trim().toLowerCase()));
  if (!user) throw new Error(`no user with the email ${email}`);
  process.stdout.write(`${await signUserToken(config.jwtSecret, user.id, option(args, 'expires') ?? '30d')}\n`);
});
