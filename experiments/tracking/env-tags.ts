/**
 * Tags describing where a run ran: git commit and dirty state (MLflow's
 * `mlflow.source.git.commit`), host, user, package versions. Gathered once per process.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../paths.js';

const require = createRequire(import.meta.url);

function git(args: string[]): string | undefined {
  const r = spawnSync('git', args, { cwd: PACKAGE_ROOT, encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function packageVersion(name: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version: string })
      .version;
  } catch {
    return undefined;
  }
}

export function environmentTags(): Record<string, string> {
  const tags: Record<string, string> = {};
  const commit = git(['rev-parse', 'HEAD']);
  if (commit) {
    tags['mlflow.source.git.commit'] = commit;
    const branch = git(['rev-parse', '--abbrev-ref', 'HEAD']);
    if (branch) tags['mlflow.source.git.branch'] = branch;
    const status = git(['status', '--porcelain', '--untracked-files=no']);
    tags['exp.git.dirty'] = status ? 'true' : 'false';
  }
  try {
    tags['mlflow.user'] = userInfo().username;
  } catch {
    // no passwd entry (containers)
  }
  tags['exp.host'] = hostname();
  // Which sweep cell and scheduler job this is (issue 19): a sweep's parent finds its cells' runs
  // by exp.sweep.cell, and a failed cell's run names the job to look up.
  for (const [name, tag] of [
    ['EXP_SWEEP_CELL', 'exp.sweep.cell'],
    ['SLURM_JOB_ID', 'exp.slurm.job_id'],
    ['SLURM_ARRAY_JOB_ID', 'exp.slurm.array_job_id'],
    ['SLURM_ARRAY_TASK_ID', 'exp.slurm.array_task_id'],
    ['SLURMD_NODENAME', 'exp.slurm.node'],
  ] as const) {
    const v = process.env[name];
    if (v) tags[tag] = v;
  }
  tags['exp.version.node'] = process.versions.node;
  try {
    tags['exp.version.ring-harness'] = (
      JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }
    ).version;
  } catch {
    // not fatal
  }
  for (const pkg of [
    '@tensorflow/tfjs',
    '@tensorflow/tfjs-backend-wasm',
    '@tensorflow/tfjs-node',
    '@tensorflow/tfjs-node-gpu',
    'apache-arrow',
  ]) {
    const v = packageVersion(pkg);
    if (v) tags[`exp.version.${pkg.replace(/^@tensorflow\//, '')}`] = v;
  }
  return tags;
}
