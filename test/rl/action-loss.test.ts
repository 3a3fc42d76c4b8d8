// The policies' action head and loss (rl/policies/action-loss.ts: one native call where the addon
// runs, else tfjs autodiff of the composition) against its definition in float64 —
// Σ_rows f_row · Σ_a (tanh(layerNorm(h) ∘ gain · w + b) − target)², value and the gradients of h,
// gain, w and b — on fresh random shapes, weights (zero rows included) and an upstream scale, on
// both paths; and a padding row with a NaN prediction on the native path.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { initBackend, nativeAddon, timeNativeCalls } from '../../native/index.js';
import { actionHead, actionLoss, HEAD_NORM_EPS } from '../../rl/policies/action-loss.js';
import { KERNEL_PATHS, withTfjs } from '../helpers/native.js';
import { relError } from '../helpers/reference.js';

const TOL = 1e-4;
before(async () => {
  await initBackend({ backend: 'wasm' });
});

/** The loss and its gradients in float64, for upstream gradient `scale`. */
function reference(
  x: Float32Array,
  gain: Float32Array,
  w: Float32Array,
  b: Float32Array,
  targets: Float32Array,
  factor: Float64Array,
  Dm: number,
  A: number,
  scale: number,
) {
  const N = factor.length;
  let loss = 0;
  const dx = new Float64Array(N * Dm);
  const dGain = new Float64Array(Dm);
  const dW = new Float64Array(Dm * A);
  const db = new Float64Array(A);
  for (let i = 0; i < N; i++) {
    if (factor[i] === 0) continue;
    const row = x.subarray(i * Dm, (i + 1) * Dm);
    const mean = row.reduce((s, v) => s + v, 0) / Dm;
    const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / Dm;
    const r = 1 / Math.sqrt(variance + HEAD_NORM_EPS);
    const n = Array.from(row, (v) => (v - mean) * r);
    const h = n.map((v, d) => v * gain[d]);
    const g = new Float64Array(A);
    for (let a = 0; a < A; a++) {
      let y = b[a];
      for (let d = 0; d < Dm; d++) y += h[d] * w[d * A + a];
      const p = Math.tanh(y);
      const diff = p - targets[i * A + a];
      loss += factor[i] * diff * diff;
      g[a] = scale * 2 * factor[i] * diff * (1 - p * p);
      db[a] += g[a];
    }
    const dn = new Float64Array(Dm);
    for (let d = 0; d < Dm; d++) {
      let dh = 0;
      for (let a = 0; a < A; a++) {
        dW[d * A + a] += h[d] * g[a];
        dh += g[a] * w[d * A + a];
      }
      dGain[d] += dh * n[d];
      dn[d] = dh * gain[d];
    }
    const mdn = dn.reduce((s, v) => s + v, 0) / Dm;
    const mdnn = dn.reduce((s, v, d) => s + v * n[d], 0) / Dm;
    for (let d = 0; d < Dm; d++) dx[i * Dm + d] = r * (dn[d] - mdn - n[d] * mdnn);
  }
  return { loss, dx, dGain, dW, db };
}

