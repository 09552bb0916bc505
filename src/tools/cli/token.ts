import { issueToken, type IssuedToken, type TokenRequest } from '../../admission/mint.js';
import type { Config } from '../../config.js';
import { DEV_TOKEN_PATH } from '../../http/dev-token.js';
import { option, runCommand, say } from './common.js';

// npm run token -- EMAIL [--expires 30d]                                  a user's own bearer token
// npm run token -- EMAIL --partner NAME [--scopes a,b] [--expires 1h]     a token delegated to a partner
// Either way the token, and nothing else, goes to stdout. While a development server holds the
// embedded database's directory, the token is asked of that server (POST /dev/token) instead.
const args = process.argv.slice(2);
const email = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const partner = option(args, 'partner');
const usage = 'usage: npm run token -- EMAIL [--expires 30d] | npm run token -- EMAIL --partner NAME [--scopes portfolios:read,trades:write] [--expires 1h]';

function requestOf(): TokenRequest {
  if (!email || (partner !== undefined && (partner.startsWith('--') || partner === ''))) throw new Error(usage);
  const scopes = args.includes('--scopes')
    ? (option(args, 'scopes') ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : undefined;
  return { email, partner, scopes, expires: option(args, 'expires') };
}

/** The running server's answer, for a newcomer who started it before minting a token. */
async function askRunningServer(config: Config): Promise<IssuedToken> {
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${config.port}${DEV_TOKEN_PATH}`;
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(requestOf()) });
  } catch {
    throw new Error(
      `a process holds the embedded database ${config.database.pgliteDataDir}, but no server answers at ${url}: stop that process, or start the server with the same HOST and PORT`,
    );
  }
  const body = (await res.json().catch(() => ({}))) as Partial<IssuedToken> & { error?: string };
  if (res.status === 404)
    throw new Error(`the server at ${url} mints no tokens (it does only in development, on the embedded database): stop it to mint one here`);
  if (!res.ok || typeof body.token !== 'string') throw new Error(body.error ?? `the server at ${url} answered ${res.status}`);
  return { token: body.token, note: `${body.note ?? 'a token'} (minted by the running server)` };
}

const print = ({ token, note }: IssuedToken) => {
  say(note);
  process.stdout.write(`${token}\n`);
};

await runCommand(async ({ config, database }) => print(await issueToken(database.db, config.auth.jwtSecret, requestOf())), {
  whenBusy: async (config) => print(await askRunningServer(config)),
});
