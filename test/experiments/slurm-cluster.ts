/**
 * The single-node SLURM cluster of the issue 19 tests: `scripts/slurm-cluster.sh start` (installs
 * slurm-wlm and munge where missing, idempotent). Exit 3 means the packages cannot be installed
 * here (not root, no apt-get, apt failed) or a real cluster's slurm.conf is in place: the tests then
 * skip with the script's reason; any other failure (a daemon that does not start) fails them.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../helpers/cli.js';

const SCRIPT = join(repoRoot, 'scripts', 'slurm-cluster.sh');

export interface SlurmCluster {
  /** Why the tests skip, or undefined when the cluster is up. */
  skip?: string;
  /** Stops the daemons if this call started them. */
  stop(): void;
}

export function startSlurmCluster(): SlurmCluster {
  const wasUp = spawnSync('bash', [SCRIPT, 'status'], { encoding: 'utf8' }).status === 0;
  // first run installs packages: allow minutes
  const r = spawnSync('bash', [SCRIPT, 'start'], { encoding: 'utf8', timeout: 15 * 60_000 });
  const said = `${r.stderr ?? ''}`.trim().split('\n').pop() ?? '';
  if (r.status === 3) return { skip: said.replace(/^slurm-cluster: /, ''), stop: () => {} };
  if (r.status !== 0)
    throw new Error(`scripts/slurm-cluster.sh start failed (exit ${r.status ?? r.signal}): ${r.stderr}`);
  return {
    stop: () => {
      if (!wasUp) spawnSync('bash', [SCRIPT, 'stop'], { encoding: 'utf8' });
    },
  };
}

/** `squeue`/`scontrol` text of a job, for assertion messages. */
export function slurmOut(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`;
}
