// The fused AdamW step (native/optim.ts, issue 14) against train/optim.ts's tfjs kernels: same
// weights, moments and norms over several steps with weight decay, clipped and unclipped.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { InputError, Rng } from '../../common/index.js';
import { initBackend, nativeAddon } from '../../native/index.js';
import { nativeAdamW } from '../../native/optim.js';
import { AdamW } from '../../train/index.js';

before(async () => {
  await initBackend({ backend: 'wasm' });
});

const skip = () => (nativeAddon()?.adamw ? false : 'the native addon (with adamw) is not loaded');

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe('fused AdamW (native)', () => {
  test('matches the tfjs AdamW over several steps: weights, moments, norms (weight decay, clip)', {
    skip: skip(),
  }, () => {
    const rng = new Rng(7);
    // a matrix of several 16k-element tasks with a tail (300·300), a small one, a gain, a 3-D tensor
    // (one thread below 8M parameters: the tasks and their sums do not depend on the thread count)
    const shapes = [[300, 300], [37, 53], [53], [4, 5, 6]];
    const inits = shapes.map((s) => rng.normalArray(s.reduce((a, b) => a * b, 1)));
    const make = () => shapes.map((s, i) => tf.variable(tf.tensor(inits[i], s)));
    const fused = make();
    const plain = make();
    const o = { lr: 0.01, weightDecay: 0.1 };
    const a = new AdamW(fused, { ...o, native: true });
    const b = new AdamW(plain, { ...o, native: false });
    // step scales: norms far above and below maxNorm, so some steps clip and some do not
    for (const scale of [1, 0.001, 3, 0.0005, 1, 2]) {
      const gs = shapes.map((s) =>
        rng.normalArray(
          s.reduce((x, y) => x * y, 1),
          scale,
        ),
      );
      const ga = shapes.map((s, i) => tf.tensor(gs[i], s));
      const gb = shapes.map((s, i) => tf.tensor(gs[i], s));
      const na = a.clipAndApply(ga, 5, 0.01);
      const nb = b.clipAndApply(gb, 5, 0.01);
      assert.ok(Math.abs(na - nb) <= 1e-5 * nb, `norm ${na} vs ${nb}`);
    }
    assert.equal(a.step, b.step);
    const sa = a.state();
    const sb = b.state();
    fused.forEach((x, i) => {
      const dx = maxAbsDiff(x.dataSync(), plain[i].dataSync());
      assert.ok(dx <= 1e-6, `weights ${i}: max |Δ| ${dx}`);
      assert.ok(maxAbsDiff(sa.m[i], sb.m[i]) <= 1e-6, `m ${i}`);
      assert.ok(maxAbsDiff(sa.v[i], sb.v[i]) <= 1e-6, `v ${i}`);
    });
    // the weights moved (the comparison is not of two untouched copies)
    assert.ok(maxAbsDiff(fused[0].dataSync(), inits[0]) > 1e-3);
    a.dispose();
    b.dispose();
    tf.dispose([...fused, ...plain]);
  });

  test('writes only the variable: a tensor that shared its memory keeps its values', { skip: skip() }, () => {
    const t = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    const w = tf.variable(t); // shares t's buffer
    const opt = new AdamW([w], { lr: 0.1, weightDecay: 0.5 });
    const before = tf.memory().numTensors;
    opt.clipAndApply([tf.ones([2, 2])], 0);
    assert.deepEqual([...t.dataSync()], [1, 2, 3, 4]);
    assert.ok(maxAbsDiff(w.dataSync(), [1, 2, 3, 4]) > 0.05, 'the variable was updated');
    assert.equal(tf.memory().numTensors, before, 'the gradient was consumed, nothing leaked');
    opt.dispose();
    tf.dispose([t, w]);
  });

  test('products after a step use the new weights (XNNPACK caches packed weights by tensor)', {
    skip: skip(),
  }, () => {
    // a product this small runs on tfjs-wasm's XNNPACK kernel, which keeps each weight matrix
    // packed by tensor id: weights written in place were read stale from the second step on
    const rng = new Rng(3);
    const w = tf.variable(tf.tensor2d(rng.normalArray(8 * 4), [8, 4]));
    const x = tf.tensor2d(rng.normalArray(2 * 8), [2, 8]);
    const opt = new AdamW([w], { lr: 0.1, weightDecay: 0.1 });
    for (let step = 0; step < 3; step++) {
      tf.matMul(x, w).dispose(); // caches w's packed copy
      opt.clipAndApply([tf.tensor2d(rng.normalArray(8 * 4), [8, 4])], 1);
      const got = tf.matMul(x, w);
      const fresh = tf.tensor2d(w.dataSync() as Float32Array, [8, 4]);
      const want = tf.matMul(x, fresh);
      assert.ok(maxAbsDiff(got.dataSync(), want.dataSync()) <= 1e-6, `step ${step + 1}: stale weights`);
      tf.dispose([got, fresh, want]);
    }
    opt.dispose();
    tf.dispose([w, x]);
  });

  test('mismatched lists are an InputError naming the key', () => {
    const w = tf.variable(tf.zeros([2, 2]));
    assert.throws(
      () =>
        nativeAdamW({
          params: [w],
          grads: [],
          m: [w],
          v: [w],
          decay: [true],
          lr: 0.1,
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay: 0,
          step: 1,
          maxNorm: 0,
        }),
      (e: unknown) =>
        e instanceof InputError && /grads must have one entry per parameter \(1\); got 0/.test(e.message),
    );
    w.dispose();
  });
});
