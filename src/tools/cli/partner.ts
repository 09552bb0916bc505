import { createPartner, grantPartner, listGrants, listKeys, revokeGrant, revokeKeys, rotateKey } from '../../admission/partners.js';
import { option, runCommand, say } from './common.js';

// npm run partner:<create|list|rotate|revoke|grant|revoke-grant|grants> -- ... : partners, their API keys
// and users' grants.
const [command, ...args] = process.argv.slice(2);
const positional = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));

await runCommand(
  async ({ database: { db } }) => {
    switch (command) {
      case 'create': {
        const [name] = positional;
        if (!name) throw new Error('usage: npm run partner:create -- NAME [--scopes portfolios:read,trades:write]');
        const scopes = (option(args, 'scopes') ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const { partner, key } = await createPartner(db, name, scopes);
        say(`partner ${partner.name} created with scopes ${partner.scopes.join(', ')}; its API key follows (shown once, stored hashed)`);
        process.stdout.write(`${key}\n`);
        return;
      }
      case 'list': {
        const keys = await listKeys(db);
        for (const k of keys) {
          process.stdout.write(
            `${k.partner}\t${k.prefix}…\t${k.scopes.join(',')}\tcreated ${k.createdAt.toISOString()}\t${k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'live'}\n`,
          );
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
        const { created } = await grantPartner(db, name, email);
        say(
          created
            ? `${email} granted ${name} access (within its scopes); mint its token with npm run token -- ${email} --partner ${name}`
            : `${email} had granted ${name} access already`,
        );
        return;
      }
      case 'revoke-grant': {
        const [name, email] = positional;
        if (!name || !email) throw new Error('usage: npm run partner:revoke-grant -- NAME EMAIL');
        const n = await revokeGrant(db, name, email);
        say(n ? `${email}'s grant to ${name} revoked: its delegated tokens stop working within PARTNER_CACHE_TTL_MS` : `${email} had no live grant to ${name}`);
        return;
      }
      case 'grants': {
        const [name] = positional;
        const grants = await listGrants(db, name);
        for (const g of grants) {
          process.stdout.write(
            `${g.partner}\t${g.email}\tgranted ${g.createdAt.toISOString()}\t${g.revokedAt ? `revoked ${g.revokedAt.toISOString()}` : 'live'}\n`,
          );
        }
        if (grants.length === 0) say('no grants yet');
        return;
      }
      default:
        throw new Error(`unknown partner command ${command ?? ''}: create, list, rotate, revoke, grant, revoke-grant or grants`);
    }
  },
  { migrate: true },
);
