// `exp run sharegpt-finetune.yaml` interrupted with SIGINT after a few steps ends KILLED with a
// checkpoint of its last completed step; `exp run --resume <id>` finishes the same MLflow run,
// and its train/loss stream equals an uninterrupted run's with the same seed (weights, AdamW
// moments and the per-step sampler seed are restored), on one device and on ring N=2 (issue 22).
// Mirrors test/experiments/resume.test.ts.
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
  waitForStep,
} from '../experiments/util.js';

const STEPS = 40;
const work = tempDir('lm-finetune-resume');
after(() => rmSync(work, { recursive: true, force: true }));

const common = (store: string, ring: string[]) => [
  '--tracking-uri',
  store,
  '--json',
  '--seed',
  '3',
  '--set',
  'checkpoint.every=2',
  '--set',
  'tracking.systemMetricsEverySec=0',
  '--set',
  'tracking.flushEverySec=0.2',
  ...[
    `steps=${STEPS}`,
    'seqLen=96',
    'batchSize=1',
    'gradAccum=1',
    'warmupSteps=2',
    'exportHf=false',
    'model.hiddenSize=16',
    'model.intermediateSize=32',
    'model.numLayers=1',
    'model.numHeads=2',
    'model.numKvHeads=1',
    'blockSize=16',
    ...ring,
  ].flatMap((kv) => ['--set', `sharegpt-finetune.${kv}`]),
];

for (const [label, ring] of [
  ['one device', []],
  ['ring N=2 (issue 22)', ['attention=ring', 'devices=2']],
] as const)
  test(`sharegpt-finetune ${label}: SIGINT after a few steps, --resume continues with the same loss stream`, async () => {
    const env = testEnv(work);
    const refStore = join(work, `ref-${label}`);
    const store = join(work, `mlruns-${label}`);
    const refP = runExp(['run', 'sharegpt-finetune.yaml', ...common(refStore, [...ring])], { env });
    const child = spawnExp(['run', 'sharegpt-finetune.yaml', ...common(store, [...ring])], { env });
    const done = finished(child);
    const id = await runIdFromStderr(child);
    const fs = new FileStore(store);
    await waitForStep(fs, id, 'train/loss', 3);
    child.kill('SIGINT');
    const r = await done;
    assert.equal(r.code, 130, `exit code 130 after Ctrl-C; stderr:\n${r.stderr}`);
    assert.equal(outcome(r).status, 'KILLED');
    const cut = (await fs.getMetricHistory(id, 'train/loss')).map((m) => m.step);
    const lastStep = cut.reduce((a, b) => Math.max(a, b), 0);
    assert.ok(lastStep >= 3 && lastStep < STEPS, `interrupted mid-run (at step ${lastStep})`);

    const resumed = await runExp(['run', '--resume', id, '--tracking-uri', store, '--json'], { env });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(outcome(resumed).run_id, id, 'same MLflow run');
    assert.equal(outcome(resumed).status, 'FINISHED');
    assert.match(resumed.stderr, new RegExp(`resuming at step ${lastStep + 1}`));

    const ref = await refP;
    assert.equal(ref.code, 0, ref.stderr);
    const refId = outcome(ref).run_id;
    for (const key of ['train/loss', 'train/lr']) {
      const a = (await new FileStore(refStore).getMetricHistory(refId, key)).map((m) => [m.step, m.value]);
      const b = (await fs.getMetricHistory(id, key)).map((m) => [m.step, m.value]);
      assert.equal(a.length, STEPS);
      assert.deepEqual(b, a, `${key}: the resumed run's stream equals the uninterrupted one`);
    }
  });
