// The policies' token embedding (rl/policies/trajectory-transformer.ts modalityEmbeddings: on the
// native addon per token, else every modality in one tfjs product) against the per-type definition
// Σ_m [type = m]·(feat_m W_m + b_m) in float64, value and the gradients of every W_m and b_m, on
// fresh random widths, types (padding included: −1 and M) and features, on both paths.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { initBackend, nativeAddon, timeNativeCalls } from '../../native/index.js';
import { modalityEmbeddings } from '../../rl/policies/trajectory-transformer.js';
import { KERNEL_PATHS } from '../helpers/native.js';
import { relError } from '../helpers/reference.js';

const TOL = 1e-4;
before(async () => {
  await initBackend({ backend: 'wasm' });
});

for (const [path, run] of KERNEL_PATHS)
  for (let trial = 0; trial < 3; trial++)
    test(`modality embeddings equal the per-type sum, ${path} (trial ${trial})`, () =>
      run(() => {
        const seed = (Math.random() * 2 ** 31) | 0;
        const rng = new Rng(seed);
        const [B, T, Dm] = [1 + rng.int(3), 5 + rng.int(60), 8 + rng.int(40)];
        const widths = Array.from({ length: 2 + rng.int(3) }, () => 1 + rng.int(12));
        const F = Math.max(...widths) + rng.int(3);
        const N = B * T;
        const feats = rng.normalArray(N * F);
        // −1 and M: padding tokens (no modality)
        const types = Int32Array.from({ length: N }, () => rng.int(widths.length + 2) - 1);
        const W = widths.map((w) => rng.normalArray(w * Dm));
        const bias = widths.map(() => rng.normalArray(Dm));
        const R = rng.normalArray(N * Dm); // the upstream gradient: loss = Σ e ∘ R
        // float64 reference: value, dW_m = Σ_{n of type m} feat_nᵀ R_n, db_m = Σ_{n of type m} R_n
        const ref = new Float64Array(N * Dm);
        const dW = widths.map((w) => new Float64Array(w * Dm));
        const db = widths.map(() => new Float64Array(Dm));
        for (let n = 0; n < N; n++) {
          const m = types[n];
          if (m < 0 || m >= widths.length) continue;
          for (let d = 0; d < Dm; d++) {
            let s = bias[m][d];
            for (let k = 0; k < widths[m]; k++) s += feats[n * F + k] * W[m][k * Dm + d];
            ref[n * Dm + d] = s;
            db[m][d] += R[n * Dm + d];
            for (let k = 0; k < widths[m]; k++) dW[m][k * Dm + d] += feats[n * F + k] * R[n * Dm + d];
          }
        }
        const wt = widths.map((w, m) => tf.tensor2d(W[m], [w, Dm]));
        const bt = widths.map((_, m) => tf.tensor1d(bias[m]));
        const batch = { batch: B, length: T, featDim: F, feats, types };
        const before = tf.memory().numTensors;
        const calls: string[] = [];
        timeNativeCalls((name) => calls.push(name));
        const e = modalityEmbeddings(batch, widths, wt, bt);
        assert.deepEqual(e.shape, [N, Dm]);
        assert.ok(relError(e.dataSync(), ref) < TOL, `seed ${seed}: value`);
        const rt = tf.tensor2d(R, [N, Dm]);
        const grads = tf.grads((...ps: tf.Tensor[]) =>
          tf.sum(
            tf.mul(
              modalityEmbeddings(batch, widths, ps.slice(0, widths.length), ps.slice(widths.length)),
              rt,
            ),
          ),
        )([...wt, ...bt]);
        timeNativeCalls(undefined);
        widths.forEach((_, m) => {
          assert.ok(relError(grads[m].dataSync(), dW[m]) < TOL, `seed ${seed}: dW_${m}`);
          assert.ok(relError(grads[widths.length + m].dataSync(), db[m]) < TOL, `seed ${seed}: db_${m}`);
        });
        // the path taken: the addon's two calls natively (where it loads), none of them on tfjs
        const native = path === 'native' && nativeAddon() !== undefined;
        assert.equal(calls.filter((c) => c === 'modalityEmbed').length, native ? 2 : 0, `calls: ${calls}`);
        assert.equal(calls.filter((c) => c === 'modalityEmbedBackward').length, native ? 1 : 0);
        tf.dispose([e, rt, ...grads]);
        assert.equal(tf.memory().numTensors, before, `seed ${seed}: tensors left`);
        tf.dispose([...wt, ...bt]);
      }));
