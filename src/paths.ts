import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The project's root: the nearest folder above this file with a package.json. The same answer from
 * src/ under tsx and from dist/ in the built image, so schema/, migrations/ and data resolve alike.
 */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the project root (no package.json above src/)');
    dir = up;
  }
  return dir;
}

export const projectRoot = findRoot();
export const migrationsDir = join(projectRoot, 'migrations');
export const schemaDir = join(projectRoot, 'schema');
export const demoDataDir = join(projectRoot, 'src', 'db', 'demo');
