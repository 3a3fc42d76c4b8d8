// The native kernels (native/addon.ts, issue 7 path 2) against the tfjs engine they replace, against
// vanilla and against a float64 reference, forward and gradients, on fresh random shapes: odd
// lengths, causal and not, GQA, segments, ring chunks with position offsets fed one at a time.
// Also: matmul's sgemm against tfjs, the thread-count setting, the fallback when the addon does
// not load, and the ring/ suites re-run with RING_NATIVE=0 so CI covers both paths.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { RingGroup, ringAttention } from '../../cluster/index.js';
import { Rng } from '../../common/index.js';
import {
  configureNative,
  initBackend,
  installNativeKernels,
  NATIVE_MATMUL_MIN_MACS,
  nativeAddon,
  nativeMatmulCount,
  nativeStatus,
  nativeThreads,
  scatterAddRows,
  timeNativeCalls,
} from '../../native/index.js';
import { NativeBackward, NativeForward } from '../../ring/attention/kernels.js';
import type { TokenSide } from '../../ring/attention/mask.js';
import { blockwiseAttention, matmul, vanillaAttention } from '../../ring/index.js';
import { reference64 } from '../helpers/chunk-reference.js';
import { withTfjs } from '../helpers/native.js';
import { relError } from '../helpers/reference.js';

const TOL = 1e-4;

/**
 * relError, with the reference's norm floored at an RMS of 0.1 per element: where the exact
 * gradient is (near) zero, the check becomes an absolute one (RMS difference < 1e-5) instead of
 * dividing float32 roundoff by nothing. One key per query (L = 1, or every token its own
 * segment) makes dq and dk exactly zero in float64 and in the tfjs engine, while the native
 * backward's D_i = rowsum(dO ∘ O) and dO·v differ in their last bits: 6e-7 against 0 once read
 * as a relative error of 1e24 (seed 1210177698).
 */
function attentionError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return relError(a, b, 0.1 * Math.sqrt(a.length));
}
const root = fileURLToPath(new URL('../../..', import.meta.url));
const addon = nativeAddon();
const skip = addon ? false : `native addon unavailable: ${nativeStatus()}`;

before(async () => {
  await initBackend({ backend: 'wasm' });
});

interface Shape {
  B: number;
  H: number;
  Hk: number;
  T: number;
  D: number;
  causal: boolean;
  segmentLength?: number;
  blockSize: number;
}

function randomShape(rng: Rng): Shape {
  const pick = <T>(xs: T[]) => xs[Math.floor(rng.next() * xs.length)];
  const Hk = pick([1, 2, 3]);
  return {
    B: pick([1, 2]),
    Hk,
    H: Hk * pick([1, 2, 4]),
    T: 1 + Math.floor(rng.next() * 300), // odd and prime lengths included
    D: pick([4, 7, 16, 24, 64]),
    causal: rng.next() < 0.5,
    segmentLength: rng.next() < 0.4 ? 5 + Math.floor(rng.next() * 60) : undefined,
    blockSize: pick([16, 37, 64, 512]),
  };
}

const shapeName = (s: Shape) =>
  `B=${s.B} H=${s.H} gqa=${s.H / s.Hk} L=${s.T} D=${s.D}${s.causal ? ' causal' : ''}${s.segmentLength ? ` segments/${s.segmentLength}` : ''}`;

/** Random q, dOut (B, H, T, D) and k, v (B, Hk, T, D) tensors from `rng`. */
function randomAttentionInputs(rng: Rng, B: number, H: number, Hk: number, T: number, D: number) {
  const side = (heads: number) => tf.tensor4d(rng.normalArray(B * heads * T * D), [B, heads, T, D]);
  const q = side(H);
  const k = side(Hk);
  const v = side(Hk);
  return { q, k, v, dOut: side(H) };
}

describe('native blockwise vs tfjs engine vs vanilla (random shapes)', { skip }, () => {
  const seed = (Math.random() * 2 ** 31) | 0;
  const rng = new Rng(seed);
  for (let n = 0; n < 8; n++) {
    const s = randomShape(rng);
    test(`native blockwise ${shapeName(s)} (seed ${seed})`, () => {
      const { B, H, Hk, T, D } = s;
      const segmentIds = s.segmentLength
        ? Int32Array.from({ length: B * T }, (_, i) =>
            Math.floor(((i % T) + 5 * Math.floor(i / T)) / s.segmentLength!),
          )
        : undefined;
      const q = tf.tensor4d(rng.normalArray(B * H * T * D), [B, H, T, D]);
      const k = tf.tensor4d(rng.normalArray(B * Hk * T * D), [B, Hk, T, D]);
      const v = tf.tensor4d(rng.normalArray(B * Hk * T * D), [B, Hk, T, D]);
      const dOut = tf.tensor4d(rng.normalArray(B * H * T * D), [B, H, T, D]);
      const opts = { causal: s.causal, blockSize: s.blockSize, segmentIds };
      const run = (impl: typeof blockwiseAttention) => {
        const r = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => impl(a, b, c, opts))(
          [q, k, v],
          dOut,
        );
        return [r.value, ...r.grads].map((x) => x.dataSync());
      };
      const native = run(blockwiseAttention);
      const tfjs = withTfjs(() => run(blockwiseAttention));
      const vanilla = withTfjs(() => run(vanillaAttention));
      ['out', 'dq', 'dk', 'dv'].forEach((what, i) => {
        const eT = attentionError(native[i], tfjs[i]);
        const eV = attentionError(native[i], vanilla[i]);
        assert.ok(eT < TOL, `${what}: native vs tfjs engine ${eT}`);
        assert.ok(eV < TOL, `${what}: native vs vanilla ${eV}`);
      });
      tf.dispose([q, k, v, dOut]);
    });
  }
});

