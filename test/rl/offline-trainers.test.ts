// rl/offline's trainers called as a script would (issue 13): typed options from their DEFAULTS, a
// MemoryLogger, checkpoints kept in memory through the checkpoint codec. A run resumed from a
// mid-run checkpoint logs the same metrics, bit for bit, as the uninterrupted run (BC on this
// thread, DT on one ring device); bad options fail before training, naming the option.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { InputError, Rng } from '../../common/index.js';
import { boxSpace, openDataset, type TrajectoryDataset, writeEpisodes } from '../../datasets/index.js';
import { make } from '../../rl/envs/index.js';
import {
  AT_DEFAULTS,
  BC_DEFAULTS,
  decodeOfflineCheckpoint,
  DT_DEFAULTS,
  encodeOfflineCheckpoint,
  type OfflineCheckpoint,
  type OfflineData,
  type OfflineHooks,
  type OfflineResult,
  offlineData,
  trainAt,
  trainBc,
  trainDt,
} from '../../rl/index.js';
import { initBackend } from '../../native/index.js';
import { MemoryLogger } from '../../train/index.js';

const seed = Number(process.env.TEST_SEED ?? Date.now() % 100_000);
console.log(`offline trainers: seed ${seed} (TEST_SEED=${seed} repeats it)`);

let dir: string;
let ds: TrajectoryDataset;
let data: OfflineData;

/** Pendulum episodes acted by a fixed noisy policy (12 of at most 30 steps). */
function episodes(n: number, s: number) {
  const rng = new Rng(s);
  const env = make<Float64Array, Float32Array>('Pendulum-v1', {}, { maxEpisodeSteps: 30 });
  const out = [];
  for (let e = 0; e < n; e++) {
    let [o] = env.reset({ seed: s + e });
    const ep = {
      observations: [...o],
      actions: [] as number[],
      rewards: [] as number[],
      terminations: [] as number[],
      truncations: [] as number[],
    };
    for (;;) {
      const a = Float32Array.of(
        Math.max(-2, Math.min(2, Math.tanh(1.5 * o[0] - 0.1 * o[2]) + 0.3 * rng.normal())),
      );
      const [next, r, te, tr] = env.step(a);
      ep.observations.push(...next);
      ep.actions.push(a[0]);
      ep.rewards.push(r);
      ep.terminations.push(te ? 1 : 0);
      ep.truncations.push(tr ? 1 : 0);
      o = next;
      if (te || tr) break;
    }
    out.push(ep);
  }
  env.close();
  return out;
}

before(async () => {
  await initBackend({ backend: 'wasm', notice: false });
  dir = mkdtempSync(join(tmpdir(), 'offline-trainers-'));
  const file = join(dir, 'pendulum.arrow');
  writeEpisodes(
    file,
    {
      datasetId: 'test/pendulum-noisy-v0',
      observationSpace: boxSpace(3),
      actionSpace: boxSpace(1, 'float32', -2, 2),
      envId: 'Pendulum-v1',
      source: 'test',
    },
    episodes(12, seed),
  );
  ds = openDataset(file);
  data = offlineData(ds, 'Pendulum-v1');
});

after(() => {
  ds.close();
  rmSync(dir, { recursive: true, force: true });
});

const small = {
  env: 'Pendulum-v1',
  seed,
  train: { ...AT_DEFAULTS.train, steps: 8, batchSize: 2, lr: 1e-3, warmup: 2, evalEvery: 4 },
  eval: { ...AT_DEFAULTS.eval, episodes: 1, maxEpisodeSteps: 10 },
};
const model = { ...AT_DEFAULTS.model, dModel: 16, layers: 1, heads: 2, blockSize: 16, maxTimestep: 64 };

type Trainer = (hooks: OfflineHooks) => Promise<OfflineResult>;

/** Runs `train` once through and once resumed from its step-4 checkpoint; both runs' logs and results. */
async function runTwice(train: Trainer) {
  const whole = new MemoryLogger();
  const saved = new Map<number, ReturnType<typeof encodeOfflineCheckpoint>>();
  const checkpoints = {
    due: (step: number) => step % 4 === 0,
    save: async (k: OfflineCheckpoint) => {
      // through the codec and a JSON round trip, as a checkpoint store keeps it
      const enc = encodeOfflineCheckpoint(k);
      saved.set(k.step, { ...enc, state: JSON.parse(JSON.stringify(enc.state)) });
    },
  };
  const full = await train({ logger: whole, checkpoints });
  const k4 = saved.get(4);
  assert.ok(k4, `checkpoints saved at steps ${[...saved.keys()].join(', ')}; expected 4`);
  const resumedLog = new MemoryLogger();
  const resume = decodeOfflineCheckpoint(k4.step, k4.state, k4.tensors);
  const resumed = await train({
    logger: resumedLog,
    checkpoints: { due: () => false, save: async () => {} },
    resume,
  });
  return { whole, resumedLog, full, resumed };
}

/** Every metric point after step 4 of the uninterrupted run, equal in the resumed run. */
function assertSameAfter4(whole: MemoryLogger, resumed: MemoryLogger, keys: string[]): void {
  for (const key of keys) {
    const later = (whole.points[key] ?? []).filter(([step]) => step > 4);
    assert.ok(later.length > 0, `${key}: no points after step 4`);
    assert.deepEqual(resumed.points[key], later, `${key} after resume`);
  }
}

