// AdamW against a plain float64 implementation of Loshchilov & Hutter's update; clipping and
// the learning-rate schedule against their definitions.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { initBackend } from '../../native/index.js';
import { AdamW, clipByGlobalNorm, warmupCosine } from '../../train/index.js';
import { relError } from '../helpers/reference.js';

before(async () => {
  await initBackend({ backend: 'wasm' });
});

describe('AdamW', () => {
  test('holds its two moments once, and frees them on dispose', () => {
    const w = tf.variable(tf.zeros([5, 7]));
    const start = tf.memory();
    const opt = new AdamW([w], { lr: 0.01 });
    // two moments of 35 float32 each: a leaked initial tensor shows as 4 tensors and 560 bytes
    assert.equal(tf.memory().numTensors - start.numTensors, 2);
    assert.equal(tf.memory().numBytes - start.numBytes, 2 * 35 * 4);
    opt.dispose();
    assert.equal(tf.memory().numTensors, start.numTensors);
    assert.equal(tf.memory().numBytes, start.numBytes);
    w.dispose();
  });

  test('matches the reference update over several steps; state round-trips', () => {
    const rng = new Rng((Math.random() * 2 ** 31) | 0);
    const n = 12;
    const init = rng.normalArray(n);
    const w = tf.variable(tf.tensor2d(init, [3, 4]));
    const gain = tf.variable(tf.tensor1d(init.slice(0, 4)));
    const opt = new AdamW([w, gain], { lr: 0.01, weightDecay: 0.1 });
    const ref = Float64Array.from(init);
    const refGain = Float64Array.from(init.slice(0, 4));
    const m = new Float64Array(n);
    const v = new Float64Array(n);
    const mg = new Float64Array(4);
    const vg = new Float64Array(4);
    const update = (
      x: Float64Array,
      g: Float32Array,
      mm: Float64Array,
      vv: Float64Array,
      t: number,
      decay: boolean,
    ) => {
      for (let i = 0; i < x.length; i++) {
        mm[i] = 0.9 * mm[i] + 0.1 * g[i];
        vv[i] = 0.999 * vv[i] + 0.001 * g[i] ** 2;
        const u = mm[i] / (1 - 0.9 ** t) / (Math.sqrt(vv[i] / (1 - 0.999 ** t)) + 1e-8);
        x[i] = (decay ? x[i] * (1 - 0.01 * 0.1) : x[i]) - 0.01 * u;
      }
    };
    for (let t = 1; t <= 5; t++) {
      const g = rng.normalArray(n);
      const gg = rng.normalArray(4);
      opt.apply([tf.tensor2d(g, [3, 4]), tf.tensor1d(gg)]);
      update(ref, g, m, v, t, true);
      update(refGain, gg, mg, vg, t, false); // 1-D gains do not decay
    }
    assert.ok(relError(w.dataSync(), ref) < 1e-6);
    assert.ok(relError(gain.dataSync(), refGain) < 1e-6);
    const s = opt.state();
    const other = new AdamW([tf.variable(tf.zeros([3, 4])), tf.variable(tf.zeros([4]))], { lr: 0.01 });
    other.load(s);
    assert.equal(other.state().step, 5);
    assert.deepEqual(Array.from(other.state().m[0]), Array.from(s.m[0]));
  });

  test('global-norm clipping scales every gradient by the same factor', () => {
    const a = tf.tensor1d([3, 0]);
    const b = tf.tensor1d([0, 4]);
    const { grads, norm } = clipByGlobalNorm([a, b], 1);
    assert.ok(Math.abs(norm - 5) < 1e-6);
    assert.ok(relError(grads[0].dataSync(), [0.6, 0]) < 1e-5);
    assert.ok(relError(grads[1].dataSync(), [0, 0.8]) < 1e-5);
    const kept = clipByGlobalNorm([tf.tensor1d([0.1])], 1);
    assert.ok(Math.abs(kept.norm - 0.1) < 1e-6);
  });

  test('warmup then cosine', () => {
    const o = { lr: 1, warmup: 10, total: 110, minLr: 0.1 };
    assert.ok(Math.abs(warmupCosine(0, o) - 0.1) < 1e-12);
    assert.ok(Math.abs(warmupCosine(9, o) - 1) < 1e-12);
    assert.ok(Math.abs(warmupCosine(10, o) - 1) < 1e-12);
    assert.ok(Math.abs(warmupCosine(60, o) - 0.55) < 1e-12);
    assert.ok(Math.abs(warmupCosine(110, o) - 0.1) < 1e-12);
    assert.equal(warmupCosine(500, { lr: 2, warmup: 0, total: 0 }), 2);
  });
});
