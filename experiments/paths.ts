/** Where the experiments room finds the repository and keeps its working files. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'ring-harness') return dir;
      } catch {
        // keep walking
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('experiments: cannot find the ring-harness package root');
    dir = up;
  }
}

/** The repository (package) root: configs, bin/ and .cache/ live here. */
export const PACKAGE_ROOT = findPackageRoot();

/** Built-in configs: `exp run toy.yaml` looks here when the name is not a path. */
export const CONFIG_DIR = join(PACKAGE_ROOT, 'experiments', 'configs');

/**
 * Working files of runs (local checkpoints, spooled MLflow requests): EXP_WORK_DIR, else
 * `.cache/exp` in the repository (git-ignored).
 */
export function workDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.EXP_WORK_DIR || join(PACKAGE_ROOT, '.cache', 'exp'));
}

/** Folder of spooled requests to tracking servers. */
export function spoolDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(workDir(env), 'spool');
}
