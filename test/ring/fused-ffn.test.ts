// The fused FFN sublayer (native/fused.ts, issue 14), y = x + FFN(norm(x) ∘ gain), against the tfjs
// sublayer it replaces and against a float64 reference, forward and every gradient, on fresh
// random configs: RMSNorm and LayerNorm, GELU, ReLU and SwiGLU, row counts across the kernel's
// 128-row chunks, 1 and 3 threads; and the whole transformer block with it, native vs tfjs.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { chunkedBackwardCount, nativeBlockCount, transformerBlock } from '../../block/index.js';
import { Rng } from '../../common/index.js';
import {
  configureNative,
  fusedFfnApplies,
  initBackend,
  nativeAddon,
  nativeStatus,
  timeNativeCalls,
} from '../../native/index.js';
import { feedForward } from '../../ring/ffn.js';
import {
  type FeedForwardKind,
  fusedFeedForwardSublayer,
  initBlock,
  type TransformerBlockConfig,
} from '../../ring/index.js';
import { normalize } from '../../ring/transformer.js';
import { withTfjs } from '../helpers/native.js';
import { relError } from '../helpers/reference.js';

const TOL = 1e-4;
const addon = nativeAddon();
const skip = addon?.ffnForward ? false : `native FFN unavailable: ${nativeStatus()}`;

before(async () => {
  await initBackend({ backend: 'wasm' });
});

interface Case {
  N: number;
  Dm: number;
  F: number;
  kind: FeedForwardKind;
  norm: 'rms' | 'layer';
  eps: number;
}

/** The tfjs sublayer (the reference the native op replaces). */
function tfjsSublayer(c: Case) {
  return (x: tf.Tensor, gain: tf.Tensor, ...ws: tf.Tensor[]) => {
    const w = {
      kind: c.kind,
      up: ws[0] as tf.Tensor2D,
      down: ws[1] as tf.Tensor2D,
      gate: ws[2] as tf.Tensor2D | undefined,
    };
    return tf.add(x, feedForward(normalize(x, gain, c.norm, c.eps), w));
  };
}

/** y = x + FFN(norm(x) ∘ gain) in float64, rows of x (N, Dm). */
function reference64(
  c: Case,
  x: Float64Array,
  gain: Float64Array,
  up: Float64Array,
  down: Float64Array,
  gate?: Float64Array,
) {
  const { N, Dm, F } = c;
  const y = new Float64Array(N * Dm);
  const h = new Float64Array(Dm);
  const a = new Float64Array(F);
  for (let i = 0; i < N; i++) {
    const row = x.subarray(i * Dm, (i + 1) * Dm);
    const mean = c.norm === 'layer' ? row.reduce((p, q) => p + q, 0) / Dm : 0;
    const ms = row.reduce((p, q) => p + (q - mean) ** 2, 0) / Dm;
    const r = 1 / Math.sqrt(ms + c.eps);
    for (let d = 0; d < Dm; d++) h[d] = (row[d] - mean) * r * gain[d];
    for (let f = 0; f < F; f++) {
      let u = 0;
      let g = 0;
      for (let d = 0; d < Dm; d++) {
        u += h[d] * up[d * F + f];
        if (gate) g += h[d] * gate[d * F + f];
      }
      if (c.kind === 'gelu')
        a[f] = 0.5 * u * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (u + 0.044715 * u ** 3)));
      else if (c.kind === 'relu') a[f] = Math.max(0, u);
      else a[f] = (g / (1 + Math.exp(-g))) * u;
    }
    for (let d = 0; d < Dm; d++) {
      let s = row[d];
      for (let f = 0; f < F; f++) s += a[f] * down[f * Dm + d];
      y[i * Dm + d] = s;
    }
  }
  return y;
}

function randomCase(rng: Rng): Case {
  const pick = <T>(xs: T[]) => xs[Math.floor(rng.next() * xs.length)];
  return {
    N: 1 + Math.floor(rng.next() * 400), // across the kernel's 128-row chunks, odd counts included
    Dm: pick([4, 16, 24, 64]),
    F: pick([8, 40, 96, 256]),
    kind: pick(['gelu', 'relu', 'swiglu'] as const),
    norm: pick(['rms', 'layer'] as const),
    eps: pick([1e-5, 1e-6]),
  };
}

const caseName = (c: Case) => `N=${c.N} Dm=${c.Dm} F=${c.F} ${c.kind} ${c.norm}`;

