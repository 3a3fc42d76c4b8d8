// The wasm work-arounds against plain formulations: matmul's explicit-transpose gradient,
// the scatter-add gradient of embedding lookups, and checkpointing's recomputed gradient.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { initBackend } from '../../native/index.js';
import { checkpoint, embeddingLookup, matmul } from '../../ring/index.js';
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
