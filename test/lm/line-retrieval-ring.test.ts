// Issue 17, Figure 3 in miniature: line retrieval trained on worker devices, one device (BPT) or
// the ring. The weighted head loss matches a plain reference on fresh random inputs; the devices'
// trainer optimises the main-thread trainer's objective (same first-step loss, same curve within
// float rounding), on one device and on the ring N=2; the training budget stops a run whose
// longest prompt does not fit, naming the option; and `exp run line-retrieval.yaml` trains on the
// ring as a user calls it.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { InputError, Rng } from '../../common/index.js';
import { FileStore } from '../../experiments/tracking/index.js';
import { headCrossEntropy } from '../../lm/head-loss.js';
import {
  encodeLineCase,
  IGNORE_INDEX,
  LINE_RETRIEVAL_DEFAULTS,
  type LineRetrievalOptions,
  lineWindow,
  trainLineRetrieval,
  trainLineRetrievalOnDevices,
} from '../../lm/index.js';
import { initBackend } from '../../native/index.js';
import { MemoryLogger, type TrainContext } from '../../train/index.js';
import { outcome, runExp, tempDir, testEnv } from '../experiments/util.js';

before(async () => {
  await initBackend({ backend: 'wasm' });
});

const seed = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000);

test(`headCrossEntropy with row weights = Σ w·(−log softmax)[target], value and gradients (seed ${seed})`, () => {
  const rng = new Rng(seed);
  const [N, Dm, V] = [37, 8, 29];
  const x = tf.tensor2d(rng.normalArray(N * Dm, 1), [N, Dm]);
  const w = tf.tensor2d(rng.normalArray(Dm * V, 0.5), [Dm, V]);
  const targets = Int32Array.from({ length: N }, () => (rng.next() < 0.2 ? IGNORE_INDEX : rng.int(V)));
  const weights = Float32Array.from({ length: N }, () => rng.next() * 2);
  // reference: plain autodiff over the whole logits; ignored rows weigh 0 whatever `weights` says
  const refWeight = Float32Array.from(weights, (v, i) => (targets[i] === IGNORE_INDEX ? 0 : v));
  const safe = Int32Array.from(targets, (t) => (t === IGNORE_INDEX ? 0 : t));
  const reference = (xi: tf.Tensor, wi: tf.Tensor) => {
    const logp = tf.logSoftmax(tf.matMul(xi as tf.Tensor2D, wi as tf.Tensor2D));
    const nll = tf.neg(tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d(safe, 'int32'), V)), 1));
    return tf.sum(tf.mul(nll, tf.tensor1d(refWeight))) as tf.Scalar;
  };
  const fused = (xi: tf.Tensor, wi: tf.Tensor) =>
    headCrossEntropy(xi, wi as tf.Tensor2D, targets, { denominator: 1, chunkRows: 5, rowWeights: weights });
  const [refValue, refGrads] = [reference(x, w).dataSync()[0], tf.grads(reference)([x, w])];
  const [value, grads] = [fused(x, w).dataSync()[0], tf.grads(fused)([x, w])];
  assert.ok(Math.abs(value - refValue) <= 1e-4 * Math.max(1, Math.abs(refValue)), `${value} vs ${refValue}`);
  grads.forEach((g, k) => {
    const a = g.dataSync();
    const b = refGrads[k].dataSync();
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    assert.ok(worst <= 1e-4, `gradient ${k === 0 ? 'x' : 'w'}: max |Δ| ${worst}`);
  });
  assert.throws(
    () => headCrossEntropy(x, w, targets, { denominator: 1, chunkRows: 5, rowWeights: weights.subarray(1) }),
    /rowWeights must hold 37/,
  );
});

test(`lineWindow weights: the answer targets share 1, the prompt's share otherTokenWeight (seed ${seed})`, () => {
  const rng = new Rng(seed);
  const cases = Array.from({ length: 3 }, () => encodeLineCase(rng, 1 + rng.int(5), 9));
  const T = Math.max(...cases.map((c) => c.ids.length)) + 7; // right padding
  const w = lineWindow(cases, T, 4);
  let counted = 0;
  let total = 0;
  w.targets.forEach((t, i) => {
    if (t === IGNORE_INDEX) assert.equal(w.weights?.[i], 0, `padding/ignored target ${i} weighs 0`);
    else counted++;
    total += w.weights?.[i] ?? 0;
  });
  assert.ok(counted > 0);
  assert.ok(Math.abs(total - 5) < 1e-5, `Σ weights = 1 + 4; got ${total}`);
});

