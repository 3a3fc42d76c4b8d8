/**
 * Where a rank learns who it is: the environment its launcher sets (issue 9). Three conventions:
 *
 * - torchrun-style (also `exp launch`): RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
 * - SLURM (`srun`): SLURM_PROCID, SLURM_NTASKS, and rank 0's host is the first node of
 *   SLURM_STEP_NODELIST (or SLURM_NODELIST / SLURM_JOB_NODELIST) in SLURM's compact syntax,
 *   e.g. `gpu[01-03,07],login1`.
 * - Kubernetes indexed Job: JOB_COMPLETION_INDEX is the rank; WORLD_SIZE must be set to the
 *   Job's `completions`; rank 0's address is MASTER_ADDR, or else `<job>-0.<RING_K8S_SERVICE>`
 *   (the pod's stable DNS name under a headless service named as the Job's `subdomain`), with
 *   `<job>` taken from RING_K8S_JOB or from the pod's hostname `<job>-<index>`.
 *
 * The port is MASTER_PORT everywhere (default 29500, as torchrun). Explicit RANK/WORLD_SIZE win
 * over the cluster's variables, so a user can always override.
 */
import { readFileSync } from 'node:fs';
import { InputError } from '../../common/index.js';

export type RankSource = 'torchrun' | 'slurm' | 'kubernetes';

export interface RankEnvironment {
  rank: number;
  worldSize: number;
  /** Host or address of rank 0's rendezvous listener. */
  masterAddr: string;
  masterPort: number;
  source: RankSource;
}

export const DEFAULT_MASTER_PORT = 29500;

type Env = Record<string, string | undefined>;

function intVar(env: Env, name: string, min: number): number {
  const raw = env[name];
  const v = Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isInteger(v) || v < min)
    throw new InputError(`ring environment: ${name} must be an integer ≥ ${min}; got '${raw ?? ''}'`);
  return v;
}

function portVar(env: Env): number {
  if (env.MASTER_PORT === undefined) return DEFAULT_MASTER_PORT;
  const p = intVar(env, 'MASTER_PORT', 1);
  if (p > 65535) throw new InputError(`ring environment: MASTER_PORT must be ≤ 65535; got ${p}`);
  return p;
}

/**
 * Expands SLURM's compact node list: `a[01-03,07],b` → a01 a02 a03 a07 b. Zero padding of a
 * range is kept (`[08-10]` → 08 09 10). Commas inside brackets separate ranges, outside them hosts.
 */
export function parseNodeList(list: string): string[] {
  const hosts: string[] = [];
  let i = 0;
  const s = list.trim();
  while (i < s.length) {
    // one host expression: text with any number of bracket groups, up to a top-level comma
    let j = i;
    let depth = 0;
    while (j < s.length && (depth > 0 || s[j] !== ',')) {
      if (s[j] === '[') depth++;
      else if (s[j] === ']') depth--;
      if (depth < 0) throw new InputError(`parseNodeList: unbalanced ']' in '${list}'`);
      j++;
    }
    if (depth !== 0) throw new InputError(`parseNodeList: unbalanced '[' in '${list}'`);
    const expr = s.slice(i, j).trim();
    if (expr) hosts.push(...expandHost(expr, list));
    i = j + 1;
  }
  if (hosts.length === 0) throw new InputError(`parseNodeList: no hosts in '${list}'`);
  return hosts;
}