describe('fused FFN sublayer: native vs tfjs vs float64 (random configs)', { skip }, () => {
  for (let i = 0; i < 8; i++) {
    const seed = (Math.random() * 2 ** 31) | 0;
    const rng = new Rng(seed);
    const c = randomCase(rng);
    const threads = i % 2 === 0 ? 1 : 3;
    test(`${caseName(c)}, ${threads} thread(s) (seed ${seed})`, () => {
      const { N, Dm, F } = c;
      const arr = (n: number, std: number) => Float32Array.from(rng.normalArray(n, std));
      const xv = arr(N * Dm, 1);
      const gv = Float32Array.from({ length: Dm }, () => 0.5 + rng.next());
      const upv = arr(Dm * F, 1 / Math.sqrt(Dm));
      const downv = arr(F * Dm, 1 / Math.sqrt(F));
      const gatev = c.kind === 'swiglu' ? arr(Dm * F, 1 / Math.sqrt(Dm)) : undefined;
      const dyv = arr(N * Dm, 1);
      const x = tf.tensor2d(xv, [N, Dm]);
      const gain = tf.tensor1d(gv);
      const up = tf.tensor2d(upv, [Dm, F]);
      const down = tf.tensor2d(downv, [F, Dm]);
      const gate = gatev ? tf.tensor2d(gatev, [Dm, F]) : undefined;
      const dy = tf.tensor2d(dyv, [N, Dm]);
      const inputs = [x, gain, up, down, ...(gate ? [gate] : [])];
      const reference = tfjsSublayer(c);
      const native = (...ps: tf.Tensor[]) => {
        const w = {
          kind: c.kind,
          up: ps[2] as tf.Tensor2D,
          down: ps[3] as tf.Tensor2D,
          gate: ps[4] as tf.Tensor2D | undefined,
        };
        const y = fusedFeedForwardSublayer(ps[0], ps[1], w, c.norm, c.eps, reference);
        assert.ok(y, 'the fused sublayer runs on wasm with the addon');
        return y;
      };
      configureNative({ threads });
      try {
        const fused = tf.valueAndGrads(native)(inputs, dy);
        const plain = withTfjs(() => tf.valueAndGrads(reference)(inputs, dy));
        assert.ok(relError(fused.value.dataSync(), plain.value.dataSync()) < TOL, 'forward vs tfjs');
        const names = ['dx', 'dGain', 'dUp', 'dDown', 'dGate'];
        plain.grads.forEach((g, k) => {
          const e = relError(fused.grads[k].dataSync(), g.dataSync());
          assert.ok(e < TOL, `${names[k]} vs tfjs: relative error ${e}`);
        });

        // float64: the forward, and each gradient along a random direction by central differences
        const f64 = (a: Float32Array) => Float64Array.from(a);
        const ins64 = [f64(xv), f64(gv), f64(upv), f64(downv), ...(gatev ? [f64(gatev)] : [])];
        const y64 = reference64(c, ins64[0], ins64[1], ins64[2], ins64[3], ins64[4]);
        assert.ok(relError(fused.value.dataSync(), y64) < TOL, 'forward vs float64');
        const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
          let s = 0;
          for (let j = 0; j < a.length; j++) s += a[j] * b[j];
          return s;
        };
        ins64.forEach((p, k) => {
          const dir = Float64Array.from(rng.normalArray(p.length, 1));
          // small: ReLU's kink must lie between x ± eps·dir for (almost) no unit
          const eps = 1e-7;
          const shifted = (sign: number) => {
            const moved = ins64.map((q, j) => (j === k ? q.map((v, e) => v + sign * eps * dir[e]) : q));
            return dot(reference64(c, moved[0], moved[1], moved[2], moved[3], moved[4]), dyv);
          };
          const numeric = (shifted(1) - shifted(-1)) / (2 * eps);
          const analytic = dot(fused.grads[k].dataSync(), dir);
          const scale = Math.sqrt(dot(fused.grads[k].dataSync(), fused.grads[k].dataSync()) * p.length);
          assert.ok(
            Math.abs(analytic - numeric) <= TOL * Math.max(scale, 1e-6),
            `${names[k]} along a random direction: ${analytic} vs float64 ${numeric}`,
          );
        });
        tf.dispose([fused.value, ...fused.grads, plain.value, ...plain.grads]);
      } finally {
        configureNative({ threads: undefined });
        tf.dispose([...inputs, dy]);
      }
    });
  }

  test('(B, T, Dm) inputs, and unfused where the addon is off', () => {
    const rng = new Rng(5);
    const c: Case = { N: 2 * 70, Dm: 16, F: 40, kind: 'gelu', norm: 'layer', eps: 1e-5 };
    const x = tf.tensor3d(rng.normalArray(2 * 70 * 16), [2, 70, 16]);
    const w = {
      kind: c.kind,
      up: tf.tensor2d(rng.normalArray(16 * 40, 0.25), [16, 40]),
      down: tf.tensor2d(rng.normalArray(40 * 16, 0.15), [40, 16]),
    };
    const gain = tf.ones([16]);
    const y = fusedFeedForwardSublayer(x, gain, w, c.norm, c.eps, tfjsSublayer(c));
    assert.deepEqual(y?.shape, [2, 70, 16]);
    const sub = {
      x,
      gain,
      up: w.up,
      down: w.down,
      gate: null,
      activation: c.kind,
      norm: c.norm,
      eps: c.eps,
    } as const;
    assert.equal(fusedFfnApplies(sub), true);
    withTfjs(() => {
      assert.equal(fusedFfnApplies(sub), false);
      assert.equal(fusedFeedForwardSublayer(x, gain, w, c.norm, c.eps, tfjsSublayer(c)), undefined);
    });
    const plain = tf.add(x, feedForward(normalize(x, gain, c.norm, c.eps), w));
    assert.ok(relError(y!.dataSync(), plain.dataSync()) < TOL);
  });
});

