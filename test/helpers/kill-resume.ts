/**
 * Helpers of the SIGKILL + `exp run --resume` tests (issue 21): wait on events in a run's file
 * store (a complete checkpoint, a later logged step), never on a wall-clock window. The only
 * bound is a generous timeout per wait, because the machine running CI may be loaded.
 */
import assert from 'node:assert/strict';
import type { FileStore } from '../../experiments/tracking/index.js';

/** Polls `probe` until it returns true; fails after `timeoutMs` (generous: the machine may be loaded). */
export async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 180_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/**
 * The newest complete checkpoint of a run in the store (0 when none): its `checkpoint.json` is
 * uploaded after its tensors, so a folder holding it is one `--resume` can use.
 */
export async function newestCheckpoint(fs: FileStore, runId: string): Promise<number> {
  const dirs = await fs.listArtifacts(runId, 'checkpoints').catch(() => []);
  let newest = 0;
  for (const d of dirs) {
    const files = await fs.listArtifacts(runId, d.path).catch(() => []);
    if (files.some((f) => f.path.endsWith('/checkpoint.json')))
      newest = Math.max(newest, Number(d.path.slice(-8)));
  }
  return newest;
}

/** The last step at which a run logged `key` (0 when none). */
export async function lastLoggedStep(fs: FileStore, runId: string, key: string): Promise<number> {
  const h = await fs.getMetricHistory(runId, key).catch(() => []);
  return h.reduce((a, m) => Math.max(a, m.step), 0);
}

/**
 * Waits for a complete checkpoint and a `key` step logged after it, so the kill lands mid-run
 * past a checkpoint: what `--resume` must redo is the steps between them. Returns both.
 */
export async function checkpointThenStep(
  fs: FileStore,
  runId: string,
  key: string,
): Promise<{ saved: number; logged: number }> {
  let saved = 0;
  let logged = 0;
  await until(`a checkpoint and a later ${key} step`, async () => {
    saved = await newestCheckpoint(fs, runId);
    logged = await lastLoggedStep(fs, runId, key);
    return saved > 0 && logged > saved;
  });
  return { saved, logged };
}

/** A metric's history as [step, value] pairs, in the store's order. */
export async function series(fs: FileStore, runId: string, key: string): Promise<[number, number][]> {
  return (await fs.getMetricHistory(runId, key)).map((m) => [m.step, m.value]);
}