describe('native blockwise with one key per query', { skip }, () => {
  test('L = 1: the output is v, and dq, dk are zero up to roundoff (the case attentionError floors)', () => {
    const seed = (Math.random() * 2 ** 31) | 0;
    const { q, k, v, dOut } = randomAttentionInputs(new Rng(seed), 2, 3, 3, 1, 16);
    for (const blockSize of [1, 64]) {
      const r = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
        blockwiseAttention(a, b, c, { blockSize }),
      )([q, k, v], dOut);
      const [out, dq, dk, dv] = [r.value, ...r.grads].map((x) => x.dataSync());
      assert.ok(relError(out, v.dataSync()) < 1e-6, `seed ${seed} block ${blockSize}: out is v`);
      assert.ok(relError(dv, dOut.dataSync()) < 1e-6, `seed ${seed} block ${blockSize}: dv is dOut`);
      for (const [what, g] of [
        ['dq', dq],
        ['dk', dk],
      ] as const) {
        const worst = Math.max(...Array.from(g, Math.abs));
        assert.ok(worst < 1e-5, `seed ${seed} block ${blockSize}: ${what} max |x| ${worst}`);
      }
      tf.dispose([r.value, ...r.grads]);
    }
    tf.dispose([q, k, v, dOut]);
  });
});

/** Rows (heads × T × D) of tokens t0..t1 of each head. */
function tokens(x: Float32Array, heads: number, T: number, D: number, t0: number, t1: number): Float32Array {
  const c = t1 - t0;
  const out = new Float32Array(heads * c * D);
  for (let h = 0; h < heads; h++) out.set(x.subarray((h * T + t0) * D, (h * T + t1) * D), h * c * D);
  return out;
}

describe('native kernels on ring chunks (positions with offsets, chunks in ring order)', { skip }, () => {
  const seed = (Math.random() * 2 ** 31) | 0;
  const rng = new Rng(seed);
  for (let n = 0; n < 6; n++) {
    const N = 2 + (n % 3); // chunks
    const c = 1 + Math.floor(rng.next() * 90); // tokens per chunk
    const Hk = 1 + (n % 2);
    const p = { B: 1 + (n % 2), H: Hk * (1 + (n % 3)), Hk, D: [8, 13, 32][n % 3], causal: n % 2 === 0 };
    const striped = n % 4 < 2;
    const segs = n >= 3;
    test(`native ring chunks N=${N} c=${c} B=${p.B} H=${p.H} gqa=${p.H / p.Hk} D=${p.D}${p.causal ? ' causal' : ''}${striped ? ' striped' : ''}${segs ? ' segments' : ''} (seed ${seed})`, () => {
      const { B, H, D } = p;
      const T = N * c;
      const offset = Math.floor(rng.next() * 1000); // global positions need not start at 0
      // device `rank` holds these global positions (striped: t·N + rank)
      const posOf = (rank: number) =>
        Int32Array.from({ length: c }, (_, t) => offset + (striped ? t * N + rank : rank * c + t));
      const segOf = (pos: Int32Array) =>
        segs
          ? Int32Array.from({ length: B * c }, (_, i) =>
              Math.floor((pos[i % c] + 7 * Math.floor(i / c)) / 23),
            )
          : undefined;
      const sides: TokenSide[] = Array.from({ length: N }, (_, r) => {
        const positions = posOf(r);
        return { positions, segments: segOf(positions) };
      });
      const rank = Math.floor(rng.next() * N);
      const q = rng.normalArray(B * H * c * D);
      const dOut = rng.normalArray(B * H * c * D);
      const ks = Array.from({ length: N }, () => rng.normalArray(B * Hk * c * D));
      const vs = Array.from({ length: N }, () => rng.normalArray(B * Hk * c * D));
      const kg = { ...p, scale: 1 / Math.sqrt(D) };
      // the ring's order: this device's own chunk first, then rank − 1, rank − 2, …
      const order = Array.from({ length: N }, (_, s) => (rank - s + N) % N);
      const fwd = new NativeForward(addon!, q, kg, sides[rank]);
      for (const owner of order) fwd.accumulate(ks[owner], vs[owner], sides[owner]);
      const { out, lse } = fwd.finalize();
      // the last chunk marked as such: each query tile finalised inside the kernel call, the
      // same operations in the same order as the separate pass, so the same bits
      const fused = new NativeForward(addon!, q, kg, sides[rank]);
      for (const [s, owner] of order.entries())
        fused.accumulate(ks[owner], vs[owner], sides[owner], s === N - 1);
      assert.throws(() => fused.accumulate(ks[0], vs[0], sides[0]), /already added/);
      const f = fused.finalize();
      assert.deepEqual(f.out, out, 'output: last chunk finalised in the kernel vs attnFinalize');
      assert.deepEqual(f.lse, lse, 'lse: last chunk finalised in the kernel vs attnFinalize');
      const bwd = new NativeBackward(addon!, q, out, dOut, lse, kg, sides[rank]);
      const dk = ks.map((x) => new Float32Array(x.length));
      const dv = vs.map((x) => new Float32Array(x.length));
      for (const owner of order) bwd.accumulate(ks[owner], vs[owner], sides[owner], dk[owner], dv[owner]);
      const dq = bwd.finalize();

      // reference: all keys at once, chunk after chunk along the token axis
      const cat = (parts: Float32Array[]) => {
        const x = new Float32Array(B * Hk * T * D);
        parts.forEach((part, r) => {
          for (let h = 0; h < B * Hk; h++)
            x.set(part.subarray(h * c * D, (h + 1) * c * D), (h * T + r * c) * D);
        });
        return x;
      };
      const allSide: TokenSide = {
        positions: Int32Array.from({ length: T }, (_, t) => sides[Math.floor(t / c)].positions[t % c]),
        segments: segs
          ? Int32Array.from({ length: B * T }, (_, i) => {
              const b = Math.floor(i / T);
              const t = i % T;
              return sides[Math.floor(t / c)].segments![b * c + (t % c)];
            })
          : undefined,
      };
      const ref = reference64(p, q, cat(ks), cat(vs), dOut, sides[rank], allSide);
      const e = {
        out: attentionError(out, ref.out),
        dq: attentionError(dq, ref.dq),
        dk: attentionError(cat(dk), ref.dk),
        dv: attentionError(cat(dv), ref.dv),
      };
      for (const [what, err] of Object.entries(e)) assert.ok(err < TOL, `${what}: native vs float64 ${err}`);
      // tokens(…) keeps the helper honest: a chunk's rows come back from the concatenation
      assert.deepEqual(tokens(cat(ks), B * Hk, T, D, 0, c), ks[0]);
    });
  }
});