/** RoPE with a frequency table per sequence length (lm/rope.ts scalings) and an attention factor. */
const TABLE_ROPE: TransformerBlockConfig['rope'] = {
  theta: 10000,
  frequencies: (seqLen: number) => ({
    inverse: Array.from({ length: 8 }, (_, i) => 10000 ** (-i / 8) / (1 + seqLen / 100)),
    scale: 1.1,
  }),
};

/** A d = 32 block with random weights and non-trivial norm gains; `extra` overrides the config. */
function randomBlock(extra: Partial<TransformerBlockConfig>, rng: Rng) {
  const c: TransformerBlockConfig = {
    dModel: 32,
    heads: 4,
    kvHeads: 2,
    ffnHidden: 64,
    ffn: 'gelu',
    norm: 'rms',
    normEps: 1e-5,
    attention: 'blockwise',
    blockSize: 16,
    ffnChunk: 32,
    causal: true,
    ...extra,
  };
  const w = initBlock(c, rng, 2);
  const names = Object.keys(w).filter((k) => w[k as keyof typeof w] !== undefined);
  const vars = names.map((k) => w[k as keyof typeof w] as tf.Variable);
  for (const v of [w.attnNorm, w.ffnNorm])
    v.assign(tf.tensor1d(rng.normalArray(c.dModel, 0.3).map((g) => 1 + g)));
  return { c, w, names, vars };
}

describe('transformer block with the fused FFN: native vs tfjs', { skip }, () => {
  const configs: Partial<TransformerBlockConfig>[] = [
    { ffn: 'gelu', norm: 'layer', heads: 2, kvHeads: 2, rope: undefined, causal: true },
    { ffn: 'swiglu', norm: 'rms', heads: 4, kvHeads: 2, rope: { theta: 10000 }, causal: true },
    { ffn: 'relu', norm: 'rms', heads: 4, kvHeads: 1, rope: { theta: 500, interpolation: 2 }, causal: false },
    // a frequency table per sequence length (lm/rope.ts scalings), with an attention factor
    {
      ffn: 'swiglu',
      norm: 'rms',
      heads: 2,
      kvHeads: 1,
      rope: TABLE_ROPE,
      causal: true,
    },
  ];
  for (const extra of configs) {
    test(`block ${JSON.stringify(extra)}: value and every gradient within ${TOL}`, () => {
      const seed = (Math.random() * 2 ** 31) | 0;
      const rng = new Rng(seed);
      const { c, w, names, vars } = randomBlock(extra, rng);
      const x = tf.tensor3d(rng.normalArray(2 * 150 * c.dModel), [2, 150, c.dModel]);
      const dy = tf.tensor3d(rng.normalArray(2 * 150 * c.dModel), [2, 150, c.dModel]);
      const run = () =>
        tf.valueAndGrads((xx: tf.Tensor, ..._vs: tf.Tensor[]) => transformerBlock(xx, w, c, {}))(
          [x, ...vars],
          dy,
        );
      const blocksBefore = nativeBlockCount();
      const fused = run();
      assert.equal(nativeBlockCount(), blocksBefore + 1, 'the block ran as one native op');
      const plain = withTfjs(run);
      assert.equal(nativeBlockCount(), blocksBefore + 1, 'with the addon off, the tfjs block ran');
      assert.ok(relError(fused.value.dataSync(), plain.value.dataSync()) < TOL, `forward (seed ${seed})`);
      ['x', ...names].forEach((name, k) => {
        const e = relError(fused.grads[k].dataSync(), plain.grads[k].dataSync());
        assert.ok(e < TOL, `gradient of ${name}: relative error ${e} (seed ${seed})`);
      });
    });
  }
});