describe('trainLineRetrievalOnDevices', () => {
  const o: LineRetrievalOptions = {
    ...LINE_RETRIEVAL_DEFAULTS,
    model: {
      ...LINE_RETRIEVAL_DEFAULTS.model,
      hiddenSize: 32,
      intermediateSize: 64,
      numHeads: 4,
      numKvHeads: 4,
    },
    trainLines: [1, 2, 3],
    curriculum: { startLines: 3, holdSteps: 0, fullSteps: 0 },
    steps: 3,
    batchSize: 4,
    evalEvery: 0,
    evalCases: 8,
    blockSize: 16,
  };
  const context = (): { ctx: TrainContext; logger: MemoryLogger } => {
    const logger = new MemoryLogger();
    return { ctx: { seed: 3, rng: new Rng(3), logger, backend: 'wasm' }, logger };
  };
  const losses = (l: MemoryLogger) => (l.points['train/loss'] ?? []).map(([, v]) => v);

  test('one device and the ring N=2 optimise the main-thread objective: the same losses within float rounding', async () => {
    const main = context();
    const trained = await trainLineRetrieval({ ...o, trainAttention: 'vanilla' }, main.ctx);
    trained.model.dispose();
    const one = context();
    // models name their variables (embed, …): one lives at a time, its weights kept as arrays
    const weightsOf = (t: { model: { variables(): tf.Variable[]; dispose(): void } }) => {
      const w = t.model.variables().map((v) => v.dataSync().slice());
      t.model.dispose();
      return w;
    };
    const wa = weightsOf(
      await trainLineRetrievalOnDevices({ ...o, trainAttention: 'blockwise', trainDevices: 1 }, one.ctx),
    );
    const ring = context();
    const wb = weightsOf(
      await trainLineRetrievalOnDevices({ ...o, trainAttention: 'ring', trainDevices: 2 }, ring.ctx),
    );
    const [m, x, y] = [losses(main.logger), losses(one.logger), losses(ring.logger)];
    assert.equal(m.length, 3);
    assert.equal(x.length, 3);
    assert.equal(y.length, 3);
    for (let i = 0; i < 3; i++) {
      // same init, same batches, same objective and optimizer: only the order of float sums differs
      assert.ok(Math.abs(x[i] - m[i]) <= 2e-4 * (i + 1), `step ${i + 1}: one device ${x[i]} vs main ${m[i]}`);
      assert.ok(Math.abs(y[i] - x[i]) <= 2e-4 * (i + 1), `step ${i + 1}: ring ${y[i]} vs one device ${x[i]}`);
    }
    assert.ok(x[2] < x[0], `the loss falls: ${x}`);
    // the returned models hold the devices' final weights
    let worst = 0;
    wa.forEach((p, i) => {
      const q = wb[i];
      for (let j = 0; j < p.length; j++) worst = Math.max(worst, Math.abs(p[j] - q[j]));
    });
    assert.ok(worst <= 1e-3, `final weights, one device vs ring: max |Δ| ${worst}`);
  });

  test('a longest prompt over trainMemoryMiB fails before training, naming the option; trainMemoryOn picks real memory or tensor bytes', async () => {
    const { ctx, logger } = context();
    await assert.rejects(
      trainLineRetrievalOnDevices(
        { ...o, trainAttention: 'blockwise', trainDevices: 1, trainMemoryMiB: 1 },
        { ...ctx, optionsPath: 'line-retrieval' },
      ),
      (e: unknown) =>
        e instanceof InputError &&
        /line-retrieval\.trainMemoryMiB/.test(e.message) &&
        /MiB per device/.test(e.message),
    );
    assert.equal(logger.points['train/loss'], undefined, 'no step ran');
    // trainMemoryOn: tensors bounds the step's peak tensor bytes instead of what the device holds
    const needOf = async (on: 'real' | 'tensors') => {
      const c = context();
      let message = '';
      await assert.rejects(
        trainLineRetrievalOnDevices(
          { ...o, trainAttention: 'blockwise', trainDevices: 1, trainMemoryMiB: 0.5, trainMemoryOn: on },
          { ...c.ctx, optionsPath: 'line-retrieval' },
        ),
        (e: unknown) => {
          message = e instanceof Error ? e.message : '';
          return e instanceof InputError;
        },
      );
      assert.match(message, on === 'real' ? /\(real memory\)/ : /\(tensor bytes\)/);
      return Number(/needs ([\d.]+) MiB/.exec(message)?.[1]);
    };
    const [real, tensors] = [await needOf('real'), await needOf('tensors')];
    assert.ok(tensors > 0 && tensors + 1 < real, `tensor bytes ${tensors} MiB vs real ${real} MiB`);
    const between = context();
    const trained = await trainLineRetrievalOnDevices(
      {
        ...o,
        trainAttention: 'blockwise',
        trainDevices: 1,
        trainMemoryMiB: tensors + 0.5,
        trainMemoryOn: 'tensors',
      },
      { ...between.ctx, optionsPath: 'line-retrieval' },
    );
    trained.model.dispose();
    assert.equal(
      losses(between.logger).length,
      o.steps,
      'a budget under real memory but over the tensors trains',
    );
    await assert.rejects(
      trainLineRetrievalOnDevices({ ...o, trainAttention: 'blockwise', trainDevices: 2 }, ctx),
      /trainDevices: blockwise trains on one device; got 2/,
    );
  });
});

test('exp run line-retrieval.yaml trains on the ring (trainAttention ring, trainDevices 2) as a user calls it', async () => {
  const work = tempDir('line-retrieval-ring');
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
        ...set('steps=2'),
        ...set('trainAttention=ring'),
        ...set('trainDevices=2'),
        ...set('trainMemoryMiB=512'),
        ...set('trainLines=[1,2]'),
        ...set('evalLines=[2]'),
        ...set('evalCases=4'),
        ...set('evalEvery=0'),
      ],
      { env: testEnv(work) },
    );
    assert.equal(r.code, 0, r.stderr);
    const { run_id: id, status } = outcome(r);
    assert.equal(status, 'FINISHED');
    const fs = new FileStore(store);
    const loss = await fs.getMetricHistory(id, 'train/loss');
    assert.deepEqual(
      loss.map((m) => m.step),
      [1, 2],
    );
    const run = await fs.getRun(id);
    const probe = Number(run.params['train.probe_mib_per_device']);
    assert.ok(probe > 0 && probe <= 512, `train.probe_mib_per_device ${probe}`);
    const bad = await runExp(
      [
        'run',
        'line-retrieval.yaml',
        '--tracking-uri',
        store,
        ...set('trainAttention=ring'),
        ...set('steps=1'),
      ],
      { env: testEnv(work) },
    );
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /trainDevices/);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