describe('native kernels on long chunks (the forward in 128 × 128 tiles from 1,024 tokens)', { skip }, () => {
  const seed = (Math.random() * 2 ** 31) | 0;
  const rng = new Rng(seed);
  for (let n = 0; n < 2; n++) {
    // two chunks of ≥ 1,024 tokens (a partial last tile of 128), positions offset as on a ring
    const c = 1024 + Math.floor(rng.next() * 200);
    const p = { B: 1, H: 2, Hk: 2 - n, D: [8, 24, 40][Math.floor(rng.next() * 3)], causal: n === 0 };
    const segs = rng.next() < 0.5;
    test(`long chunks c=${c} H=${p.H} gqa=${p.H / p.Hk} D=${p.D}${p.causal ? ' causal' : ''}${segs ? ' segments' : ''} (seed ${seed})`, () => {
      const { B, H, Hk, D } = p;
      const offset = Math.floor(rng.next() * 1000);
      const sides: TokenSide[] = [0, 1].map((r) => {
        const positions = Int32Array.from({ length: c }, (_, t) => offset + r * c + t);
        const segments = segs
          ? Int32Array.from({ length: B * c }, (_, i) => Math.floor(positions[i % c] / 700))
          : undefined;
        return { positions, segments };
      });
      const q = rng.normalArray(B * H * c * D);
      const dOut = rng.normalArray(B * H * c * D);
      const ks = [0, 1].map(() => rng.normalArray(B * Hk * c * D));
      const vs = [0, 1].map(() => rng.normalArray(B * Hk * c * D));
      const kg = { ...p, scale: 1 / Math.sqrt(D) };
      // queries: the second chunk; keys: its own chunk, then the first (the ring's order)
      const fwd = new NativeForward(addon!, q, kg, sides[1]);
      fwd.accumulate(ks[1], vs[1], sides[1]);
      fwd.accumulate(ks[0], vs[0], sides[0], true);
      const { out, lse } = fwd.finalize();
      const bwd = new NativeBackward(addon!, q, out, dOut, lse, kg, sides[1]);
      const dk = ks.map((x) => new Float32Array(x.length));
      const dv = vs.map((x) => new Float32Array(x.length));
      for (const r of [1, 0]) bwd.accumulate(ks[r], vs[r], sides[r], dk[r], dv[r]);
      const dq = bwd.finalize();
      const cat = (parts: Float32Array[]) => {
        const x = new Float32Array(B * Hk * 2 * c * D);
        parts.forEach((part, r) => {
          for (let h = 0; h < B * Hk; h++)
            x.set(part.subarray(h * c * D, (h + 1) * c * D), (h * 2 * c + r * c) * D);
        });
        return x;
      };
      const all: TokenSide = {
        positions: Int32Array.from({ length: 2 * c }, (_, t) => offset + t),
        segments: segs
          ? Int32Array.from({ length: 2 * c }, (_, t) => Math.floor((offset + t) / 700))
          : undefined,
      };
      const ref = reference64(p, q, cat(ks), cat(vs), dOut, sides[1], all);
      const e = {
        out: attentionError(out, ref.out),
        dq: attentionError(dq, ref.dq),
        dk: attentionError(cat(dk), ref.dk),
        dv: attentionError(cat(dv), ref.dv),
      };
      for (const [what, err] of Object.entries(e)) assert.ok(err < TOL, `${what}: native vs float64 ${err}`);
    });
  }
});