describe('native block: keepAttention and keepFfn', { skip }, () => {
  // keeping a tensor must give the bits recomputing it gives: the same products on the same rows
  const configs: Partial<TransformerBlockConfig>[] = [
    { ffn: 'swiglu', norm: 'rms', heads: 4, kvHeads: 2, rope: { theta: 10000 } },
    { ffn: 'gelu', norm: 'layer', heads: 2, kvHeads: 2, rope: undefined },
    { ffn: 'relu', norm: 'rms', heads: 4, kvHeads: 1, rope: { theta: 500 } },
  ];
  for (const extra of configs) {
    test(`kept tensors give the recomputed bits (${extra.ffn}, ${extra.norm} norm)`, () => {
      const rng = new Rng((Math.random() * 2 ** 31) | 0);
      const { c, w, vars } = randomBlock(extra, rng);
      // 2 × 90 = 180 rows: the native side's second 128-row chunk is partial and starts at an offset
      const x = tf.tensor3d(rng.normalArray(2 * 90 * 32), [2, 90, 32]);
      const dy = tf.tensor3d(rng.normalArray(2 * 90 * 32), [2, 90, 32]);
      const run = (keepAttention: boolean, keepFfn: boolean) =>
        tf.valueAndGrads((xx: tf.Tensor, ..._vs: tf.Tensor[]) =>
          transformerBlock(xx, w, { ...c, keepAttention, keepFfn }, {}),
        )([x, ...vars], dy);
      const before = nativeBlockCount();
      const recomputed = run(false, false);
      for (const [keepAttention, keepFfn] of [
        [true, false],
        [true, true],
      ]) {
        const kept = run(keepAttention, keepFfn);
        const what = `keepAttention ${keepAttention}, keepFfn ${keepFfn}`;
        assert.deepEqual(kept.value.dataSync(), recomputed.value.dataSync(), `output (${what})`);
        kept.grads.forEach((g, i) => {
          assert.deepEqual(g.dataSync(), recomputed.grads[i].dataSync(), `gradient ${i} (${what})`);
        });
      }
      assert.equal(nativeBlockCount() - before, 3, 'each run took the native block');
    });
  }

  test('keepFfn without keepAttention is a configuration error', () => {
    const rng = new Rng(1);
    const c: TransformerBlockConfig = {
      dModel: 16,
      heads: 2,
      kvHeads: 2,
      ffnHidden: 32,
      ffn: 'gelu',
      norm: 'layer',
      normEps: 1e-5,
      attention: 'blockwise',
      blockSize: 16,
      ffnChunk: 16,
      causal: true,
      keepFfn: true,
    };
    assert.throws(() => initBlock(c, rng, 1), /keepFfn .*needs keepAttention/);
  });
});

