/**
 * `exp run --resume` after SIGKILL for the LM recipes with checkpoints (issue 21: resume was
 * tested for the toy recipe and, with SIGINT, for the LM finetune only). Each case runs once to
 * the end and once killed (SIGKILL: no checkpoint on the way out, the run stays RUNNING) after a
 * complete checkpoint and at least one logged step past it, then resumed. The resumed run must log
 * every step exactly once with the uninterrupted run's values.
 *
 * The killed run stops itself after step 6 (`EXP_FAULT_STOP_AT_STEP`, experiments/runner.ts), so
 * it cannot finish before the kill; the kill waits on events in the run's store
 * (test/helpers/kill-resume.ts), never on a wall-clock window.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FileStore } from '../../experiments/tracking/index.js';
import {
  finished,
  outcome,
  runExp,
  runIdFromStderr,
  spawnExp,
  tempDir,
  testEnv,
} from '../experiments/util.js';
import { checkpointThenStep, series } from '../helpers/kill-resume.js';

const work = tempDir('lm-resume-kill');
after(() => rmSync(work, { recursive: true, force: true }));

const tracking = (store: string) => [
  '--tracking-uri',
  store,
  '--json',
  '--seed',
  '3',
  '--set',
  'tracking.systemMetricsEverySec=0',
  '--set',
  'tracking.flushEverySec=0.1',
];

interface KillCase {
  name: string;
  config: string;
  /** `--set` pairs under the recipe's key. */
  sets: string[];
  recipe: string;
  /** Metrics compared with the uninterrupted run; the first one drives the kill. */
  keys: string[];
  steps: number;
}

const tinyLlama = [
  'model.hiddenSize=16',
  'model.intermediateSize=32',
  'model.numLayers=1',
  'model.numHeads=2',
];

const cases: KillCase[] = [
  {
    name: 'line-retrieval',
    config: 'line-retrieval.yaml',
    recipe: 'line-retrieval',
    steps: 40,
    sets: [
      'steps=40',
      'batchSize=4',
      ...tinyLlama,
      'model.numKvHeads=2',
      'warmupSteps=2',
      'curriculum.holdSteps=10',
      'curriculum.fullSteps=30',
      'evalEvery=10',
      'evalLines=[2]',
      'evalCases=2',
      'evalBatch=2',
      'deviceMemoryMB=6',
    ],
    keys: ['train/loss', 'train/max_lines', 'train/heldout_accuracy', 'eval/ring_accuracy'],
  },
  ...(
    [
      ['one device', []],
      ['ring N=2', ['attention=ring', 'devices=2']],
    ] as const
  ).map(([label, ring]) => ({
    name: `sharegpt-finetune ${label}`,
    config: 'sharegpt-finetune.yaml',
    recipe: 'sharegpt-finetune',
    steps: 24,
    sets: [
      'steps=24',
      'seqLen=96',
      'batchSize=1',
      'gradAccum=1',
      'warmupSteps=2',
      'exportHf=false',
      ...tinyLlama,
      'model.numKvHeads=1',
      'blockSize=16',
      ...ring,
    ],
    keys: ['train/loss', 'train/lr'],
  })),
];

for (const c of cases)
  test(`${c.name}: SIGKILL after a checkpoint, --resume logs each step once with the uninterrupted values`, async () => {
    const env = testEnv(work);
    const args = (store: string) => [
      'run',
      c.config,
      ...tracking(store),
      '--set',
      'checkpoint.every=4',
      ...c.sets.flatMap((kv) => ['--set', `${c.recipe}.${kv}`]),
    ];
    const tag = c.name.replace(/\W+/g, '-');
    const refStore = join(work, `ref-${tag}`);
    const store = join(work, `mlruns-${tag}`);
    // the uninterrupted reference runs alongside the one we kill
    const refP = runExp(args(refStore), { env });
    // stops itself after step 6 (checkpoint 4 saved): the run cannot finish before the kill
    const child = spawnExp(args(store), { env: { ...env, EXP_FAULT_STOP_AT_STEP: '6' } });
    const done = finished(child);
    const id = await runIdFromStderr(child);
    const fs = new FileStore(store);
    const { saved, logged } = await checkpointThenStep(fs, id, c.keys[0]);
    child.kill('SIGKILL');
    const killed = await done;
    assert.notEqual(killed.code, 0, 'the run was killed before it finished');
    assert.equal((await fs.getRun(id)).info.status, 'RUNNING', 'a killed process leaves the run RUNNING');

    const resumed = await runExp(['run', '--resume', id, '--tracking-uri', store, '--json'], { env });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(outcome(resumed).run_id, id, 'same MLflow run');
    assert.equal(outcome(resumed).status, 'FINISHED');
    // a later checkpoint may have landed between our look and the kill
    const from = Number(/resuming after step (\d+)/.exec(resumed.stderr)?.[1]);
    assert.ok(
      from >= saved && from < c.steps,
      `resumed after step ${from}, checkpoint ${saved} seen before the kill`,
    );

    const ref = await refP;
    assert.equal(ref.code, 0, ref.stderr);
    const refFs = new FileStore(refStore);
    const refId = outcome(ref).run_id;
    assert.equal((await series(refFs, refId, c.keys[0])).length, c.steps);
    for (const key of c.keys) {
      const a = await series(refFs, refId, key);
      assert.ok(a.length > 0, `${key}: logged by the reference run`);
      assert.deepEqual(
        await series(fs, id, key),
        a,
        `${key}: each step once, same values (killed after checkpoint ${saved}, step ${logged} logged)`,
      );
    }
  });