describe('native forward, last chunk finalised in the kernel', { skip }, () => {
  test('rows that see no key end as 0 with lse +∞, as attnFinalize leaves them; rowDot on threads', () => {
    const rng = new Rng((Math.random() * 2 ** 31) | 0);
    const [B, H, Hk, D, Tq, Tk] = [2, 4, 2, 24, 70, 90];
    const kg = { B, H, Hk, D, scale: 1 / Math.sqrt(D), causal: true };
    // queries at positions 0…69 and a chunk of keys at 100…189: causal, no row sees any key
    const qSide: TokenSide = { positions: Int32Array.from({ length: Tq }, (_, t) => t) };
    const kSide: TokenSide = { positions: Int32Array.from({ length: Tk }, (_, t) => 100 + t) };
    const q = rng.normalArray(B * H * Tq * D);
    const fwd = new NativeForward(addon!, q, kg, qSide);
    fwd.accumulate(rng.normalArray(B * Hk * Tk * D), rng.normalArray(B * Hk * Tk * D), kSide, true);
    const { out, lse } = fwd.finalize();
    assert.ok(
      out.every((x) => x === 0),
      'output of rows without keys',
    );
    assert.ok(
      lse.every((x) => x === Number.POSITIVE_INFINITY),
      'lse of rows without keys',
    );
    // rowDot (the backward's Δ) on 2 threads against a float64 loop: 3,000 rows span 3 tasks
    const rows = 3000;
    const Dr = 37; // a remainder past the vector width
    const a = rng.normalArray(rows * Dr);
    const b = rng.normalArray(rows * Dr);
    const got = new Float32Array(rows);
    addon!.rowDot(a, b, got, rows, Dr, 2);
    for (let r = 0; r < rows; r++) {
      let want = 0;
      for (let d = 0; d < Dr; d++) want += a[r * Dr + d] * b[r * Dr + d];
      assert.ok(
        Math.abs(got[r] - want) < 1e-4 * (1 + Math.abs(want)),
        `rowDot row ${r}: ${got[r]} vs ${want}`,
      );
    }
  });
});

// The LM's resumed run logged other gradient norms than the uninterrupted one (AMD Zen 4 build):
// normBackward gave other bits for the same inputs when its outputs sat a few bytes before its
// inputs in the wasm heap. The compiler's vectorised loops check at run time whether arrays
// overlap and fall back to scalar code when they are close, and the two paths fused multiplies
// and adds differently; the addon now compiles with -ffp-contract=off, so both round alike.
describe('native results do not depend on where the arrays sit', { skip }, () => {
  test('norm forward and backward: arrays packed together against separate ones (random shapes)', () => {
    const rng = new Rng((Math.random() * 2 ** 31) | 0);
    const a = addon!;
    // the layout the LM step met first (N 64, D 8), then random ones
    const shapes: [number, number, number][] = [[64, 8, 0]];
    for (let i = 0; i < 6; i++) shapes.push([1 + rng.int(100), 1 + rng.int(80), rng.int(2)]);
    for (const [N, D, kind] of shapes) {
      const x = new Float32Array(rng.normalArray(N * D));
      const gain = new Float32Array(rng.normalArray(D));
      const dy = new Float32Array(rng.normalArray(N * D));
      const y = new Float32Array(N * D);
      const dx = new Float32Array(N * D);
      const dGain = new Float32Array(D);
      a.normForward!(x, gain, y, N, D, kind, 1e-5, 1);
      a.normBackward!(x, gain, dy, dx, dGain, N, D, kind, 1e-5, 1);
      // one buffer: each output 8 bytes before an input (gain · dGain · y · dx · dy · x)
      const heap = new Float32Array(4 * N * D + 2 * D + 64);
      let at = 1 + rng.int(8);
      const place = (n: number) => {
        const v = heap.subarray(at, at + n);
        at += n + 2;
        return v;
      };
      const [pg, pdg, py, pdx, pdy, px] = [
        place(D),
        place(D),
        place(N * D),
        place(N * D),
        place(N * D),
        place(N * D),
      ];
      px.set(x);
      pg.set(gain);
      pdy.set(dy);
      a.normForward!(px, pg, py, N, D, kind, 1e-5, 1);
      a.normBackward!(px, pg, pdy, pdx, pdg, N, D, kind, 1e-5, 1);
      const what = `N ${N}, D ${D}, ${kind ? 'layer' : 'rms'} norm`;
      assert.deepEqual(py, y, `y (${what})`);
      assert.deepEqual(pdx, dx, `dx (${what})`);
      assert.deepEqual(pdg, dGain, `dGain (${what})`);
    }
  });
});

describe('native thread count', { skip }, () => {
  after(() => configureNative({ threads: undefined, devices: undefined }));
  test('default ⌊cores / local processes / devices⌋ (at least 1), RING_NATIVE_THREADS and the option override it', () => {
    const cores = availableParallelism();
    const saved = process.env.RING_NATIVE_THREADS;
    const savedLocal = process.env.LOCAL_WORLD_SIZE;
    delete process.env.RING_NATIVE_THREADS;
    delete process.env.LOCAL_WORLD_SIZE;
    try {
      configureNative({ devices: 2 });
      assert.equal(nativeThreads(), Math.max(1, Math.floor(cores / 2)));
      configureNative({ devices: 4 * cores });
      assert.equal(nativeThreads(), 1);
      // ranks as processes on one host (exp launch sets LOCAL_WORLD_SIZE) divide the cores too
      configureNative({ devices: 1 });
      process.env.LOCAL_WORLD_SIZE = '2';
      assert.equal(nativeThreads(), Math.max(1, Math.floor(cores / 2)));
      process.env.LOCAL_WORLD_SIZE = String(4 * cores);
      assert.equal(nativeThreads(), 1);
      delete process.env.LOCAL_WORLD_SIZE;
      assert.equal(nativeThreads(), cores);
      process.env.RING_NATIVE_THREADS = '3';
      assert.equal(nativeThreads(), 3);
      configureNative({ threads: 5 });
      assert.equal(nativeThreads(), 5);
      assert.throws(
        () => configureNative({ threads: 0 }),
        /configureNative: threads: expected a positive integer/,
      );
    } finally {
      if (saved === undefined) delete process.env.RING_NATIVE_THREADS;
      else process.env.RING_NATIVE_THREADS = saved;
      if (savedLocal === undefined) delete process.env.LOCAL_WORLD_SIZE;
      else process.env.LOCAL_WORLD_SIZE = savedLocal;
    }
  });

  test('1 and 3 threads give the same attention and sgemm', () => {
    const rng = new Rng((Math.random() * 2 ** 31) | 0);
    const { q, k, v, dOut } = randomAttentionInputs(rng, 1, 3, 3, 257, 16);
    const a = tf.tensor2d(rng.normalArray(300 * 200), [300, 200]);
    const b = tf.tensor2d(rng.normalArray(200 * 150), [200, 150]);
    const run = (threads: number) => {
      configureNative({ threads });
      const r = tf.valueAndGrads((x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) =>
        blockwiseAttention(x, y, z, { causal: true }),
      )([q, k, v], dOut);
      return [r.value, ...r.grads, matmul(a, b)].map((x) => x.dataSync());
    };
    const one = run(1);
    const three = run(3);
    one.forEach((x, i) => {
      assert.ok(relError(three[i], x) < 1e-6, `output ${i}: ${relError(three[i], x)}`);
    });
  });

  test('at a given thread count, repeated runs give the same bits (forward, dQ, dK, dV)', () => {
    // dQ is summed per thread: with tasks taken from a shared counter, the order of those sums
    // followed thread timing and the same seed gave different metrics (issue 13's check)
    const seed = (Math.random() * 2 ** 31) | 0;
    const rng = new Rng(seed);
    const { q, k, v, dOut } = randomAttentionInputs(rng, 2, 4, 2, 300, 16); // 3 key tiles per head, GQA
    configureNative({ threads: 3 });
    const run = () =>
      tf
        .valueAndGrads((x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) =>
          blockwiseAttention(x, y, z, { causal: true }),
        )([q, k, v], dOut)
        .grads.map((x) => Buffer.from(x.dataSync().buffer).toString('base64'));
    const first = run();
    for (let i = 0; i < 5; i++)
      assert.deepEqual(run(), first, `seed ${seed}: run ${i + 2} differs from run 1 in some gradient's bits`);
  });
});

