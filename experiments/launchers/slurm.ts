/**
 * SLURM for sweeps and the multi-process ring (issue 19): the batch script of an array job whose
 * element i runs sweep cell i, `sbatch` to submit it, `scontrol`/`sacct` to read each element's
 * state, and the `srun` line of a ring job step. Everything here shells out to SLURM's own
 * commands, so it works against any cluster those commands reach.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { InputError } from '../../common/index.js';

/** What each array element asks of the scheduler; unset fields use the cluster's defaults. */
export interface SlurmResources {
  /** `--partition`. */
  partition?: string;
  /** `--time`, SLURM's syntax: `30`, `2:00:00`, `1-00:00:00`. */
  time?: string;
  /** `--cpus-per-task` (default 1: one cell, one core). */
  cpusPerTask: number;
  /** `--mem`, e.g. `4G` (per node, so per cell). */
  mem?: string;
  /** Extra `sbatch` arguments, passed as given (`--account=x`, `--qos=y`). */
  extra: string[];
}

/** One element of the array: a shell command line, already quoted. */
export interface ArrayCell {
  index: number;
  /** Arguments of `exp` (each quoted by `shellQuote` when the script is written). */
  args: string[];
}

export interface ArrayJobSpec {
  jobName: string;
  /** Cells to run now; their `index` is the array index (a resubmission keeps the indices). */
  cells: ArrayCell[];
  /** At most this many elements at once (`%P`). */
  parallel: number;
  resources: SlurmResources;
  /** `%a` is the array index: one log per cell. */
  logPattern: string;
  /** The program and script that are `exp` on the compute nodes (a shared install). */
  node: string;
  expScript: string;
  /** Exported to every element (MLFLOW_TRACKING_URI, EXP_WORK_DIR, …). */
  env: Record<string, string>;
  /** Lines of comment at the top of the script (what it is, which parent run). */
  comment: string[];
}

/** Quotes a word for bash: safe words as they are, others in single quotes. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** `0-3`, `1,3`, `0-2,5`: SLURM's compact list of array indices. */
export function arrayIndexList(indices: number[]): string {
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(j > i ? `${sorted[i]}-${sorted[j]}` : String(sorted[i]));
    i = j + 1;
  }
  return parts.join(',');
}

/** Expands `0-3%2`, `1,3`, `5` into indices (scontrol's ArrayTaskId of pending elements). */
export function parseIndexList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.replace(/%\d+$/, '').split(',')) {
    const m = /^(\d+)(?:-(\d+))?(?::(\d+))?$/.exec(part.trim());
    if (!m) continue;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    const step = m[3] === undefined ? 1 : Number(m[3]);
    for (let i = lo; i <= hi; i += step) out.push(i);
  }
  return out;
}

/**
 * The batch script of the array: `#SBATCH` lines, then a `case` on the element's index that
 * picks the cell's `exp` arguments, then `exec` of exp (so scancel's SIGTERM reaches exp run,
 * which ends its run KILLED with a checkpoint). Also used, with `indexVar` = JOB_COMPLETION_INDEX,
 * as the container script of a Kubernetes indexed Job.
 */
