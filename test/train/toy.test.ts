/**
 * train/toy.ts (issue 13: the toy recipe's trainer, callable without experiments/): the held-out
 * loss it logs against a float64 MSE of the weights it checkpoints (not "it learns": 12 steps
 * lower the held-out loss for only ~80% of seeds), a run resumed from a
 * mid-run checkpoint (and its RNG state) logging exactly the losses of the uninterrupted run, and
 * `failAtStep` naming the config key. The CLI runs (resume, Ctrl-C, FAILED) are in
 * test/experiments/.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { Rng } from '../../common/index.js';
import { initBackend } from '../../native/index.js';
import {
  type CheckpointTensor,
  MemoryLogger,
  TOY_DEFAULTS,
  type TrainCheckpoint,
  toyDatasets,
  trainToy,
} from '../../train/index.js';

before(async () => {
  await initBackend({ backend: 'wasm' });
});

const OPTIONS = { ...TOY_DEFAULTS, steps: 12, evalEvery: 4 };

/** A checkpoint as the runner keeps it: the trainer's plus the run RNG's state at save time. */
type Saved = TrainCheckpoint & { rngState: number };

async function run(seed: number, resume?: Saved) {
  const rng = new Rng(seed);
  if (resume) rng.setState(resume.rngState);
  const logger = new MemoryLogger();
  const saved: Saved[] = [];
  const data = toyDatasets(seed, TOY_DEFAULTS);
  const curves = await trainToy(OPTIONS, data, {
    seed,
    rng,
    logger,
    resume,
    checkpoints: {
      due: (step) => step % 4 === 0,
      save: async (c) => {
        saved.push({ ...c, rngState: rng.getState() });
      },
    },
  });
  return { logger, saved, curves, data };
}

/** Held-out MSE of y ≈ tanh(x·w1 + b1)·w2 + b2, in float64 from the checkpoint's float32 weights. */
function referenceMse(t: Record<string, CheckpointTensor>, x: Float32Array, y: Float32Array): number {
  const [w1, b1, w2, b2] = ['w1', 'b1', 'w2', 'b2'].map((k) => t[k].data);
  const H = w1.length;
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    let pred = b2[0];
    for (let j = 0; j < H; j++) pred += Math.tanh(x[i] * w1[j] + b1[j]) * w2[j];
    sum += (pred - y[i]) ** 2;
  }
  return sum / x.length;
}

test('trainToy: the last eval/loss equals a float64 MSE of the last checkpoint’s weights (rel 1e-5)', async () => {
  const seed = Date.now() % 100_000;
  console.log(`seed ${seed}`);
  const { logger, saved, data } = await run(seed);
  assert.deepEqual(
    saved.map((c) => c.step),
    [4, 8, 12],
    'checkpoints when due, never twice at the last step',
  );
  const last = saved[saved.length - 1];
  const evals = logger.points['eval/loss'];
  assert.deepEqual(
    evals.map(([step]) => step),
    [4, 8, 12],
  );
  const want = referenceMse(last.tensors, data.eval.x, data.eval.y);
  const got = evals[evals.length - 1][1];
  assert.ok(Math.abs(got - want) <= 1e-5 * want, `eval/loss ${got} vs reference ${want}`);
});

test('trainToy: resumed from its step-4 checkpoint, a run logs exactly the uninterrupted run’s losses', async () => {
  const seed = Date.now() % 100_000;
  console.log(`seed ${seed}`);
  const full = await run(seed);
  const resumed = await run(seed, full.saved[0]);
  const after4 = (l: MemoryLogger, key: string) => l.points[key].filter(([step]) => step > 4);
  assert.equal(resumed.logger.points['train/loss'][0][0], 5, 'resumes at step 5');
  for (const key of ['train/loss', 'eval/loss'])
    assert.deepEqual(resumed.logger.points[key], after4(full.logger, key), key);
});

test('trainToy: failAtStep throws, naming the config key', async () => {
  const data = toyDatasets(0, TOY_DEFAULTS);
  const ctx = { seed: 0, rng: new Rng(0), logger: new MemoryLogger(), optionsPath: 'toy' };
  await assert.rejects(
    trainToy({ ...OPTIONS, failAtStep: 3 }, data, ctx),
    /toy: failing at step 3 .*toy\.failAtStep/,
  );
  assert.equal(ctx.logger.points['train/loss'].length, 2, 'steps 1 and 2 ran');
});
