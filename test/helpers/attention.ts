/** Random attention problems and their reference answers, shared by the ring/ tests. */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { type RefResult, referenceAttention } from './reference.js';

export interface Case {
  B: number;
  H: number;
  Hk: number;
  T: number;
  D: number;
  causal: boolean;
  /** Segments of `segmentLength` tokens (shifted per batch row), or none. */
  segmentLength?: number;
}

export interface Problem extends Case {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  dOut: Float32Array;
  segments?: Int32Array;
}

/** Fresh random inputs on every run (STYLE §8); the seed is printed on failure by the caller. */
export function makeProblem(c: Case, seed = (Math.random() * 2 ** 31) | 0): Problem & { seed: number } {
  const rng = new Rng(seed);
  const { B, H, Hk, T, D } = c;
  const segments = c.segmentLength
    ? Int32Array.from({ length: B * T }, (_, i) =>
        Math.floor(((i % T) + 3 * Math.floor(i / T)) / c.segmentLength!),
      )
    : undefined;
  return {
    ...c,
    seed,
    q: rng.normalArray(B * H * T * D),
    k: rng.normalArray(B * Hk * T * D),
    v: rng.normalArray(B * Hk * T * D),
    dOut: rng.normalArray(B * H * T * D),
    segments,
  };
}

export function tensors(p: Problem) {
  return {
    q: tf.tensor4d(p.q, [p.B, p.H, p.T, p.D]),
    k: tf.tensor4d(p.k, [p.B, p.Hk, p.T, p.D]),
    v: tf.tensor4d(p.v, [p.B, p.Hk, p.T, p.D]),
    dOut: tf.tensor4d(p.dOut, [p.B, p.H, p.T, p.D]),
  };
}

export function reference(p: Problem): RefResult {
  return referenceAttention({ ...p, segments: p.segments });
}

export function caseName(c: Case, extra = ''): string {
  return `${extra}B=${c.B} H=${c.H} gqa=${c.H / c.Hk} L=${c.T} D=${c.D}${c.causal ? ' causal' : ''}${c.segmentLength ? ` segments/${c.segmentLength}` : ''}`;
}