export function cellScript(spec: ArrayJobSpec, indexVar = 'SLURM_ARRAY_TASK_ID', sbatchLines = true): string {
  const r = spec.resources;
  const directives = sbatchLines
    ? [
        `--job-name=${spec.jobName}`,
        `--array=${arrayIndexList(spec.cells.map((c) => c.index))}%${spec.parallel}`,
        '--ntasks=1',
        `--cpus-per-task=${r.cpusPerTask}`,
        ...(r.partition ? [`--partition=${r.partition}`] : []),
        ...(r.time ? [`--time=${r.time}`] : []),
        ...(r.mem ? [`--mem=${r.mem}`] : []),
        `--output=${spec.logPattern}`,
        ...r.extra,
      ].map((d) => `#SBATCH ${d}`)
    : [];
  const cases = spec.cells.map((c) => `  ${c.index}) args=(${c.args.map(shellQuote).join(' ')}) ;;`);
  return `${[
    '#!/bin/bash',
    ...directives,
    ...spec.comment.map((l) => `# ${l}`),
    'set -u',
    `cell="\${${indexVar}:?this script runs one cell: ${indexVar} is not set}"`,
    'case "$cell" in',
    ...cases,
    `  *) echo "no sweep cell $cell in this script" >&2; exit 2 ;;`,
    'esac',
    // NOTE: the run tags itself with the cell (exp.sweep.cell), which is how the parent finds it.
    'export EXP_SWEEP_CELL="$cell"',
    ...Object.entries(spec.env).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    `exec ${shellQuote(spec.node)} ${shellQuote(spec.expScript)} "\${args[@]}"`,
  ].join('\n')}\n`;
}

/** Writes `text` to `path` atomically (a temporary file, then rename). */
export function writeFileAtomic(path: string, text: string, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
}

function slurmCommand(cmd: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT')
    throw new InputError(
      `SLURM: '${cmd}' not found on PATH; run this on a SLURM login node (or start the test cluster: scripts/slurm-cluster.sh start)`,
    );
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Submits a batch script; returns the job id. */
export function sbatch(scriptPath: string): string {
  const r = slurmCommand('sbatch', ['--parsable', scriptPath]);
  if (r.code !== 0)
    throw new InputError(
      `sbatch ${scriptPath}: refused (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`,
    );
  // `--parsable` prints `jobid` or `jobid;cluster`
  const id = r.stdout.trim().split(';')[0];
  if (!/^\d+$/.test(id)) throw new Error(`sbatch: expected a job id; got '${r.stdout.trim()}'`);
  return id;
}

/** `scancel` of an array job (all its elements) or one element `job_i`. */
export function scancel(jobId: string): void {
  slurmCommand('scancel', [jobId]);
}

/** SLURM job states after which an element will not run again. */
const TERMINAL = new Set([
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'OUT_OF_MEMORY',
  'NODE_FAIL',
  'BOOT_FAIL',
  'DEADLINE',
  'PREEMPTED',
  'REVOKED',
]);

export interface ElementState {
  index: number;
  /** SLURM's state: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, … */
  state: string;
  /** SLURM's Reason field (why pending, or why it failed), `None` when there is none. */
  reason: string;
  /** `exit:signal`, as SLURM reports it. */
  exitCode: string;
  terminal: boolean;
}

function keyValues(line: string): Map<string, string> {
  const out = new Map<string, string>();
  // `scontrol -o`: space-separated Key=Value; values hold no spaces except the last fields
  for (const m of line.matchAll(/(\w+)=(\S*)/g)) if (!out.has(m[1])) out.set(m[1], m[2]);
  return out;
}

/**
 * The state of every element of array job `jobId` the controller still knows, by index: from
 * `scontrol show job -o`, else (the job aged out of the controller) from `sacct`.
 */
export function arrayStates(jobId: string): Map<number, ElementState> {
  const out = new Map<number, ElementState>();
  const r = slurmCommand('scontrol', ['show', 'job', '-o', jobId]);
  if (r.code === 0) {
    for (const line of r.stdout.split('\n').filter((l) => l.trim())) {
      const kv = keyValues(line);
      const state = (kv.get('JobState') ?? 'UNKNOWN').split('+')[0];
      for (const index of parseIndexList(kv.get('ArrayTaskId') ?? ''))
        out.set(index, {
          index,
          state,
          reason: kv.get('Reason') ?? 'None',
          exitCode: kv.get('ExitCode') ?? '',
          terminal: TERMINAL.has(state),
        });
    }
    return out;
  }
  const acct = slurmCommand('sacct', ['-X', '-n', '-P', '-j', jobId, '-o', 'JobID,State,ExitCode,Reason']);
  if (acct.code !== 0)
    throw new Error(
      `SLURM: cannot read job ${jobId}: scontrol: ${r.stderr.trim()}; sacct: ${acct.stderr.trim()}`,
    );
  for (const line of acct.stdout.split('\n').filter((l) => l.trim())) {
    const [id, stateText, exitCode, reason] = line.split('|');
    const m = /_(\d+)$/.exec(id);
    if (!m) continue;
    // sacct writes `CANCELLED by 0`
    const state = stateText.split(' ')[0];
    out.set(Number(m[1]), {
      index: Number(m[1]),
      state,
      reason: reason || stateText,
      exitCode,
      terminal: TERMINAL.has(state),
    });
  }
  return out;
}

/** How a cell's child run ends for a terminal SLURM state: KILLED when stopped from outside. */
export function runStatusOfState(state: string): 'FINISHED' | 'FAILED' | 'KILLED' {
  if (state === 'COMPLETED') return 'FINISHED';
  return state === 'CANCELLED' || state === 'PREEMPTED' || state === 'DEADLINE' ? 'KILLED' : 'FAILED';
}

/** What the scheduler says of an element, for the run's `exp.status_reason`. */
export function describeElement(jobId: string, e: ElementState): string {
  const why: Record<string, string> = {
    CANCELLED: 'cancelled (scancel, or an administrator)',
    TIMEOUT: 'reached its time limit',
    OUT_OF_MEMORY: 'ran out of memory',
    NODE_FAIL: 'its node failed',
    PREEMPTED: 'preempted',
    FAILED: 'exited with an error',
    BOOT_FAIL: 'its node failed to boot',
    DEADLINE: 'missed its deadline',
  };
  const reason = e.reason && e.reason !== 'None' ? `, reason ${e.reason}` : '';
  return `SLURM job ${jobId}_${e.index} ${e.state}: ${why[e.state] ?? e.state.toLowerCase()} (exit code ${e.exitCode || '?'}${reason})`;
}

/** The `srun` line of a ring job step: K nodes × N tasks per node, ranks from SLURM_PROCID. */
export function srunArgs(o: {
  nodes: number;
  tasksPerNode: number;
  cpusPerTask?: number;
  partition?: string;
  time?: string;
  extra: string[];
}): string[] {
  return [
    `--nodes=${o.nodes}`,
    `--ntasks-per-node=${o.tasksPerNode}`,
    `--ntasks=${o.nodes * o.tasksPerNode}`,
    ...(o.cpusPerTask ? [`--cpus-per-task=${o.cpusPerTask}`] : []),
    ...(o.partition ? [`--partition=${o.partition}`] : []),
    ...(o.time ? [`--time=${o.time}`] : []),
    // a rank that fails ends the step: the others do not wait for a ring that cannot complete
    '--kill-on-bad-exit=1',
    ...o.extra,
  ];
}