describe('native helper threads poll before parking (helperSpin)', { skip }, () => {
  test('polling or parking at once gives the same bits; the setting round-trips; bad values are refused', () => {
    const a = addon!;
    assert.equal(typeof a.helperSpin, 'function', 'this addon build lacks helperSpin');
    const seed = (Math.random() * 2 ** 31) | 0;
    const rng = new Rng(seed);
    const { q, k, v, dOut } = randomAttentionInputs(rng, 2, 4, 4, 300, 16);
    const x = tf.tensor2d(rng.normalArray(300 * 200), [300, 200]);
    const y = tf.tensor2d(rng.normalArray(200 * 150), [200, 150]);
    const before = a.helperSpin!();
    configureNative({ threads: 3 });
    // returns the setting it replaced and every output's bits
    const run = (micros: number) => {
      const replaced = a.helperSpin!(micros);
      assert.equal(a.helperSpin!(), micros);
      const r = tf.valueAndGrads((p: tf.Tensor, k2: tf.Tensor, v2: tf.Tensor) =>
        blockwiseAttention(p, k2, v2, { causal: true }),
      )([q, k, v], dOut);
      const bits = [r.value, ...r.grads, matmul(x, y)].map((t) =>
        Buffer.from(t.dataSync().buffer).toString('base64'),
      );
      return { replaced, bits };
    };
    try {
      const parked = run(0);
      const polling = run(2000);
      assert.equal(parked.replaced, before);
      assert.equal(polling.replaced, 0);
      assert.deepEqual(polling.bits, parked.bits, `seed ${seed}: polling helpers changed some output's bits`);
      assert.throws(() => a.helperSpin!(-1), /helperSpin: micros must be a number in 0 … 1e6/);
      assert.throws(() => a.helperSpin!(Number.NaN), /helperSpin/);
      assert.throws(
        () => a.helperSpin!('300' as unknown as number),
        /helperSpin: micros must be a number \(µs\) or absent/,
      );
      assert.equal(a.helperSpin!(), 2000, 'a refused value changed the setting');
    } finally {
      a.helperSpin!(before);
      configureNative({ threads: undefined });
    }
  });
});

describe('native matmul (sgemm) vs tfjs matMul', { skip }, () => {
  const seed = (Math.random() * 2 ** 31) | 0;
  const rng = new Rng(seed);
  const sizes = [
    [64, 64, 32],
    [97, 131, 65],
    [6, 1000, 48],
    [513, 17, 300],
    [1 + Math.floor(rng.next() * 400), 64 + Math.floor(rng.next() * 300), 32 + Math.floor(rng.next() * 300)],
  ];
  for (const [M, K, N] of sizes) {
    test(`matmul (${M}, ${K}) @ (${K}, ${N}), value and gradients (seed ${seed})`, () => {
      const a = tf.tensor2d(rng.normalArray(M * K), [M, K]);
      const b = tf.tensor2d(rng.normalArray(K * N), [K, N]);
      const dy = tf.tensor2d(rng.normalArray(M * N), [M, N]);
      const f = (x: tf.Tensor, y: tf.Tensor) => matmul(x as tf.Tensor2D, y as tf.Tensor2D);
      const before = nativeMatmulCount();
      const native = tf.valueAndGrads(f)([a, b], dy);
      // the random size may fall under the native bar (M = 1: 1·195·324 < 64·64·32): then the
      // three products (each M·N·K multiply-adds) all stay on the backend's kernel
      const expected = M * N * K >= NATIVE_MATMUL_MIN_MACS ? 3 : 0;
      assert.equal(
        nativeMatmulCount() - before,
        expected,
        `forward and both gradients run ${expected ? 'native' : "on the backend's kernel"}`,
      );
      const ref = withTfjs(() =>
        tf.valueAndGrads((x: tf.Tensor, y: tf.Tensor) => tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D))(
          [a, b],
          dy,
        ),
      );
      [native.value, ...native.grads].forEach((x, i) => {
        const want = [ref.value, ...ref.grads][i];
        assert.ok(relError(x.dataSync(), want.dataSync()) < 1e-5, `output ${i}`);
      });
    });
  }
});

