// The wasm work-arounds against plain formulations: matmul's explicit-transpose gradient,
// the scatter-add gradient of embedding lookups, and checkpointing's recomputed gradient.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { initBackend } from '../../native/index.js';
import { checkpoint, constantLinear, embeddingLookup, matmul } from '../../ring/index.js';
import { relError } from '../helpers/reference.js';

before(async () => {
  await initBackend({ backend: 'wasm' });
});

describe('ops', () => {
  test('matmul gradients equal tfjs matMul gradients', () => {
    const rng = new Rng((Math.random() * 2 ** 31) | 0);
    const a = tf.tensor2d(rng.normalArray(5 * 7), [5, 7]);
    const b = tf.tensor2d(rng.normalArray(7 * 3), [7, 3]);
    const dy = tf.tensor2d(rng.normalArray(5 * 3), [5, 3]);
    const ours = tf.grads((x: tf.Tensor, y: tf.Tensor) => matmul(x as tf.Tensor2D, y as tf.Tensor2D))(
      [a, b],
      dy,
    );
    const ref = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D))(
      [a, b],
      dy,
    );
    ours.forEach((g, i) => {
      assert.ok(relError(g.dataSync(), ref[i].dataSync()) < 1e-6);
    });
  });

  test("constantLinear: the product and w's gradient of matmul, on native-sized and small shapes; nothing leaks", () => {
    const seed = (Math.random() * 2 ** 31) | 0;
    const rng = new Rng(seed);
    for (const [N, K, M] of [
      [5, 7, 3],
      [300, 119, 64],
    ]) {
      const x = tf.tensor2d(rng.normalArray(N * K), [N, K]);
      const w = tf.tensor2d(rng.normalArray(K * M), [K, M]);
      const dy = tf.tensor2d(rng.normalArray(N * M), [N, M]);
      const before = tf.memory().numTensors;
      const ours = tf.valueAndGrads((wIn: tf.Tensor) => constantLinear(x, wIn as tf.Tensor2D))([w], dy);
      const ref = tf.valueAndGrads((wIn: tf.Tensor) => tf.matMul(x, wIn as tf.Tensor2D))([w], dy);
      assert.ok(
        relError(ours.value.dataSync(), ref.value.dataSync()) < 1e-6,
        `seed ${seed} (${N},${K},${M}): value`,
      );
      assert.ok(relError(ours.grads[0].dataSync(), ref.grads[0].dataSync()) < 1e-6, `seed ${seed}: dw`);
      tf.dispose([ours.value, ...ours.grads, ref.value, ...ref.grads]);
      assert.equal(tf.memory().numTensors, before, `seed ${seed}: tensors left after the backward`);
      tf.dispose([x, w, dy]);
    }
  });

  test('embedding lookup: rows gathered, gradient scatter-added (repeated ids accumulate)', () => {
    const rng = new Rng((Math.random() * 2 ** 31) | 0);
    const [V, D] = [6, 4];
    const table = tf.tensor2d(rng.normalArray(V * D), [V, D]);
    const ids = tf.tensor2d([0, 3, 3, 5, 1, 3], [2, 3], 'int32');
    const dy = tf.tensor3d(rng.normalArray(2 * 3 * D), [2, 3, D]);
    const out = embeddingLookup(table, ids);
    assert.deepEqual(out.shape, [2, 3, D]);
    // plain formulation: one-hot (N, V) @ table (V, D), whose gradient is oneHotᵀ @ dy
    const oneHot = tf.oneHot(tf.reshape(ids, [-1]) as tf.Tensor1D, V);
    const ref = tf.reshape(tf.matMul(oneHot, table), [2, 3, D]);
    assert.ok(relError(out.dataSync(), ref.dataSync()) < 1e-6);
    const [g] = tf.grads((t: tf.Tensor) => embeddingLookup(t as tf.Tensor2D, ids))([table], dy);
    const gRef = tf.matMul(oneHot, tf.reshape(dy, [6, D]), true, false);
    assert.ok(relError(g.dataSync(), gRef.dataSync()) < 1e-6);
  });

  test('checkpoint recomputes the same gradients', () => {
    const rng = new Rng((Math.random() * 2 ** 31) | 0);
    const x = tf.tensor2d(rng.normalArray(4 * 4), [4, 4]);
    const w = tf.tensor2d(rng.normalArray(4 * 4), [4, 4]);
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.tanh(matmul(tf.sin(a) as tf.Tensor2D, b as tf.Tensor2D));
    const direct = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(f(a, b))))([x, w]);
    const ckpt = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(checkpoint(f, [a, b]))))([x, w]);
    direct.forEach((g, i) => {
      assert.ok(relError(ckpt[i].dataSync(), g.dataSync()) < 1e-6);
    });
  });
});

describe('backward memory (issue 14)', () => {
  // 8 checkpointed layers over a (1, T, D) activation: tfjs keeps every node's output gradient
  // and saved tensors to the end of the backward pass; releaseAfterBackward frees each once its
  // layer is done, so the peak is the forward's saved inputs plus a few, not twice that
  const [T, D, L] = [2048, 64, 8];
  const size = T * D * 4;
  const layer = (x: tf.Tensor, g: tf.Tensor) => tf.tanh(tf.mul(x, g));
  test('a chain of checkpoints releases each layer’s gradient and saved input; the caller’s dy survives', async () => {
    const rng = new Rng(5);
    const x = tf.tensor3d(rng.normalArray(T * D), [1, T, D]);
    const gains = Array.from({ length: L }, () => tf.tensor1d(rng.normalArray(D, 0.5)));
    const dy = tf.tensor3d(rng.normalArray(T * D), [1, T, D]);
    const f = (xx: tf.Tensor) => gains.reduce((h, g) => checkpoint(layer, [h, g]), xx);
    const before = tf.memory().numTensors;
    const profile = await tf.profile(() => {
      const [gx] = tf.grads(f)([x], dy);
      gx.dispose();
    });
    assert.equal(tf.memory().numTensors, before, 'no tensor outlives the step');
    // measured 19 activations of (1, T, D): the 8 layers' saved inputs, the caller's x and dy, the
    // output y (alive until tf.grads returns), the gradient flowing and one layer's recomputation;
    // without the release, 25 (every layer's output gradient and saved input kept to the end)
    assert.ok(
      profile.peakBytes <= (L + 12) * size,
      `peak ${(profile.peakBytes / size).toFixed(1)} activations of (1, T, D) > ${L + 12}`,
    );
    // the caller's dy is not the pass's to free: a second pass with it runs and agrees
    const [g1] = tf.grads(f)([x], dy);
    const [g2] = tf.grads(f)([x], dy);
    assert.deepEqual(g1.dataSync(), g2.dataSync());
    tf.dispose([x, dy, g1, g2, ...gains]);
  });
});