for (const [path, run] of KERNEL_PATHS)
  for (let trial = 0; trial < 4; trial++)
    test(`action head and loss equal the definition, ${path} (trial ${trial}${trial === 3 ? ', threaded size' : ''})`, () =>
      run(() => {
        const seed = (Math.random() * 2 ** 31) | 0;
        const rng = new Rng(seed);
        // rows across several of the addon's 128-row chunks, and fewer than one; the last trial
        // past 2^19 values of x, where the addon's call splits its chunks over threads
        const [B, T, Dm, A] =
          trial === 3
            ? [2, 4096 + rng.int(300), 64 + rng.int(8), 1 + rng.int(9)]
            : [1 + rng.int(3), 3 + rng.int(200), 4 + rng.int(70), 1 + rng.int(17)];
        const N = B * T;
        const x = rng.normalArray(N * Dm).map((v) => 2 * v + 0.5);
        const gain = rng.normalArray(Dm).map((v) => 1 + 0.3 * v);
        const w = rng.normalArray(Dm * A).map((v) => v / Math.sqrt(Dm));
        const b = rng.normalArray(A).map((v) => 0.2 * v);
        const targets = rng.normalArray(N * A).map((v) => Math.tanh(v));
        // padding tokens weigh 0; others 1 or a fraction
        const weights = Float32Array.from({ length: N }, () => [0, 1, 0.5 + rng.next()][rng.int(3)]);
        const denominator =
          Math.max(
            1,
            weights.reduce((s, v) => s + v, 0),
          ) * A;
        const scale = 0.5 + 2 * rng.next(); // the upstream gradient (loss · scale)
        const factor = Float64Array.from(Float32Array.from(weights, (v) => v / denominator));
        const ref = reference(x, gain, w, b, targets, factor, Dm, A, scale);

        const xt = tf.tensor3d(x, [B, T, Dm]);
        const head = { gain: tf.tensor1d(gain), w: tf.tensor2d(w, [Dm, A]), b: tf.tensor1d(b) };
        const before = tf.memory().numTensors;
        const calls: string[] = [];
        timeNativeCalls((name) => calls.push(name));
        const value = actionLoss(xt, head, targets, weights, denominator);
        assert.ok(relError([value.dataSync()[0]], [ref.loss]) < TOL, `seed ${seed}: loss`);
        value.dispose();
        const grads = tf.grads((xi: tf.Tensor, gi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
          tf.mul(
            actionLoss(
              xi,
              { gain: gi as tf.Tensor1D, w: wi as tf.Tensor2D, b: bi as tf.Tensor1D },
              targets,
              weights,
              denominator,
            ),
            scale,
          ),
        )([xt, head.gain, head.w, head.b]);
        timeNativeCalls(undefined);
        assert.deepEqual(grads[0].shape, [B, T, Dm]);
        const names = ['dx', 'dGain', 'dW', 'db'] as const;
        names.forEach((name, k) => {
          assert.ok(relError(grads[k].dataSync(), ref[name]) < TOL, `seed ${seed}: ${name}`);
        });
        tf.dispose(grads);
        // the path taken: one call for the value and one for value and gradients, natively
        const native = path === 'native' && nativeAddon() !== undefined;
        assert.equal(calls.filter((c) => c === 'actionLoss').length, native ? 2 : 0, `calls: ${calls}`);
        assert.equal(tf.memory().numTensors, before, `seed ${seed}: tensors left`);
        tf.dispose([xt, head.gain, head.w, head.b]);
      }));

test('the action head predicts tanh(layerNorm(h) ∘ gain · w + b) on both paths', () => {
  const rng = new Rng((Math.random() * 2 ** 31) | 0);
  const [N, Dm, A] = [37, 24, 5];
  const x = rng.normalArray(N * Dm);
  const gain = rng.normalArray(Dm);
  const w = rng.normalArray(Dm * A);
  const b = rng.normalArray(A);
  const ref = new Float64Array(N * A);
  for (let i = 0; i < N; i++) {
    const row = x.subarray(i * Dm, (i + 1) * Dm);
    const mean = row.reduce((s, v) => s + v, 0) / Dm;
    const r = 1 / Math.sqrt(row.reduce((s, v) => s + (v - mean) ** 2, 0) / Dm + HEAD_NORM_EPS);
    for (let a = 0; a < A; a++) {
      let y = b[a];
      for (let d = 0; d < Dm; d++) y += (row[d] - mean) * r * gain[d] * w[d * A + a];
      ref[i * A + a] = Math.tanh(y);
    }
  }
  const head = { gain: tf.tensor1d(gain), w: tf.tensor2d(w, [Dm, A]), b: tf.tensor1d(b) };
  const xt = tf.tensor2d(x, [N, Dm]);
  for (const run of [(f: () => void) => f(), withTfjs])
    run(() => {
      const p = actionHead(xt, head);
      assert.ok(relError(p.dataSync(), ref) < TOL);
      p.dispose();
    });
  tf.dispose([xt, head.gain, head.w, head.b]);
});

test('a padding row adds nothing to the native loss, even a NaN prediction', (t) => {
  if (!nativeAddon()) {
    t.skip('the native addon is not loaded');
    return;
  }
  const seed = (Math.random() * 2 ** 31) | 0;
  const rng = new Rng(seed);
  const [Dm, A] = [8, 3];
  const x = rng.normalArray(2 * Dm);
  x[Dm + 2] = Number.NaN; // row 1: padding, its prediction NaN
  const gain = rng.normalArray(Dm);
  const w = rng.normalArray(Dm * A);
  const b = rng.normalArray(A);
  const targets = rng.normalArray(2 * A).map(Math.tanh);
  const weights = Float32Array.of(1, 0);
  const head = { gain: tf.tensor1d(gain), w: tf.tensor2d(w, [Dm, A]), b: tf.tensor1d(b) };
  const xt = tf.tensor2d(x, [2, Dm]);
  const loss = actionLoss(xt, head, targets, weights, A);
  const grads = tf.grads((xi: tf.Tensor, wi: tf.Tensor) =>
    actionLoss(xi, { ...head, w: wi as tf.Tensor2D }, targets, weights, A),
  )([xt, head.w]);
  const ref = reference(x, gain, w, b, targets, Float64Array.of(1 / A, 0), Dm, A, 1);
  assert.ok(relError([loss.dataSync()[0]], [ref.loss]) < TOL, `seed ${seed}: loss`);
  const dx = grads[0].dataSync();
  assert.ok(dx.every(Number.isFinite), `seed ${seed}: dx is finite`);
  assert.ok(relError(dx.subarray(0, Dm), ref.dx.subarray(0, Dm)) < TOL, `seed ${seed}: dx`);
  assert.ok(relError(grads[1].dataSync(), ref.dW) < TOL, `seed ${seed}: dW (the padding row adds nothing)`);
  tf.dispose([loss, ...grads, xt, head.gain, head.w, head.b]);
});
