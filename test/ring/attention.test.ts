// Every single-device implementation against the float64 reference and against vanilla,
// forward and gradients, on fresh random inputs (issue 2: within 1e-4 relative of vanilla).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../native/index.js';
import {
  blockwiseAttention,
  memeffAttention,
  vanillaAttention,
  type AttentionOptions,
} from '../../ring/index.js';
import { type Case, caseName, makeProblem, reference, tensors } from '../helpers/attention.js';
import { relError } from '../helpers/reference.js';

const TOL_VS_VANILLA = 1e-4;
const TOL_VS_FLOAT64 = 1e-5;

type Impl = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, o?: AttentionOptions) => tf.Tensor;
const IMPLS: [string, Impl][] = [
  ['vanilla', vanillaAttention],
  ['memeff', memeffAttention],
  ['blockwise', blockwiseAttention],
];

const CASES: (Case & { blockSize: number })[] = [
  { B: 1, H: 2, Hk: 2, T: 64, D: 16, causal: false, blockSize: 16 },
  { B: 2, H: 4, Hk: 2, T: 48, D: 8, causal: true, blockSize: 16 },
  { B: 1, H: 4, Hk: 1, T: 50, D: 8, causal: true, blockSize: 16 }, // ragged last block, MQA
  { B: 2, H: 2, Hk: 2, T: 40, D: 8, causal: false, blockSize: 8, segmentLength: 7 },
  { B: 2, H: 4, Hk: 2, T: 33, D: 4, causal: true, blockSize: 5, segmentLength: 11 },
  { B: 1, H: 2, Hk: 2, T: 37, D: 8, causal: true, blockSize: 64 }, // one block bigger than T
];

before(async () => {
  await initBackend({ backend: 'wasm' });
});

describe('attention implementations vs reference', () => {
  for (const c of CASES) {
    for (const [name, impl] of IMPLS) {
      test(caseName(c, `${name} C=${c.blockSize} `), () => {
        const p = makeProblem(c);
        const ref = reference(p);
        const t = tensors(p);
        const opts = { causal: c.causal, blockSize: c.blockSize, segmentIds: p.segments };
        const f = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => impl(q, k, v, opts);
        const { value, grads } = tf.valueAndGrads(f)([t.q, t.k, t.v], t.dOut);
        const vanilla = tf.valueAndGrads((q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) =>
          vanillaAttention(q, k, v, opts),
        )([t.q, t.k, t.v], t.dOut);
        const got = [value, ...grads].map((x) => x.dataSync());
        const want = [ref.out, ref.dq, ref.dk, ref.dv];
        const van = [vanilla.value, ...vanilla.grads].map((x) => x.dataSync());
        ['out', 'dq', 'dk', 'dv'].forEach((what, i) => {
          const e64 = relError(got[i], want[i]);
          const eVan = relError(got[i], van[i]);
          assert.ok(e64 < TOL_VS_FLOAT64, `${what}: rel error vs float64 ${e64} (seed ${p.seed})`);
          assert.ok(eVan < TOL_VS_VANILLA, `${what}: rel error vs vanilla ${eVan} (seed ${p.seed})`);
        });
        tf.dispose([value, ...grads, vanilla.value, ...vanilla.grads, t.q, t.k, t.v, t.dOut]);
      });
    }
  }

  test('queries shorter than keys are the last positions (KV-cache decoding)', () => {
    const p = makeProblem({ B: 1, H: 2, Hk: 2, T: 24, D: 8, causal: true });
    const ref = reference(p);
    const t = tensors(p);
    const lastQ = tf.slice(t.q, [0, 0, 20, 0], [1, 2, 4, 8]);
    for (const [name, impl] of IMPLS) {
      const out = impl(lastQ, t.k, t.v, { causal: true, blockSize: 8 });
      const want = new Float64Array(2 * 4 * 8);
      for (let h = 0; h < 2; h++) want.set(ref.out.subarray((h * 24 + 20) * 8, (h * 24 + 24) * 8), h * 32);
      assert.ok(relError(out.dataSync(), want) < TOL_VS_FLOAT64, name);
      out.dispose();
    }
  });

  test('no tensors leak across forward and backward', () => {
    const p = makeProblem({ B: 1, H: 2, Hk: 1, T: 30, D: 8, causal: true, segmentLength: 9 });
    const t = tensors(p);
    for (const [name, impl] of IMPLS) {
      const before = tf.memory().numTensors;
      const f = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) =>
        impl(q, k, v, { causal: true, blockSize: 8, segmentIds: p.segments });
      const { value, grads } = tf.valueAndGrads(f)([t.q, t.k, t.v], t.dOut);
      tf.dispose([value, ...grads]);
      assert.equal(tf.memory().numTensors, before, `${name} leaked tensors`);
    }
  });
});

describe('bad input', () => {
  const q = () => tf.zeros([1, 4, 8, 4]);
  const kv = () => tf.zeros([1, 2, 8, 4]);
  const cases: [string, () => unknown, RegExp][] = [
    [
      'q not 4-D',
      () => blockwiseAttention(tf.zeros([4, 8, 4]), kv(), kv()),
      /blockwiseAttention: q must be 4-D/,
    ],
    [
      'k and v differ',
      () => vanillaAttention(q(), kv(), tf.zeros([1, 2, 8, 5])),
      /vanillaAttention: k and v must have the same shape/,
    ],
    [
      'head dims differ',
      () => memeffAttention(tf.zeros([1, 4, 8, 3]), kv(), kv()),
      /head dim of q \(3\) and k\/v \(4\) differ/,
    ],
    [
      'heads not a multiple',
      () => blockwiseAttention(tf.zeros([1, 3, 8, 4]), kv(), kv()),
      /query heads \(3\) must be a multiple of key\/value heads \(2\)/,
    ],
    [
      'batch differs',
      () => blockwiseAttention(tf.zeros([2, 4, 8, 4]), kv(), kv()),
      /batch of q \(2\) and k\/v \(1\) differ/,
    ],
    [
      'bad block size',
      () => blockwiseAttention(q(), kv(), kv(), { blockSize: 0 }),
      /blockSize must be a positive integer; got 0/,
    ],
    [
      'segment ids wrong length',
      () => blockwiseAttention(q(), kv(), kv(), { segmentIds: new Int32Array(5) }),
      /segmentIds must have B·T = 1·8 = 8 entries.*got 5/,
    ],
  ];
  for (const [name, f, re] of cases) {
    test(name, () => {
      assert.throws(f, (err: Error & { exitCode?: number }) => re.test(err.message) && err.exitCode === 2);
    });
  }
});
