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
import { collectGarbage, reserveWasmHeap, withPeakBytes } from '../../native/index.js';

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

/**
 * Backends whose kernels have run when an op returns (wasm, cpu): their timings stop there, as
 * the ring's (ring/attention/ring.ts) and PyTorch's do, without the copy of the results into JS
 * arrays that the benchmark reads afterwards. Elsewhere (a GPU queues its kernels) reading the
 * values is what waits for them, so it stays inside the timing.
 */
const SYNCHRONOUS_BACKENDS = new Set(['wasm', 'cpu']);

export async function singleAttentionTask(a: SingleTaskArgs): Promise<AttentionTaskResult> {
  const f = (x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) => IMPLS[a.impl](x, y, z, a.options);
  const readTimed = !SYNCHRONOUS_BACKENDS.has(tf.getBackend());
  let fwdMs = 0;
  let bwdMs = 0;
  const compute = () => {
    // the call's tensors in one growth of the heap: q, out (+ dOut, dq) and k, v (+ dk, dv)
    const qBytes = a.B * a.H * a.T * a.D * 4;
    const kvBytes = a.B * a.Hk * a.T * a.D * 4;
    reserveWasmHeap((a.dOut ? 4 : 2) * (qBytes + kvBytes));
    const q = tf.tensor4d(a.q, [a.B, a.H, a.T, a.D]);
    const k = tf.tensor4d(a.k, [a.B, a.Hk, a.T, a.D]);
    const v = tf.tensor4d(a.v, [a.B, a.Hk, a.T, a.D]);
    const dOut = a.dOut ? tf.tensor4d(a.dOut, [a.B, a.H, a.T, a.D]) : undefined;
    // NOTE: the inputs are in the backend's memory now; their JS copies would double them until
    // V8 collects them, which it had not done by the end of a call (issue 20: 96 MiB at L = 16K)
    a.q = a.k = a.v = RELEASED;
    a.dOut = undefined;
    collectGarbage();
    try {
      const started = performance.now();
      const out = f(q, k, v);
      if (!readTimed) fwdMs = performance.now() - started;
      let data: Float32Array | undefined = out.dataSync() as Float32Array;
      if (readTimed) fwdMs = performance.now() - started;
      out.dispose();
      if (!dOut) return { out: data };
      // NOTE: the output is read again from the backward's own forward (the same op on the same
      // inputs: the same values), so this copy is not held through the backward (issue 20: 8 MiB
      // at L = 4096)
      data = undefined;
      collectGarbage();
      // NOTE: autodiff needs its own forward (the tape); backward time = total − forward
      const both = performance.now();
      const { value, grads } = tf.valueAndGrads(f)([q, k, v], dOut);
      const computedMs = performance.now() - both;
      // NOTE: the call's dead arrays (a ring's travelling buffers) go before the results are read
      // into new ones: V8 had not collected them by then (issue 20: 64 MiB, ring N=2 L=16K)
      collectGarbage();
      const read = performance.now();
      const result = {
        out: value.dataSync() as Float32Array,
        dq: grads[0].dataSync() as Float32Array,
        dk: grads[1].dataSync() as Float32Array,
        dv: grads[2].dataSync() as Float32Array,
      };
      const readMs = readTimed ? performance.now() - read : 0;
      bwdMs = Math.max(0, computedMs + readMs - fwdMs);
      tf.dispose([value, ...grads]);
      return result;
    } finally {
      tf.dispose([q, k, v, ...(dOut ? [dOut] : [])]);
    }
  };
  const { result, peakBytes, memory } = await withPeakBytes(compute, a.measureMemory);
  return { ...result, fwdMs, bwdMs, peakBytes, memory };
}
