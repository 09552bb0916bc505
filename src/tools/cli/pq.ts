import { readFileSync } from 'node:fs';
import { eq } from 'drizzle-orm';
import { partners } from '../../db/schema.js';
import type { Db } from '../../db/client.js';
import { buildSchema } from '../../graphql/schema.js';
import { checkManifest, checkPublished, listDocuments, publishOperations, retireDocument, type DocumentChecks } from '../../admission/trusted-documents.js';
import { CostEstimator } from '../../limits/cost-estimate.js';
import { limitRules } from '../../limits/rules.js';
import { option, runCommand, say } from './common.js';

// npm run pq:<publish|list|retire|check> -- ... : trusted documents (persisted operations) for partners.
const [command, ...args] = process.argv.slice(2);
const positional = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));

async function partnerId(db: Db, name: string | undefined): Promise<number | null> {
  if (!name) return null;
  const [row] = await db.select({ id: partners.id }).from(partners).where(eq(partners.name, name));
  if (!row) throw new Error(`no partner named ${JSON.stringify(name)}`);
  return row.id;
}

await runCommand(
  async ({ config, database: { db } }) => {
    const schema = buildSchema();
    const checks: DocumentChecks = { schema, estimator: new CostEstimator(schema), rules: limitRules(config), maxCost: config.limits.maxCost };
    switch (command) {
      case 'publish': {
        const [file] = positional;
        if (!file) throw new Error('usage: npm run pq:publish -- MANIFEST.json [--partner NAME]');
        let manifest: unknown;
        try {
          manifest = JSON.parse(readFileSync(file, 'utf8'));
        } catch (e) {
          throw new Error(`cannot read ${file} as JSON: ${(e as Error).message}`);
        }
        const { operations, problems } = checkManifest(manifest, checks);
        if (problems.length) throw new Error(`nothing published; the manifest has problems:\n  ${problems.join('\n  ')}`);
        const who = option(args, 'partner');
        const result = await publishOperations(db, operations, await partnerId(db, who));
        say(`${result.published} operation(s) published, ${result.unchanged} unchanged, for ${who ?? 'every partner'}`);
        process.stdout.write(`${JSON.stringify({ ...result, operations: operations.map(({ id, name, cost }) => ({ id, name, cost })) })}\n`);
        return;
      }
      case 'list': {
        const id = await partnerId(db, option(args, 'partner'));
        for (const d of await listDocuments(db, id ?? undefined)) {
          process.stdout.write(`${d.sha256}\t${d.name}\t${d.type}\t${d.partner ?? '(all partners)'}\tcost ${d.cost}\t${d.retired ? 'retired' : 'live'}\n`);
        }
        return;
      }
      case 'retire': {
        const [hash] = positional;
        if (!hash) throw new Error('usage: npm run pq:retire -- SHA256 [--partner NAME]');
        const n = await retireDocument(db, hash.toLowerCase(), await partnerId(db, option(args, 'partner')));
        if (n === 0) throw new Error('no live document with that hash for that partner');
        say('retired');
        return;
      }
      case 'check': {
        const report = await checkPublished(db, checks);
        let broken = 0;
        for (const d of report) {
          const delta = d.currentCost - d.cost;
          const status = d.problems.length
            ? `BROKEN: ${d.problems.join('; ')}`
            : `ok, cost ${d.currentCost} (${delta >= 0 ? '+' : ''}${delta} since published)`;
          if (d.problems.length) broken++;
          process.stdout.write(`${d.name}\t${d.sha256.slice(0, 12)}…\t${d.partner ?? '(all partners)'}\t${status}\n`);
        }
        say(`${report.length} published operation(s) checked against the schema in this tree: ${broken} broken`);
        if (broken) process.exitCode = 1;
        return;
      }
      default:
        throw new Error(`unknown pq command ${command ?? ''}: publish, list, retire or check`);
    }
  },
  { migrate: true },
);