function expandHost(expr: string, list: string): string[] {
  const open = expr.indexOf('[');
  if (open < 0) return [expr];
  const close = expr.indexOf(']', open);
  const prefix = expr.slice(0, open);
  const rest = expandHost(expr.slice(close + 1), list);
  const out: string[] = [];
  for (const range of expr.slice(open + 1, close).split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(range.trim());
    if (!m) throw new InputError(`parseNodeList: bad range '${range}' in '${list}'`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new InputError(`parseNodeList: range '${range}' runs backwards in '${list}'`);
    const width = m[1].length;
    for (let n = lo; n <= hi; n++) {
      const id = String(n).padStart(width, '0');
      for (const r of rest) out.push(prefix + id + r);
    }
  }
  return out;
}

/** Reads this process's rank, world size and rank 0's address from `env` (default process.env). */
export function rankFromEnvironment(env: Env = process.env): RankEnvironment {
  const port = portVar(env);
  if (env.RANK !== undefined || env.WORLD_SIZE !== undefined) {
    if (env.RANK === undefined && env.JOB_COMPLETION_INDEX !== undefined) return kubernetes(env, port);
    const worldSize = intVar(env, 'WORLD_SIZE', 1);
    const rank = intVar(env, 'RANK', 0);
    return checked({
      rank,
      worldSize,
      masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
      masterPort: port,
      source: 'torchrun',
    });
  }
  if (env.SLURM_PROCID !== undefined) {
    const rank = intVar(env, 'SLURM_PROCID', 0);
    const worldSize = intVar(env, 'SLURM_NTASKS', 1);
    const list = env.SLURM_STEP_NODELIST ?? env.SLURM_NODELIST ?? env.SLURM_JOB_NODELIST;
    const masterAddr = env.MASTER_ADDR ?? (list ? parseNodeList(list)[0] : undefined);
    if (!masterAddr)
      throw new InputError(
        'ring environment: SLURM_PROCID is set but neither MASTER_ADDR nor SLURM_STEP_NODELIST is',
      );
    return checked({ rank, worldSize, masterAddr, masterPort: port, source: 'slurm' });
  }
  if (env.JOB_COMPLETION_INDEX !== undefined) return kubernetes(env, port);
  throw new InputError(
    'ring environment: no rank found; set RANK and WORLD_SIZE (or run under exp launch, srun, or a Kubernetes indexed Job)',
  );
}

function kubernetes(env: Env, port: number): RankEnvironment {
  const rank = intVar(env, 'JOB_COMPLETION_INDEX', 0);
  if (env.WORLD_SIZE === undefined)
    throw new InputError(
      "ring environment: a Kubernetes indexed Job must set WORLD_SIZE to the Job's completions",
    );
  const worldSize = intVar(env, 'WORLD_SIZE', 1);
  let masterAddr = env.MASTER_ADDR;
  if (!masterAddr) {
    const service = env.RING_K8S_SERVICE;
    const host = env.HOSTNAME ?? '';
    const suffix = `-${rank}`;
    const job = env.RING_K8S_JOB ?? (host.endsWith(suffix) ? host.slice(0, -suffix.length) : undefined);
    if (!service || !job)
      throw new InputError(
        'ring environment: under a Kubernetes indexed Job set MASTER_ADDR, or RING_K8S_SERVICE (the headless service) with the pod hostname <job>-<index> or RING_K8S_JOB',
      );
    masterAddr = `${job}-0.${service}`;
  }
  return checked({ rank, worldSize, masterAddr, masterPort: port, source: 'kubernetes' });
}

function checked(e: RankEnvironment): RankEnvironment {
  if (e.rank >= e.worldSize)
    throw new InputError(`ring environment: rank ${e.rank} is out of range for world size ${e.worldSize}`);
  return e;
}

/**
 * The shared secret ranks authenticate with: RING_SECRET, or the contents of RING_SECRET_FILE
 * (trailing newline stripped). Never logged. At least 16 bytes, so it is not guessable.
 */
export function secretFromEnvironment(env: Env = process.env): Uint8Array {
  let secret: string | undefined = env.RING_SECRET;
  let from = 'RING_SECRET';
  if (secret === undefined && env.RING_SECRET_FILE) {
    from = `RING_SECRET_FILE (${env.RING_SECRET_FILE})`;
    try {
      secret = readFileSync(env.RING_SECRET_FILE, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new InputError(`ring secret: cannot read ${from}: ${(err as Error).message}`);
    }
  }
  if (secret === undefined)
    throw new InputError('ring secret: set RING_SECRET or RING_SECRET_FILE (the same on every rank)');
  const bytes = new TextEncoder().encode(secret);
  if (bytes.length < 16)
    throw new InputError(`ring secret: ${from} must hold at least 16 bytes; got ${bytes.length}`);
  return bytes;
}

/** The transport settings a rank reads from its environment (documented in the README). */
export interface TransportEnvironment extends RankEnvironment {
  secret: Uint8Array;
  /** RING_BIND_ADDR (default 127.0.0.1). */
  bindAddr: string;
  /** RING_ADVERTISE_ADDR (default: the bind address). */
  advertiseAddr?: string;
  /** RING_LINK_PORT (default 0: any free port). */
  linkPort: number;
  /** RING_RENDEZVOUS_TIMEOUT_MS (default 60000). */
  rendezvousTimeoutMs: number;
  /** RING_HEARTBEAT_TIMEOUT_MS (default 10000). */
  heartbeatTimeoutMs: number;
  /** RING_LAUNCHER_PID: set by `exp launch`; the rank aborts if the launcher dies. */
  launcherPid?: number;
}

export function transportFromEnvironment(env: Env = process.env): TransportEnvironment {
  const where = rankFromEnvironment(env);
  const opt = (name: string, fallback: number, min: number) =>
    env[name] === undefined ? fallback : intVar(env, name, min);
  return {
    ...where,
    secret: secretFromEnvironment(env),
    bindAddr: env.RING_BIND_ADDR ?? '127.0.0.1',
    advertiseAddr: env.RING_ADVERTISE_ADDR,
    linkPort: opt('RING_LINK_PORT', 0, 0),
    rendezvousTimeoutMs: opt('RING_RENDEZVOUS_TIMEOUT_MS', 60_000, 1),
    heartbeatTimeoutMs: opt('RING_HEARTBEAT_TIMEOUT_MS', 10_000, 1),
    launcherPid: env.RING_LAUNCHER_PID === undefined ? undefined : intVar(env, 'RING_LAUNCHER_PID', 1),
  };
}
