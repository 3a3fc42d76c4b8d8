// The fused, chunked LM head + cross-entropy (lm/head-loss.ts) against a float64 reference and
// against the unfused tfjs path (linear head, logSoftmax, one-hot), value and both gradients, on
// fresh random inputs: ignored targets, explicit denominators, chunks of 1 row, uneven chunks, one
// chunk; on the native addon (loss and gradients in one pass) and on the tfjs chunks; and its
// memory: peak tensor bytes of a step no longer grow with T·V.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { headCrossEntropy } from '../../lm/head-loss.js';
import { maskedCrossEntropy } from '../../lm/index.js';
import { initBackend, nativeAddon, timeNativeCalls, withPeakBytes } from '../../native/index.js';
import { linear } from '../../ring/index.js';
import { withTfjs } from '../helpers/native.js';
import { relError } from '../helpers/reference.js';

const TOL = 1e-4;
before(async () => {
  await initBackend({ backend: 'wasm' });
});

/** Float64: Σ counted −log softmax(x·w)[t] / denom, and its gradients. */
function reference(
  x: Float32Array,
  w: Float32Array,
  t: Int32Array,
  Dm: number,
  V: number,
  denom: number,
  rowWeights?: Float32Array,
) {
  const N = t.length;
  const dx = new Float64Array(N * Dm);
  const dw = new Float64Array(Dm * V);
  let loss = 0;
  for (let i = 0; i < N; i++) {
    if (t[i] === -100) continue;
    const wi = rowWeights ? rowWeights[i] : 1;
    const z = new Float64Array(V);
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let d = 0; d < Dm; d++) s += x[i * Dm + d] * w[d * V + v];
      z[v] = s;
    }
    const m = Math.max(...z);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(z[v] - m);
    const lse = m + Math.log(sum);
    loss += (wi * (lse - z[t[i]])) / denom;
    for (let v = 0; v < V; v++) {
      const g = (wi * (Math.exp(z[v] - lse) - (v === t[i] ? 1 : 0))) / denom;
      for (let d = 0; d < Dm; d++) {
        dx[i * Dm + d] += g * w[d * V + v];
        dw[d * V + v] += g * x[i * Dm + d];
      }
    }
  }
  return { loss, dx, dw };
}

/** (R, C) row-major → (C, R). */
function transposeOf(a: Float64Array, R: number, C: number): Float64Array {
  const out = new Float64Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[c * R + r] = a[r * C + c];
  return out;
}

const cases = [
  { B: 2, T: 9, Dm: 8, V: 97, chunkRows: 1, denominator: undefined, weighted: false, transposed: false },
  { B: 2, T: 9, Dm: 8, V: 97, chunkRows: 7, denominator: 40, weighted: true, transposed: true },
  {
    B: 1,
    T: 13,
    Dm: 16,
    V: 301,
    chunkRows: undefined,
    denominator: undefined,
    weighted: false,
    transposed: false,
  },
  { B: 3, T: 5, Dm: 4, V: 1000, chunkRows: 4, denominator: 2.5, weighted: false, transposed: true },
  // several of the addon's default chunks (≥ 16 rows, one per thread), V not a multiple of its 16-lane exp
  {
    B: 2,
    T: 41,
    Dm: 24,
    V: 203,
    chunkRows: undefined,
    denominator: undefined,
    weighted: true,
    transposed: false,
  },
  {
    B: 2,
    T: 41,
    Dm: 24,
    V: 203,
    chunkRows: undefined,
    denominator: undefined,
    weighted: false,
    transposed: true,
  },
];
for (const c of cases)
  test(`B=${c.B} T=${c.T} Dm=${c.Dm} V=${c.V} chunk=${c.chunkRows ?? 'auto'} denominator=${c.denominator ?? 'count'}${c.weighted ? ' row weights' : ''}${c.transposed ? ' w (V, Dm)' : ''}`, () => {
    const seed = (Math.random() * 2 ** 31) | 0;
    const rng = new Rng(seed);
    const N = c.B * c.T;
    const x = rng.normalArray(N * c.Dm);
    const w = rng.normalArray(c.Dm * c.V, 0.5);
    const targets = Int32Array.from({ length: N }, () => (rng.next() < 0.3 ? -100 : rng.int(c.V)));
    targets[0] = rng.int(c.V); // at least one counted
    const rowWeights = c.weighted ? Float32Array.from({ length: N }, () => rng.next() * 2) : undefined;
    const counted = targets.filter((t) => t !== -100).length;
    const ref = reference(x, w, targets, c.Dm, c.V, c.denominator ?? counted, rowWeights);
    const xt = tf.tensor3d(x, [c.B, c.T, c.Dm]);
    // transposed: the same weights as a tied embedding (V, Dm), its gradient in that layout
    const wt = c.transposed
      ? tf.tidy(() => tf.transpose(tf.tensor2d(w, [c.Dm, c.V])))
      : tf.tensor2d(w, [c.Dm, c.V]);
    const refDw = c.transposed ? transposeOf(ref.dw, c.Dm, c.V) : ref.dw;
    const opts = { denominator: c.denominator, chunkRows: c.chunkRows, rowWeights, transposed: c.transposed };
    // an upstream gradient ≠ 1: the native path scales the gradients it computed in the forward
    const upstream = 0.5 + rng.next();
    const fused = (a: tf.Tensor, b: tf.Tensor) =>
      tf.mul(headCrossEntropy(a, b as tf.Tensor2D, targets, opts), upstream);
    const plain = (a: tf.Tensor, b: tf.Tensor) => {
      if (rowWeights) throw new Error('unused');
      return tf.mul(
        maskedCrossEntropy(
          linear(a, (c.transposed ? tf.transpose(b) : b) as tf.Tensor2D),
          targets,
          c.denominator,
        ),
        upstream,
      );
    };
    const runs: [string, () => [tf.Scalar, tf.Tensor[]]][] = [
      ['fused (native where it loads)', () => grads(fused)],
      ['fused on tfjs', () => withTfjs(() => grads(fused))],
      ...(rowWeights
        ? []
        : [['unfused tfjs', () => grads(plain)] as [string, () => [tf.Scalar, tf.Tensor[]]]]),
    ];
    function grads(f: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor): [tf.Scalar, tf.Tensor[]] {
      const { value, grads: g } = tf.valueAndGrads(f as (...a: tf.Tensor[]) => tf.Scalar)([xt, wt]);
      return [value, g];
    }
    for (const [name, run] of runs) {
      const [value, g] = run();
      const e = Math.abs(value.dataSync()[0] - upstream * ref.loss) / Math.abs(upstream * ref.loss);
      assert.ok(e < TOL, `seed ${seed} ${name}: loss ${value.dataSync()[0]} vs ${upstream * ref.loss}`);
      const ex = relError(
        g[0].dataSync(),
        ref.dx.map((v) => v * upstream),
      );
      const ew = relError(
        g[1].dataSync(),
        refDw.map((v) => v * upstream),
      );
      assert.ok(ex < TOL && ew < TOL, `seed ${seed} ${name}: dx rel. error ${ex}, dw ${ew}`);
      tf.dispose([value, ...g]);
    }
    // the loss alone (no gradient being taken): the native path computes no gradient then
    const alone = headCrossEntropy(xt, wt, targets, opts);
    const ea = Math.abs(alone.dataSync()[0] - ref.loss) / Math.abs(ref.loss);
    assert.ok(ea < TOL, `seed ${seed}: loss without a gradient ${alone.dataSync()[0]} vs ${ref.loss}`);
    tf.dispose([alone, xt, wt]);
  });

