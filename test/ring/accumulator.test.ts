// ring/attention/accumulator.ts: the one accumulator interface the blockwise and ring schedules
// are written against, served by both engines (the tfjs engine always, the native kernels where
// the addon loads). One query side against N key/value chunks fed in ring order (this device's
// own chunk first), global positions with an offset, contiguous and striped, causal, GQA,
// segments: output and dQ, dK, dV against a float64 reference over all keys at once, and the two
// engines against each other.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { configureNative, initBackend, nativeAddon } from '../../native/index.js';
import { attentionEngine } from '../../ring/attention/accumulator.js';
import type { TokenSide } from '../../ring/attention/mask.js';
import { reference64 } from '../helpers/chunk-reference.js';
import { relError } from '../helpers/reference.js';

const TOL = 1e-4;

before(async () => {
  await initBackend({ backend: 'wasm' });
});

interface ChunkCase {
  N: number;
  c: number;
  B: number;
  H: number;
  Hk: number;
  D: number;
  causal: boolean;
  striped: boolean;
  segments: boolean;
  blockSize: number;
}

const CASES: ChunkCase[] = [
  { N: 1, c: 31, B: 2, H: 2, Hk: 1, D: 8, causal: true, striped: false, segments: true, blockSize: 16 },
  { N: 2, c: 24, B: 1, H: 2, Hk: 2, D: 8, causal: true, striped: false, segments: false, blockSize: 8 },
  { N: 3, c: 17, B: 2, H: 4, Hk: 2, D: 16, causal: true, striped: true, segments: true, blockSize: 5 },
  { N: 4, c: 9, B: 1, H: 3, Hk: 1, D: 13, causal: false, striped: true, segments: false, blockSize: 4 },
];

const nameOf = (k: ChunkCase) =>
  `N=${k.N} c=${k.c} B=${k.B} H=${k.H} gqa=${k.H / k.Hk} D=${k.D} C=${k.blockSize}${k.causal ? ' causal' : ''}${k.striped ? ' striped' : ' contiguous'}${k.segments ? ' segments' : ''}`;

type Engine = 'tfjs' | 'native';
const ENGINES: Engine[] = nativeAddon() ? ['tfjs', 'native'] : ['tfjs'];

/** Chunks of one device's view of the ring, with fresh random values. */
function makeChunks(k: ChunkCase, rng: Rng) {
  const { N, c, B, H, Hk, D } = k;
  const offset = Math.floor(rng.next() * 1000); // global positions need not start at 0
  const sides: TokenSide[] = Array.from({ length: N }, (_, r) => {
    const positions = Int32Array.from({ length: c }, (_, t) => offset + (k.striped ? t * N + r : r * c + t));
    // segments of 11 positions, shifted per batch row so rows differ
    const segments = k.segments
      ? Int32Array.from({ length: B * c }, (_, i) =>
          Math.floor((positions[i % c] + 5 * Math.floor(i / c)) / 11),
        )
      : undefined;
    return { positions, segments };
  });
  return {
    sides,
    rank: Math.floor(rng.next() * N),
    q: rng.normalArray(B * H * c * D),
    dOut: rng.normalArray(B * H * c * D),
    ks: Array.from({ length: N }, () => rng.normalArray(B * Hk * c * D)),
    vs: Array.from({ length: N }, () => rng.normalArray(B * Hk * c * D)),
  };
}

/** Forward and backward through the interface, chunks in ring order; dK, dV per chunk. */
function runEngine(engine: Engine, k: ChunkCase, x: ReturnType<typeof makeChunks>) {
  const { N, c, B, H, D } = k;
  const run = () => {
    const e = attentionEngine({
      B,
      H,
      Hk: k.Hk,
      D,
      scale: 1 / Math.sqrt(D),
      causal: k.causal,
      blockSize: k.blockSize,
    });
    const order = Array.from({ length: N }, (_, s) => (x.rank - s + N) % N);
    const q = tf.tensor4d(x.q, [B, H, c, D]);
    const dOut = tf.tensor4d(x.dOut, [B, H, c, D]);
    const fwd = e.forward(q, x.sides[x.rank]);
    for (const owner of order) fwd.accumulate(x.ks[owner], x.vs[owner], x.sides[owner]);
    const { out, saved, backward } = fwd.finish();
    const bwd = backward(q, saved, dOut);
    const dk = x.ks.map((a) => new Float32Array(a.length));
    const dv = x.vs.map((a) => new Float32Array(a.length));
    for (const owner of order) bwd.accumulate(x.ks[owner], x.vs[owner], x.sides[owner], dk[owner], dv[owner]);
    const dq = bwd.finish();
    const result = { out: out.dataSync() as Float32Array, dq: dq.dataSync() as Float32Array, dk, dv };
    tf.dispose([q, dOut, out, dq, ...saved]);
    return result;
  };
  if (engine === 'native') return run();
  configureNative({ enabled: false });
  try {
    return run();
  } finally {
    configureNative({ enabled: undefined });
  }
}

/** Chunks (B, Hk, c, D) side by side along the token axis → (B, Hk, N·c, D). */
function cat(parts: Float32Array[], heads: number, c: number, D: number): Float32Array {
  const T = parts.length * c;
  const x = new Float32Array(heads * T * D);
  parts.forEach((part, r) => {
    for (let h = 0; h < heads; h++) x.set(part.subarray(h * c * D, (h + 1) * c * D), (h * T + r * c) * D);
  });
  return x;
}

describe('accumulator interface: both engines on ring chunks vs float64', () => {
  for (const k of CASES) {
    const seed = (Math.random() * 2 ** 31) | 0;
    test(`${nameOf(k)} engines ${ENGINES.join('+')} (seed ${seed})`, () => {
      const x = makeChunks(k, new Rng(seed));
      const { N, c, B, Hk, D } = k;
      const T = N * c;
      const all: TokenSide = {
        positions: Int32Array.from({ length: T }, (_, t) => x.sides[Math.floor(t / c)].positions[t % c]),
        segments: k.segments
          ? Int32Array.from({ length: B * T }, (_, i) => {
              const t = i % T;
              return x.sides[Math.floor(t / c)].segments![Math.floor(i / T) * c + (t % c)];
            })
          : undefined,
      };
      const ref = reference64(
        k,
        x.q,
        cat(x.ks, B * Hk, c, D),
        cat(x.vs, B * Hk, c, D),
        x.dOut,
        x.sides[x.rank],
        all,
      );
      const results = ENGINES.map((engine) => {
        const r = runEngine(engine, k, x);
        const got = { out: r.out, dq: r.dq, dk: cat(r.dk, B * Hk, c, D), dv: cat(r.dv, B * Hk, c, D) };
        for (const what of ['out', 'dq', 'dk', 'dv'] as const) {
          const err = relError(got[what], ref[what]);
          assert.ok(err < TOL, `${engine} ${what} vs float64: ${err} (seed ${seed})`);
        }
        return got;
      });
      if (results.length === 2)
        for (const what of ['out', 'dq', 'dk', 'dv'] as const) {
          const err = relError(results[0][what], results[1][what]);
          assert.ok(err < TOL, `tfjs vs native ${what}: ${err} (seed ${seed})`);
        }
    });
  }
});
