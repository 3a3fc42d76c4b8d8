/** Helpers of the experiments tests: the `exp` CLI in a subprocess, temporary folders. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/cli.js';

export { repoRoot };

export interface ExpResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A fresh temporary folder. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `exp-test-${prefix}-`));
}

/** Environment for a test subprocess: its own work folder, no inherited tracking URI, no colour. */
export function testEnv(work: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    EXP_WORK_DIR: join(work, '.exp'),
    RING_BACKEND: 'wasm',
    CI: '1',
  };
  delete env.MLFLOW_TRACKING_URI;
  delete env.MLFLOW_TRACKING_TOKEN;
  return { ...env, ...extra };
}

/** Starts `exp …` without waiting. */
export function spawnExp(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): ChildProcess {
  return spawn(process.execPath, ['--enable-source-maps', join(repoRoot, 'bin', 'exp.js'), ...args], {
    cwd: options.cwd ?? repoRoot,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Collects a child's output and exit code. */
export function finished(child: ChildProcess): Promise<ExpResult> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => {
      stdout += d;
    });
    child.stderr?.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr }));
  });
}

/** Runs `exp …` to the end (asynchronously, so several can run at once). */
export function runExp(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<ExpResult> {
  return finished(spawnExp(args, options));
}

/** The JSON line `exp run --json` prints last. */
export function outcome(r: ExpResult): {
  run_id: string;
  status: string;
  experiment_id: string;
  tracking_uri: string;
} {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(
      `exp printed no JSON outcome (exit ${r.code}):\nstdout: ${r.stdout}\nstderr: ${r.stderr.slice(-3000)}`,
    );
  }
}

/** Resolves with the run id once `exp run` prints `run <id> (…`. */
export function runIdFromStderr(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    let stderr = '';
    child.stderr?.on('data', (d) => {
      stderr += d;
      const m = /run ([0-9a-f]{32}) \(/.exec(stderr);
      if (m) resolve(m[1]);
    });
  });
}

/**
 * Waits until a run has logged `key` at step ≥ `step` (polling the store), so a test interrupts
 * a run mid-way however loaded the machine is.
 */
export async function waitForStep(
  store: { getMetricHistory(runId: string, key: string): Promise<{ step: number }[]> },
  runId: string,
  key: string,
  step: number,
  timeoutMs = 120_000,
): Promise<number> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const h = await store.getMetricHistory(runId, key).catch(() => []);
    const last = h.length ? Math.max(...h.map((m) => m.step)) : 0;
    if (last >= step) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`run ${runId} did not log ${key} step ${step} within ${timeoutMs} ms`);
}

/** What `exp sweep --json` prints last: the parent run, its cells and their runs. */
export interface SweepJson {
  parent_run_id: string;
  status: string;
  ran: number[];
  job_ids: string[];
  children: {
    index: number;
    cell: string;
    seed: number;
    runId?: string;
    status: string;
    scheduler?: string;
  }[];
}

/** The JSON line `exp sweep --json` ended with; an error quoting its output when there is none. */
export function sweepJson(r: ExpResult): SweepJson {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as SweepJson;
  } catch {
    throw new Error(`exp sweep printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr.slice(-4000)}`);
  }
}

/** A toy sweep of two cells, 10 steps each, into `store`: cell 0 finishes, cell 1 fails at step 5. */
export async function sweepToyFailingCell(store: string, env: NodeJS.ProcessEnv): Promise<SweepJson> {
  const args = ['sweep', 'toy.yaml', '--grid', 'toy.failAtStep=0,5', '--set', 'toy.steps=10'];
  return sweepJson(await runExp([...args, '--tracking-uri', store, '--json', '--quiet'], { env }));
}
