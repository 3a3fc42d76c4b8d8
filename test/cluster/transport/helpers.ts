/** Running ranks of the multi-process ring in subprocesses, as a user does (issue 9 tests). */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { repoRoot } from '../../helpers/cli.js';
import { freeTcpPort } from '../../../common/index.js';

/** A port a rank's rendezvous can bind (below the ephemeral range: see common/net.ts). */
export const freePort = freeTcpPort;

export const EXP = `${repoRoot}/bin/exp.js`;

export interface Proc {
  pid: number;
  /** Resolves when the process has exited. */
  done: Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
    ms: number;
  }>;
  /** Everything written to stderr so far. */
  stderr(): string;
  exited(): boolean;
}

/** Starts `command args` (default: node bin/exp.js …); kills it after `timeoutMs`. */
export function start(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 120_000,
  command: string[] = [process.execPath, EXP],
): Proc {
  const started = Date.now();
  const child = spawn(command[0], [...command.slice(1), ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  let exited = false;
  const done = new Promise<Awaited<Proc['done']>>((resolve) => {
    child.on('close', (code, signal) => {
      exited = true;
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
  return { pid: child.pid!, done, stderr: () => stderr, exited: () => exited };
}

/** JSON objects printed one per line. */
export function jsonLines<T>(stdout: string): T[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as T);
}

export function secret(): string {
  return randomBytes(24).toString('hex');
}

/** Environment of one rank started by hand (as srun or a Kubernetes Job would). */
export function rankEnv(
  rank: number,
  worldSize: number,
  port: number,
  s: string,
  extra: NodeJS.ProcessEnv = {},
) {
  return {
    RANK: String(rank),
    WORLD_SIZE: String(worldSize),
    MASTER_ADDR: '127.0.0.1',
    MASTER_PORT: String(port),
    RING_SECRET: s,
    ...extra,
  };
}

/** Resolves once `p` wrote `text` to stderr (or rejects after `ms`). */
export async function waitForStderr(p: Proc, text: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!p.stderr().includes(text)) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for '${text}'; stderr so far:\n${p.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A small problem's flags for `exp ring-worker attention`. */
export interface WorkerCase {
  B: number;
  H: number;
  Hk: number;
  T: number;
  D: number;
  causal: boolean;
  layout: 'contiguous' | 'striped';
  blockSize: number;
  segmentLength?: number;
}

export function workerArgs(c: WorkerCase, extra: string[] = []): string[] {
  return [
    'ring-worker',
    'attention',
    '--backend',
    'wasm',
    `--batch=${c.B}`,
    `--heads=${c.H}`,
    `--kv-heads=${c.Hk}`,
    `--seq-len=${c.T}`,
    `--head-dim=${c.D}`,
    `--block-size=${c.blockSize}`,
    `--layout=${c.layout}`,
    ...(c.causal ? ['--causal'] : []),
    ...(c.segmentLength ? [`--segment-length=${c.segmentLength}`] : []),
    ...extra,
  ];
}