// The native block's backward in query chunks (block/chunked-backward.ts, issue 14's memory): the
// chunked path against the whole-sequence backward and the tfjs block, on random configs (causal
// or not, GQA, RoPE with and without a frequency table, segments, chunk sizes that do not divide T).
describe('native block: backward in query chunks', { skip }, () => {
  const configs: (Partial<TransformerBlockConfig> & { segments?: boolean })[] = [
    { ffn: 'swiglu', norm: 'rms', heads: 4, kvHeads: 2, rope: { theta: 10000 }, causal: true },
    { ffn: 'gelu', norm: 'layer', heads: 2, kvHeads: 2, rope: undefined, causal: false },
    {
      ffn: 'relu',
      norm: 'rms',
      heads: 4,
      kvHeads: 1,
      rope: { theta: 500, interpolation: 2 },
      causal: true,
      segments: true,
    },
    {
      ffn: 'swiglu',
      norm: 'rms',
      heads: 2,
      kvHeads: 1,
      rope: TABLE_ROPE,
      causal: false,
      segments: true,
    },
  ];
  // dy handed in by the caller stays untouched; a dy the backward pass made (here the gradient of
  // Σ y ∘ r) takes dx's rows in place when the mask is causal
  for (const { segments, ...extra } of configs)
    for (const upstream of ['caller', 'made inside'] as const) {
      test(`${JSON.stringify({ ...extra, segments })}, dy ${upstream}: value and every gradient within ${TOL} of the whole backward and tfjs`, () => {
        const seed = (Math.random() * 2 ** 31) | 0;
        const rng = new Rng(seed);
        const [B, T] = [2, 100 + rng.int(100)];
        const chunk = 16 + rng.int(48); // rarely divides T; the last chunk is shorter
        const { c, w, names, vars } = randomBlock(extra, rng);
        // packed sequences: each row cut into segments at random points
        const segmentIds = segments
          ? Int32Array.from({ length: B * T }, (_, i) => Math.floor((i % T) / (20 + ((i / T) | 0) * 13)))
          : undefined;
        const x = tf.tensor3d(rng.normalArray(B * T * c.dModel), [B, T, c.dModel]);
        const dy = tf.tensor3d(rng.normalArray(B * T * c.dModel), [B, T, c.dModel]);
        const dyCopy = dy.dataSync().slice();
        const block = (backwardChunk: number) => (xx: tf.Tensor) =>
          transformerBlock(xx, w, { ...c, backwardChunk }, { segmentIds });
        const run = (backwardChunk: number) => () =>
          upstream === 'caller'
            ? tf.valueAndGrads((xx: tf.Tensor, ..._vs: tf.Tensor[]) => block(backwardChunk)(xx))(
                [x, ...vars],
                dy,
              )
            : tf.valueAndGrads((xx: tf.Tensor, ..._vs: tf.Tensor[]) =>
                tf.sum(tf.mul(block(backwardChunk)(xx), dy)),
              )([x, ...vars]);
        const before = chunkedBackwardCount();
        const chunked = run(chunk)();
        const after = chunkedBackwardCount();
        assert.equal(after.chunked, before.chunked + 1, 'the chunked backward ran');
        const inPlace = upstream === 'made inside' && c.causal;
        assert.equal(after.inPlace, before.inPlace + (inPlace ? 1 : 0), 'dx written into dy');
        const whole = run(0)();
        assert.equal(chunkedBackwardCount().chunked, after.chunked, 'backwardChunk 0: the whole backward');
        const plain = withTfjs(run(chunk));
        assert.deepEqual(dy.dataSync(), dyCopy, "the caller's dy is untouched");
        const where = `(T ${T}, chunk ${chunk}, seed ${seed})`;
        assert.ok(relError(chunked.value.dataSync(), plain.value.dataSync()) < TOL, `forward ${where}`);
        ['x', ...names].forEach((name, k) => {
          const g = chunked.grads[k].dataSync();
          const e = relError(g, whole.grads[k].dataSync());
          assert.ok(e < TOL, `gradient of ${name} vs the whole backward: ${e} ${where}`);
          const ePlain = relError(g, plain.grads[k].dataSync());
          assert.ok(ePlain < TOL, `gradient of ${name} vs tfjs: ${ePlain} ${where}`);
        });
        tf.dispose([
          x,
          dy,
          chunked.value,
          whole.value,
          plain.value,
          ...chunked.grads,
          ...whole.grads,
          ...plain.grads,
        ]);
      });
    }
});

describe('native norm (ring/transformer.ts normalize)', {
  skip: addon?.normForward ? false : 'native norm unavailable',
}, () => {
  for (const kind of ['rms', 'layer'] as const)
    test(`${kind}: the native op against the tfjs ops, value and both gradients, and it ran`, () => {
      const seed = (Math.random() * 2 ** 31) | 0;
      const rng = new Rng(seed);
      const [B, T, D] = [1 + rng.int(3), 1 + rng.int(300), 4 + rng.int(120)];
      const x = tf.tensor3d(rng.normalArray(B * T * D, 2), [B, T, D]);
      const gain = tf.tensor1d(rng.normalArray(D));
      const dy = tf.tensor3d(rng.normalArray(B * T * D), [B, T, D]);
      const f = (a: tf.Tensor, g: tf.Tensor) => normalize(a, g, kind, 1e-5);
      const calls: string[] = [];
      timeNativeCalls((name) => calls.push(name));
      let native: { value: tf.Tensor; grads: tf.Tensor[] };
      try {
        native = tf.valueAndGrads(f)([x, gain], dy);
      } finally {
        timeNativeCalls(undefined);
      }
      assert.ok(calls.includes('normForward') && calls.includes('normBackward'), `addon calls: ${calls}`);
      const ref = withTfjs(() => tf.valueAndGrads(f)([x, gain], dy));
      assert.ok(relError(native.value.dataSync(), ref.value.dataSync()) < TOL, `seed ${seed}: value`);
      native.grads.forEach((g, i) => {
        assert.ok(relError(g.dataSync(), ref.grads[i].dataSync()) < TOL, `seed ${seed}: gradient ${i}`);
      });
      tf.dispose([x, gain, dy, native.value, ...native.grads, ref.value, ...ref.grads]);
    });
});
