import { createPartner, grantPartner, listKeys, revokeKeys, rotateKey } from '../partners/keys.js';
import { option, runCommand, say } from './common.js';

// npm run partner:<create|list|rotate|revoke|grant> -- ... : partners and their API keys.
const [command, ...args] = process.argv.slice(2);
const positional = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));

await runCommand(async ({ database: { db } }) => {
  switch (command) {
    case 'create': {
      const [name] = positional;
      if (!name) throw new Error('usage: npm run partner:create -- NAME [--scopes portfolios:read,trades:write]');
      const scopes = (option(args, 'scopes') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      const { partner, key } = await createPartner(db, name, scopes);
      say(`partner ${partner.name} created with scopes ${partner.scopes.join(', ')}; its API key follows (shown once, stored hashed)`);
      process.stdout.write(`${key}\n`);
      return;
    }
    case 'list': {
      const keys = await listKeys(db);
      for (const k of keys) {
        process.stdout.write(`${k.partner}\t${k.prefix}…\t${k.scopes.join(',')}\tcreated ${k.createdAt.toISOString()}\t${k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'live'}\n`);
      }
      if (keys.length === 0) say('no partners yet');
      return;
    }
    case 'rotate': {
      const [name] = positional;
      if (!name) throw new Error('usage: npm run partner:rotate -- NAME [--revoke-others]');
      const key = await rotateKey(db, name, args.includes('--revoke-others'));
      say(`a new key for ${name}${args.includes('--revoke-others') ? '; its other keys are revoked' : '; its other keys still work until revoked'}`);
      process.stdout.write(`${key}\n`);
      return;
    }
    case 'revoke': {
      const [name] = positional;
      if (!name) throw new Error('usage: npm run partner:revoke -- NAME [--key PREFIX]');
      const n = await revokeKeys(db, name, option(args, 'key')?.replace(/…$/, ''));
      say(`${n} key(s) of ${name} revoked`);
      return;
    }
    case 'grant': {
      const [name, email] = positional;
      if (!name || !email) throw new Error('usage: npm run partner:grant -- NAME EMAIL');
      await grantPartner(db, name, email);
      say(`${email} granted ${name} access (within its scopes)`);
      return;
    }
    default:
      throw new Error(`unknown partner command ${command ?? ''}: create, list, rotate, revoke or grant`);
  }
}, { migrate: true });
