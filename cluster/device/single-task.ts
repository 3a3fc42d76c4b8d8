/**
 * Runs one of the single-device implementations (vanilla, memeff, blockwise) on a device, timed
 * and measured the same way as the ring, so benchmarks compare like with like.
 */
import * as tf from '@tensorflow/tfjs';
import {
  type AttentionOptions,
  blockwiseAttention,
  memeffAttention,
  vanillaAttention,
} from '../../ring/index.js';
import type { AttentionTaskResult } from './attention-task.js';
import { withPeakBytes } from '../../native/index.js';

export interface SingleTaskArgs {
  impl: 'vanilla' | 'memeff' | 'blockwise';
  q: Float32Array; // (B, H, T, D)
  k: Float32Array; // (B, Hk, T, D)
  v: Float32Array;
  dOut?: Float32Array;
  B: number;
  H: number;
  Hk: number;
  T: number;
  D: number;
  options: AttentionOptions;
  measureMemory: boolean;
}

/** What an input array is replaced by once its tensor holds it (the task's args are its own copy). */
const RELEASED = new Float32Array(0);

const IMPLS = { vanilla: vanillaAttention, memeff: memeffAttention, blockwise: blockwiseAttention };

export async function singleAttentionTask(a: SingleTaskArgs): Promise<AttentionTaskResult> {
  const f = (x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) => IMPLS[a.impl](x, y, z, a.options);
  let fwdMs = 0;
  let bwdMs = 0;
  const compute = () => {
    const q = tf.tensor4d(a.q, [a.B, a.H, a.T, a.D]);
    const k = tf.tensor4d(a.k, [a.B, a.Hk, a.T, a.D]);
    const v = tf.tensor4d(a.v, [a.B, a.Hk, a.T, a.D]);
    // NOTE: the inputs are in the backend's memory now; their JS copies would double them (issue 20)
    a.q = a.k = a.v = RELEASED;
    try {
      const started = performance.now();
      const out = f(q, k, v);
      const data = out.dataSync() as Float32Array;
      fwdMs = performance.now() - started;
      out.dispose();
      if (!a.dOut) return { out: data };
      const dOut = tf.tensor4d(a.dOut, [a.B, a.H, a.T, a.D]);
      a.dOut = RELEASED;
      // NOTE: autodiff needs its own forward (the tape); backward time = total − forward
      const both = performance.now();
      const { value, grads } = tf.valueAndGrads(f)([q, k, v], dOut);
      const result = {
        out: data,
        dq: grads[0].dataSync() as Float32Array,
        dk: grads[1].dataSync() as Float32Array,
        dv: grads[2].dataSync() as Float32Array,
      };
      bwdMs = Math.max(0, performance.now() - both - fwdMs);
      tf.dispose([value, ...grads, dOut]);
      return result;
    } finally {
      tf.dispose([q, k, v]);
    }
  };
  const { result, peakBytes, memory } = await withPeakBytes(compute, a.measureMemory);
  return { ...result, fwdMs, bwdMs, peakBytes, memory };
}