describe('native BatchMatMul kernel vs the wasm kernel', { skip }, () => {
  const cases: [number[], number[], boolean, boolean][] = [
    [[3, 70, 80], [3, 80, 90], false, false],
    [[3, 80, 70], [3, 90, 80], true, true],
    [[2, 3, 70, 80], [80, 90], false, false], // one side unbatched (dense layers)
    [[100, 64], [2, 100, 48], true, false],
    [[2, 1, 70, 80], [1, 3, 80, 90], false, false], // broadcast both ways: the wasm kernel
  ];
  for (const [sa, sb, ta, tb] of cases) {
    // NOTE: tfjs's BatchMatMul gradient does not reduce broadcast batch dims: values only there
    const grads = sa.length === sb.length && sa.slice(0, -2).join() === sb.slice(0, -2).join();
    test(`tf.matMul [${sa}]${ta ? 'ᵀ' : ''} @ [${sb}]${tb ? 'ᵀ' : ''}${grads ? ' with gradients' : ''}`, () => {
      const rng = new Rng((Math.random() * 2 ** 31) | 0);
      const a = tf.tensor(rng.normalArray(sa.reduce((x, y) => x * y)), sa);
      const b = tf.tensor(rng.normalArray(sb.reduce((x, y) => x * y)), sb);
      const f = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, ta, tb);
      const dy = withTfjs(() => tf.randomNormal(f(a, b).shape));
      const run = () => {
        if (!grads) return [f(a, b).dataSync()];
        const r = tf.valueAndGrads(f)([a, b], dy);
        return [r.value, ...r.grads].map((x) => x.dataSync());
      };
      const before = nativeMatmulCount();
      const native = run();
      const calls = nativeMatmulCount() - before;
      assert.equal(calls, sa.join() === '2,1,70,80' ? 0 : grads ? 3 : 1, 'products that ran native');
      const wasm = withTfjs(run);
      native.forEach((x, i) => {
        assert.ok(relError(x, wasm[i]) < 1e-5, `output ${i}: ${relError(x, wasm[i])}`);
      });
    });
  }
});

describe('native Exp kernel vs the wasm kernel', { skip }, () => {
  test('exp over 100k values (wide range, ±inf, NaN) within 2e-6 relative of wasm, gradient too', () => {
    const rng = new Rng((Math.random() * 2 ** 31) | 0);
    const data = rng.normalArray(100_003, 30); // odd length: the vector loop's tail runs
    data.set([0, -0, 88.7, 88.8, -87.5, -104, 1e-8, Infinity, -Infinity, Number.NaN], 0);
    const x = tf.tensor1d(data);
    const run = () => {
      const r = tf.valueAndGrads((t: tf.Tensor) => tf.exp(t))([x]);
      return [r.value.dataSync(), r.grads[0].dataSync()];
    };
    const before = nativeMatmulCount();
    const native = run();
    assert.equal(nativeMatmulCount(), before, 'no matMul ran');
    const wasm = withTfjs(run);
    native.forEach((got, which) => {
      const want = wasm[which];
      for (let i = 0; i < got.length; i++) {
        if (Number.isNaN(want[i])) {
          assert.ok(Number.isNaN(got[i]), `exp(${data[i]}): got ${got[i]}, want NaN`);
          continue;
        }
        const ok = got[i] === want[i] || Math.abs(got[i] - want[i]) <= 2e-6 * Math.abs(want[i]) + 1e-37;
        assert.ok(ok, `${which ? 'gradient of ' : ''}exp(${data[i]}): native ${got[i]}, wasm ${want[i]}`);
      }
    });
  });
});

/** The addon's calls by name while `f` runs. */
function addonCalls<T>(f: () => T): { out: T; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  timeNativeCalls((name) => calls.set(name, (calls.get(name) ?? 0) + 1));
  try {
    return { out: f(), calls };
  } finally {
    timeNativeCalls(undefined);
  }
}

describe('native Tanh kernel', { skip }, () => {
  test('tanh over 100k values (both branches, tiny, large, ±inf, NaN) within 5e-7 relative of float64, gradient too', () => {
    const seed = (Math.random() * 2 ** 31) | 0;
    const rng = new Rng(seed);
    const data = rng.normalArray(100_003, 2); // odd length: the vector loop's tail runs
    for (let i = 0; i < 20_000; i++) data[i] *= 1e-4 * rng.next(); // the polynomial branch, near 0
    const specials = [0, -0, 1e-8, -1e-30, 1e-40, 0.6249, 0.625, -0.625, 8.99, 9, 9.01, 20, -20, 100];
    data.set([...specials, Infinity, -Infinity, Number.NaN], 30_000);
    const x = tf.tensor1d(data);
    const dy = tf.tensor1d(rng.normalArray(data.length));
    const run = () => {
      const r = tf.valueAndGrads((t: tf.Tensor) => tf.tanh(t))([x], dy);
      const out = [r.value.dataSync(), r.grads[0].dataSync()];
      tf.dispose([r.value, r.grads[0]]);
      return out;
    };
    const { out: native, calls } = addonCalls(run);
    assert.ok((calls.get('tanh') ?? 0) >= 1, `the addon's tanh ran (calls: ${[...calls.keys()]})`);
    const [y, dx] = native;
    const x32 = x.dataSync();
    const g32 = dy.dataSync();
    for (let i = 0; i < y.length; i++) {
      const want = Math.tanh(x32[i]);
      if (Number.isNaN(want)) {
        assert.ok(Number.isNaN(y[i]), `tanh(NaN) = ${y[i]} (seed ${seed})`);
        continue;
      }
      assert.ok(
        Math.abs(y[i] - want) <= 5e-7 * Math.abs(want) + 1e-45,
        `tanh(${x32[i]}): native ${y[i]}, float64 ${want} (seed ${seed})`,
      );
      // the gradient tfjs forms from the output, (1 − y²) · dy, checked in float64 from ours; tfjs
      // rounds y² to float32 first, so 1 − y² is off by up to 2^-23 absolute where y is near ±1
      const g = (1 - y[i] * y[i]) * g32[i];
      assert.ok(
        Math.abs(dx[i] - g) <= 1e-6 * Math.abs(g) + 2.5e-7 * Math.abs(g32[i]),
        `d tanh(${x32[i]}): ${dx[i]}, want ${g} (seed ${seed})`,
      );
    }
    tf.dispose([x, dy]);
  });
});