test('the native head loss runs where the addon loads', (t) => {
  if (!nativeAddon()?.headLoss) return t.skip('native addon not built');
  const rng = new Rng(3);
  const x = tf.tensor2d(rng.normalArray(40 * 8), [40, 8]);
  const w = tf.tensor2d(rng.normalArray(8 * 50), [8, 50]);
  const targets = Int32Array.from({ length: 40 }, () => rng.int(50));
  const calls: string[] = [];
  timeNativeCalls((name) => calls.push(name));
  try {
    headCrossEntropy(x, w, targets).dispose();
    const [g] = tf.grads((a: tf.Tensor) => headCrossEntropy(a, w, targets))([x]);
    g.dispose();
  } finally {
    timeNativeCalls(undefined);
  }
  assert.deepEqual(calls, ['headLoss', 'headLoss']);
  tf.dispose([x, w]);
});

test('targets outside the vocabulary are refused, naming the index', () => {
  const x = tf.zeros([2, 4]);
  const w = tf.zeros([4, 10]) as tf.Tensor2D;
  assert.throws(
    () => headCrossEntropy(x, w, Int32Array.from([3, 10])),
    /target 10 at 1 is outside \[0, 10\)/,
  );
  tf.dispose([x, w]);
});

test('memory: a step keeps no (T, V) logits (peak bytes at V=32000, T=512 under 1/4 of the unfused path)', async () => {
  const [T, Dm, V] = [512, 64, 32000];
  const rng = new Rng(1);
  const x = tf.tensor2d(rng.normalArray(T * Dm), [T, Dm]);
  const w = tf.variable(tf.tensor2d(rng.normalArray(Dm * V, 0.02), [Dm, V]));
  const targets = Int32Array.from({ length: T }, () => rng.int(V));
  const peak = async (f: () => tf.Scalar) =>
    (
      await withPeakBytes(() => {
        const { value, grads } = tf.variableGrads(f, [w]);
        tf.dispose([value, ...Object.values(grads)]);
        return null;
      }, true)
    ).peakBytes;
  const fused = await peak(() => headCrossEntropy(x, w, targets));
  const plain = await peak(() => maskedCrossEntropy(linear(x, w), targets));
  const logitsBytes = T * V * 4;
  assert.ok(fused < plain / 4, `fused peak ${fused} B vs unfused ${plain} B`);
  // the gradient of w (Dm·V) and a chunk's few (rows, V) temporaries, not T·V
  assert.ok(fused < logitsBytes, `fused peak ${fused} B ≥ one (T, V) logits tensor ${logitsBytes} B`);
  tf.dispose([x, w]);
});
