// Issue 8, "line retrieval: accuracy rises with training on the task": `exp run
// line-retrieval.yaml` as a user runs it, shrunk to cases of 1–3 lines (no curriculum) so that it
// fits CI. With seed 0 the held-out accuracy starts near chance (1/9 for one-digit registers) and
// must reach a stated bound by the last step; the per-length evaluation must be above chance too.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileStore } from '../../experiments/tracking/index.js';
import { outcome, runExp, tempDir, testEnv } from '../experiments/util.js';

// NOTE: measured on the shared 2-core machine (README "LM finetuning"): held-out accuracy 0.09 at
// step 50, 0.44 at 150, 0.66 at 250 (1m44s); the bounds leave room for float rounding elsewhere.
const STEPS = 250;
const FIRST_AT_MOST = 0.3;
const LAST_AT_LEAST = 0.45;
const CHANCE = 1 / 9;

test(`line retrieval learns: held-out accuracy rises from ≤ ${FIRST_AT_MOST} to ≥ ${LAST_AT_LEAST} in ${STEPS} steps (seed 0, 1–3 lines)`, async (t) => {
  const work = tempDir('line-retrieval-learns');
  try {
    const store = join(work, 'mlruns');
    const set = (kv: string) => ['--set', `line-retrieval.${kv}`];
    const r = await runExp(
      [
        'run',
        'line-retrieval.yaml',
        '--tracking-uri',
        store,
        '--json',
        '--seed',
        '0',
        ...set(`steps=${STEPS}`),
        ...set('trainLines=[1,2,3]'),
        ...set('curriculum.fullSteps=0'),
        ...set('evalEvery=50'),
        ...set('evalLines=[2]'),
        ...set('evalCases=32'),
        // the budget is on real memory, and --enable-source-maps (runExp) holds ≈ 18 MiB more JS per
        // device: 2 lines on one device need ≈ 76 MiB here, 58 without it (not what this test is about)
        ...set('deviceMemoryMB=128'),
      ],
      { env: testEnv(work) },
    );
    assert.equal(r.code, 0, r.stderr);
    const { run_id: id, status } = outcome(r);
    assert.equal(status, 'FINISHED');
    const fs = new FileStore(store);
    const held = await fs.getMetricHistory(id, 'train/heldout_accuracy');
    const curve = held.map((m) => `${m.step}: ${m.value}`).join(', ');
    t.diagnostic(`held-out accuracy ${curve}`);
    assert.deepEqual(
      held.map((m) => m.step),
      [50, 100, 150, 200, 250],
    );
    const first = held[0].value;
    const last = held[held.length - 1].value;
    assert.ok(
      first <= FIRST_AT_MOST,
      `held-out accuracy at step 50: expected ≤ ${FIRST_AT_MOST}; got ${curve}`,
    );
    assert.ok(
      last >= LAST_AT_LEAST,
      `held-out accuracy at step ${STEPS}: expected ≥ ${LAST_AT_LEAST}; got ${curve}`,
    );
    // the same weights per context length, on one device and on the ring: above chance (1/9)
    const one = await fs.getMetricHistory(id, 'eval/accuracy_2lines');
    const ring = await fs.getMetricHistory(id, 'eval/ring_accuracy_2lines');
    t.diagnostic(`2 lines: one device ${one[0]?.value}, ring ${ring[0]?.value}`);
    assert.ok(one[0].value >= 3 * CHANCE, `one device, 2 lines: accuracy ${one[0].value}, expected ≥ 3/9`);
    // the same cases on the ring: equal up to an argmax flipped by float rounding
    assert.ok(
      Math.abs(ring[0].value - one[0].value) <= 1 / 16,
      `ring ${ring[0].value} vs one device ${one[0].value}`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
