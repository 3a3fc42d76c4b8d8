/**
 * `exp run context-scaling.yaml --resume` after SIGKILL (issue 21: resume for every recipe with
 * checkpoints). Its checkpoint is the list of cells measured (`checkpoint.every` cells); a
 * resumed run must skip those cells (no probe of theirs in its log), measure the rest, and end
 * with the uninterrupted run's result: every `cell.*` param and the table artifact equal.
 * Throughput is off (`throughputSteps=0`) and the budget is on tensor bytes (`budgetOn=tensors`),
 * which do not depend on timing; the real memory (`peak_mib`) is left out of the comparison.
 *
 * The kill waits on events in the run's store (a complete checkpoint, then the next cell's param),
 * never on a wall-clock window; the only bound is a generous timeout per wait.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FileStore } from '../../experiments/tracking/index.js';
import { newestCheckpoint, until } from '../helpers/kill-resume.js';
import { finished, outcome, runExp, runIdFromStderr, spawnExp, tempDir, testEnv } from './util.js';

const work = tempDir('ctx-scaling-resume');
after(() => rmSync(work, { recursive: true, force: true }));

/** The run's `cell.<key>.<field>` params, but the real memory (`.peak_mib`: it moves with GC timing). */
async function cells(fs: FileStore, runId: string): Promise<Record<string, string>> {
  const { params } = await fs.getRun(runId);
  return Object.fromEntries(
    Object.entries(params).filter(([k]) => k.startsWith('cell.') && !k.endsWith('.peak_mib')),
  );
}

const cellsMeasured = async (fs: FileStore, runId: string) =>
  Object.keys(await cells(fs, runId)).filter((k) => k.endsWith('.max_context')).length;

test('context-scaling: SIGKILL after a checkpoint, --resume skips the saved cells and ends with the uninterrupted result', async () => {
  const env = testEnv(work);
  const args = (store: string) => [
    'run',
    'context-scaling.yaml',
    '--tracking-uri',
    store,
    '--json',
    '--set',
    'checkpoint.every=2',
    '--set',
    'tracking.systemMetricsEverySec=0',
    '--set',
    'tracking.flushEverySec=0.1',
    ...[
      'devices=[2]',
      'budgetMiB=12',
      'budgetOn=tensors', // tensor bytes repeat exactly; real memory moves by ~1 MiB with GC timing
      'maxLen=2048',
      'refineSteps=1',
      'throughputSteps=0',
      'model.dModel=32',
      'model.layers=1',
      'model.ffnHidden=64',
    ].flatMap((kv) => ['--set', `context-scaling.${kv}`]),
  ];
  const refStore = join(work, 'ref');
  const store = join(work, 'mlruns');
  const refP = runExp(args(refStore), { env, cwd: work });
  const child = spawnExp(args(store), { env, cwd: work });
  const done = finished(child);
  const id = await runIdFromStderr(child);
  const fs = new FileStore(store);
  // 4 cells (vanilla, memeff, BPT, ring N=2), a checkpoint after the 2nd: kill once the 3rd is in
  let saved = 0;
  await until('checkpoint 2 and the third cell', async () => {
    saved = await newestCheckpoint(fs, id);
    return saved === 2 && (await cellsMeasured(fs, id)) === 3;
  });
  child.kill('SIGKILL');
  const killed = await done;
  assert.notEqual(killed.code, 0, 'the run was killed before it finished');
  assert.equal((await fs.getRun(id)).info.status, 'RUNNING', 'a killed process leaves the run RUNNING');

  const resumed = await runExp(['run', '--resume', id, '--tracking-uri', store, '--json'], {
    env,
    cwd: work,
  });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(outcome(resumed).run_id, id, 'same MLflow run');
  assert.equal(outcome(resumed).status, 'FINISHED');
  assert.match(resumed.stderr, /resuming after step 2\b/);
  // the saved cells are not probed again; the third (killed before its checkpoint) and fourth are
  assert.doesNotMatch(resumed.stderr, /^.*\b(vanilla|memeff) N=1 L=/m, 'a saved cell measured again');
  assert.match(resumed.stderr, /\bblockwise N=1 L=/);
  assert.match(resumed.stderr, /\bring N=2 L=/);

  const ref = await refP;
  assert.equal(ref.code, 0, ref.stderr);
  const refFs = new FileStore(refStore);
  const refId = outcome(ref).run_id;
  const expected = await cells(refFs, refId);
  // max_context, tensor_mib and buffer_mib of each of the 4 cells
  assert.equal(Object.keys(expected).length, 12, JSON.stringify(expected));
  assert.ok(
    Number(expected['cell.ring_n2.max_context']) > 0,
    `cells measure something: ${JSON.stringify(expected)}`,
  );
  assert.deepEqual(await cells(fs, id), expected, 'every cell param equals the uninterrupted run');
  const table = async (s: FileStore, runId: string) => {
    const local = join(work, `${runId}.json`);
    await s.downloadArtifact(runId, 'tables/context_scaling.json', local);
    const split = JSON.parse(readFileSync(local, 'utf8')) as { columns: string[]; data: unknown[][] };
    const real = split.columns.indexOf('peak_mib');
    return split.data.map((row) => row.filter((_, i) => i !== real));
  };
  assert.deepEqual(await table(fs, id), await table(refFs, refId), 'the table artifact');
});