describe('scatterAddRows (the embedding gradient) on wasm and cpu, native and JS', { skip }, () => {
  /** Σ_k [ids[k] = r] src[k] in float64, the reference. */
  function reference(ids: Int32Array, src: Float32Array, width: number, rows: number): Float64Array {
    const out = new Float64Array(rows * width);
    ids.forEach((r, k) => {
      for (let d = 0; d < width; d++) out[r * width + d] += src[k * width + d];
    });
    return out;
  }

  test('random tables with repeated ids match float64; a bad id is refused and nothing leaks', async () => {
    const seed = (Math.random() * 2 ** 31) | 0;
    const rng = new Rng(seed);
    for (let trial = 0; trial < 6; trial++) {
      // NOTE: the first trial is small: tfjs's unsortedSegmentSum on cpu is O(rows · n · width)
      const scale = trial === 0 ? 0.1 : 1;
      const rows = 1 + Math.floor(rng.next() * 300 * scale);
      const width = 1 + Math.floor(rng.next() * 70);
      const n = 1 + Math.floor(rng.next() * 3000 * scale); // more ids than rows: ids repeat
      const ids = Int32Array.from({ length: n }, () => Math.floor(rng.next() * rows));
      const src = rng.normalArray(n * width);
      const want = reference(ids, src, width, rows);
      const what = `rows ${rows} width ${width} n ${n} (seed ${seed})`;
      // on the first trial cpu first as tfjs-node and webgl run it, without our kernel (tfjs's
      // unsortedSegmentSum), then with it installed (which lasts)
      const cases = [
        ['cpu', false],
        ['cpu', true],
        ['wasm', true],
      ] as const;
      for (const [backend, ours] of cases.slice(trial === 0 ? 0 : 1)) {
        await tf.setBackend(backend);
        if (ours) installNativeKernels(backend);
        try {
          const run = () => {
            const s = tf.tensor2d(src, [n, width]);
            const i = tf.tensor1d(ids, 'int32');
            const out = scatterAddRows(s, i, rows);
            const values = out.dataSync();
            assert.deepEqual(out.shape, [rows, width], what);
            tf.dispose([s, i, out]);
            return values;
          };
          const { out: native, calls } = addonCalls(run);
          assert.equal(calls.get('scatterAddRows') ?? 0, ours ? 1 : 0, `${backend}: the addon ran (${what})`);
          const js = withTfjs(run);
          assert.ok(relError(native, want) < 1e-6, `${backend} native: ${what}`);
          assert.ok(relError(js, want) < 1e-6, `${backend} JS: ${what}`);
          // a bad id: a clear error from either path, and no tensor or heap block left behind
          const bad = Int32Array.from(ids);
          bad[n - 1] = rows;
          const s = tf.tensor2d(src, [n, width]);
          const i = tf.tensor1d(bad, 'int32');
          const before = tf.memory().numTensors;
          const bytes = tf.memory().numBytes;
          if (ours)
            for (const path of [(f: () => unknown) => f(), withTfjs])
              assert.throws(
                () => path(() => scatterAddRows(s, i, rows)),
                new RegExp(`ids\\[${n - 1}\\] = ${rows} is outside the table's ${rows} rows`),
                `${backend}: ${what}`,
              );
          assert.equal(tf.memory().numTensors, before, `${backend}: tensors left after the error`);
          assert.equal(tf.memory().numBytes, bytes, `${backend}: bytes left after the error`);
          tf.dispose([s, i]);
        } finally {
          await tf.setBackend('wasm');
        }
      }
    }
  });
});