describe('rl/offline trainers as a library', () => {
  test('BC: finite losses, evaluations at 4 and 8, resume from step 4 gives the same metrics', async () => {
    const train: Trainer = (hooks) =>
      trainBc(data, { ...BC_DEFAULTS, ...small, hidden: 16, batchSize: 32 }, hooks);
    const { whole, resumedLog, full, resumed } = await runTwice(train);
    const losses = whole.points['train/loss'].map(([, v]) => v);
    assert.equal(losses.length, 8);
    assert.ok(losses.every(Number.isFinite), `train/loss ${losses.join(' ')}`);
    assert.deepEqual(
      full.evals.map((e) => e.step),
      [4, 8],
    );
    assert.ok(full.policy && full.policy.weights.length === 6, 'BC: 3 layers × (w, b)');
    assertSameAfter4(whole, resumedLog, ['train/loss', 'train/lr', 'eval/return_mean']);
    assert.deepEqual(resumed.evals, full.evals, 'the resumed run keeps the evaluation before the checkpoint');
    assert.deepEqual(resumed.policy?.weights, full.policy.weights);
  });

  test('DT blockwise on one device: resume from step 4 gives the same metrics and final weights', async () => {
    const train: Trainer = (hooks) =>
      trainDt(
        data,
        { ...DT_DEFAULTS, ...small, returnScale: 100, model, context: 4 },
        { ...hooks, backend: 'wasm' },
      );
    const { whole, resumedLog, full, resumed } = await runTwice(train);
    assert.equal(whole.points['train/loss'].length, 8);
    assertSameAfter4(whole, resumedLog, ['train/loss', 'train/lr', 'train/grad_norm', 'eval/return_mean']);
    assert.ok(full.policy && resumed.policy);
    assert.equal(full.policy.target, data.bestReturn, 'target 0 → the dataset’s best return');
    assert.deepEqual(resumed.policy.weights, full.policy.weights);
  });

  test('AT with blockwise attention on 2 devices is refused before training, naming model.devices', async () => {
    const logger = new MemoryLogger();
    await assert.rejects(
      trainAt(data, { ...AT_DEFAULTS, ...small, model: { ...model, devices: 2 } }, { logger }),
      (err: Error) =>
        err instanceof InputError && /model\.devices: blockwise runs on one device; got 2/.test(err.message),
    );
    assert.deepEqual(logger.points, {}, 'nothing logged');
  });

  // Options from a script meet no schema: each trainer checks them before anything is built.
  for (const [name, run, says] of [
    [
      'bc train.steps=0',
      () =>
        trainBc(
          data,
          { ...BC_DEFAULTS, ...small, train: { ...small.train, steps: 0 } },
          { logger: new MemoryLogger() },
        ),
      /^bc trainer: train\.steps: expected an integer ≥ 1; got 0$/,
    ],
    [
      'bc topPercent=-5',
      () => trainBc(data, { ...BC_DEFAULTS, ...small, topPercent: -5 }, { logger: new MemoryLogger() }),
      /^bc trainer: topPercent: expected a number > 0; got -5$/,
    ],
    [
      'dt context=2.5',
      () => trainDt(data, { ...DT_DEFAULTS, ...small, model, context: 2.5 }, { logger: new MemoryLogger() }),
      /^dt trainer: context: expected an integer ≥ 1; got 2\.5$/,
    ],
    [
      'at model.dModel=NaN',
      () =>
        trainAt(
          data,
          { ...AT_DEFAULTS, ...small, model: { ...model, dModel: Number.NaN } },
          { logger: new MemoryLogger() },
        ),
      /^at trainer: model\.dModel: expected an integer ≥ 1; got NaN$/,
    ],
    [
      'at eval.targetReturn=Infinity',
      () =>
        trainAt(
          data,
          {
            ...AT_DEFAULTS,
            ...small,
            model,
            eval: { ...small.eval, targetReturn: Number.POSITIVE_INFINITY },
          },
          { logger: new MemoryLogger() },
        ),
      /^at trainer: eval\.targetReturn: expected a finite number; got Infinity$/,
    ],
  ] as const) {
    test(`bad option ${name}: InputError naming it`, async () => {
      await assert.rejects(run(), (err: Error) => err instanceof InputError && says.test(err.message));
    });
  }

  test('checkpoint codec: tensors named w<i>/m<i>/v<i> (before rl/offline) load, with the legacy generator state', () => {
    const f = (xs: number[]) => ({ data: Float32Array.from(xs) });
    const k = decodeOfflineCheckpoint(
      12,
      { optStep: 12, evals: [{ step: 10, score: 1.5 }] },
      { w0: f([1, 2]), w1: f([3]), m0: f([0.1, 0.2]), m1: f([0.3]), v0: f([4, 5]), v1: f([6]) },
      777,
    );
    assert.deepEqual(
      k.training.weights.map((w) => Array.from(w)),
      [[1, 2], [3]],
    );
    assert.equal(k.training.optimizer.step, 12);
    assert.equal(k.samplerRng, 777);
    assert.deepEqual(k.evals, [{ step: 10, score: 1.5 }]);
    assert.throws(() => decodeOfflineCheckpoint(3, {}, {}), /state\.optStep is missing/);
  });
});