describe('native ring on worker devices vs tfjs ring', { skip }, () => {
  let group: RingGroup;
  before(async () => {
    group = await RingGroup.create({ devices: 2, backend: 'wasm' });
  });
  after(async () => {
    await group.dispose();
  });
  test('ring N=2 striped causal gqa=2 L=301 D=16 segments: native and tfjs devices agree', async () => {
    const rng = new Rng((Math.random() * 2 ** 31) | 0);
    const [B, H, Hk, T, D] = [2, 4, 2, 301, 16];
    const segmentIds = Int32Array.from({ length: B * T }, (_, i) => Math.floor((i % T) / 97));
    const q = tf.tensor4d(rng.normalArray(B * H * T * D), [B, H, T, D]);
    const k = tf.tensor4d(rng.normalArray(B * Hk * T * D), [B, Hk, T, D]);
    const v = tf.tensor4d(rng.normalArray(B * Hk * T * D), [B, Hk, T, D]);
    const dOut = tf.tensor4d(rng.normalArray(B * H * T * D), [B, H, T, D]);
    const opts = { causal: true, blockSize: 64, segmentIds, layout: 'striped' as const, dOut };
    const native = await ringAttention(group, q, k, v, opts);
    configureNative({ enabled: false });
    // NOTE: a group takes the main thread's settings when it starts, so a new one runs tfjs
    const tfjsGroup = await RingGroup.create({ devices: 2, backend: 'wasm' });
    configureNative({ enabled: undefined });
    try {
      const ref = await ringAttention(tfjsGroup, q, k, v, opts);
      const pick = (r: typeof ref) => [r.out, r.dq!, r.dk!, r.dv!].map((x) => x.dataSync());
      const a = pick(native);
      const b = pick(ref);
      ['out', 'dq', 'dk', 'dv'].forEach((what, i) => {
        assert.ok(relError(a[i], b[i]) < TOL, `${what}: ${relError(a[i], b[i])}`);
      });
    } finally {
      await tfjsGroup.dispose();
    }
  });
});

/** Runs a module snippet in a fresh Node process at the repository root. */
function node(script: string, env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 120_000,
  });
}

describe('native fallback', () => {
  const script = `
    import * as tf from '@tensorflow/tfjs';
    import { initBackend } from './dist/native/index.js';
    import { blockwiseAttention, matmul } from './dist/ring/index.js';
    await initBackend({ backend: 'wasm', notice: true });
    const x = tf.tensor4d(Array.from({ length: 2 * 70 * 8 }, (_, i) => Math.sin(i)), [1, 2, 70, 8]);
    const out = blockwiseAttention(x, x, x, { causal: true, blockSize: 16 });
    const m = matmul(tf.reshape(x, [140, 8]), tf.reshape(x, [8, 140]));
    console.log(JSON.stringify([...out.dataSync(), ...m.dataSync().slice(0, 50)]));
  `;
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ring-native-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('an unloadable addon prints one notice line and the tfjs kernels compute the same', () => {
    const bad = join(dir, 'ring_native.node');
    writeFileSync(bad, 'not a shared library');
    const broken = node(script, { RING_NATIVE_ADDON: bad, RING_NATIVE: '' });
    assert.equal(broken.status, 0, broken.stderr);
    const notices = broken.stderr.split('\n').filter((l) => l.startsWith('native: '));
    assert.equal(notices.length, 1, broken.stderr);
    assert.match(notices[0], /^native: kernels unavailable \(.+\); the tfjs kernels run instead$/);
    assert.match(broken.stderr, /backend: wasm .*native kernels unavailable/);
    const missing = node(script, { RING_NATIVE_ADDON: join(dir, 'absent.node'), RING_NATIVE: '' });
    assert.equal(missing.status, 0, missing.stderr);
    assert.match(missing.stderr, /native: kernels unavailable \(.*absent\.node does not exist/);
    // an addon built from older source (every function, an older abi()) is refused by name
    const old = join(dir, 'old-addon.cjs');
    writeFileSync(
      old,
      `const f = () => {}; module.exports = { ${['attnForward', 'attnBackward', 'attnFinalize', 'rowDot', 'sgemm', 'exp', 'simd', 'nativeBytes', 'resetNativePeak'].map((n) => `${n}: f`).join(', ')}, abi: () => 3 };`,
    );
    const stale = node(script, { RING_NATIVE_ADDON: old, RING_NATIVE: '' });
    assert.equal(stale.status, 0, stale.stderr);
    assert.match(
      stale.stderr,
      /native: kernels unavailable \(.*old-addon\.cjs speaks addon ABI 3, this code needs \d+ \(npm run build rebuilds it\)/,
    );
    assert.deepEqual(JSON.parse(stale.stdout), JSON.parse(broken.stdout));
    const off = node(script, { RING_NATIVE: '0' });
    assert.equal(off.status, 0, off.stderr);
    assert.doesNotMatch(off.stderr, /^native: /m);
    assert.match(off.stderr, /native kernels off/);
    const fallback = JSON.parse(broken.stdout) as number[];
    assert.deepEqual(JSON.parse(missing.stdout), fallback);
    assert.deepEqual(JSON.parse(off.stdout), fallback);
    if (addon) {
      const on = node(script, { RING_NATIVE: '' });
      assert.equal(on.status, 0, on.stderr);
      assert.match(on.stderr, /native kernels (avx512f\+)?avx2\+fma|native kernels scalar/);
      assert.ok(relError(JSON.parse(on.stdout) as number[], fallback) < TOL);
    }
  });
});

describe('ring/ suites with RING_NATIVE=0 (both paths in CI)', { skip }, () => {
  test('attention, ops, ring, transformer pass on the tfjs kernels', () => {
    const files = ['attention', 'ops', 'ring', 'transformer'].map((f) => `dist/test/ring/${f}.test.js`);
    // NOTE: without NODE_TEST_CONTEXT, or the child runner reports to this one instead of running
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const r = spawnSync(
      process.execPath,
      ['--test', '--test-concurrency=2', '--test-reporter=tap', ...files],
      {
        cwd: root,
        encoding: 'utf8',
        env: { ...env, RING_NATIVE: '0' },
        timeout: 600_000,
      },
    );
    const tail = `${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`;
    assert.equal(r.status, 0, tail);
    const passed = Number(/^# pass (\d+)$/m.exec(r.stdout)?.[1] ?? 0);
    assert.ok(passed >= 50, `only ${passed} tests ran\n${tail}`);
    assert.match(r.stdout, /^# fail 0$/m);
  });
});
