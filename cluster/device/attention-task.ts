/**
 * The device side of `ringAttention`: builds this device's shard tensors, runs the ring op
 * forward (and backward), measures peak tensor bytes, and returns raw arrays.
 */
import * as tf from '@tensorflow/tfjs';
import { type DeviceContext, ringAttentionDevice, type RingLayout } from '../../ring/index.js';
import { collectGarbage, type DeviceMemory, reserveWasmHeap, withPeakBytes } from '../../native/index.js';

export interface AttentionTaskArgs {
  q: Float32Array; // (B, H, c, D)
  k: Float32Array; // (B, Hk, c, D)
  v: Float32Array;
  dOut?: Float32Array; // (B, H, c, D)
  B: number;
  H: number;
  Hk: number;
  c: number;
  D: number;
  seqLen: number;
  layout: RingLayout;
  causal: boolean;
  blockSize: number;
  scale?: number;
  segmentIds?: Int32Array;
  measureMemory: boolean;
}

export interface AttentionTaskResult {
  out: Float32Array;
  dq?: Float32Array;
  dk?: Float32Array;
  dv?: Float32Array;
  fwdMs: number;
  bwdMs: number;
  /** Peak tensor bytes the call added (tf.profile). */
  peakBytes: number;
  /** What the device held at its peak (with measureMemory). */
  memory?: DeviceMemory;
}

/** What an input array is replaced by once its tensor holds it (the task's args are its own copy). */
const RELEASED = new Float32Array(0);

export async function attentionTask(a: AttentionTaskArgs, ctx: DeviceContext): Promise<AttentionTaskResult> {
  const timings = { fwdMs: 0, bwdMs: 0 };
  const options = {
    transport: ctx.transport,
    seqLen: a.seqLen,
    layout: a.layout,
    causal: a.causal,
    blockSize: a.blockSize,
    scale: a.scale,
    segmentIds: a.segmentIds,
    timings,
  };
  const compute = (): Omit<AttentionTaskResult, 'fwdMs' | 'bwdMs' | 'peakBytes' | 'memory'> => {
    // the call's tensors in one growth of the heap: q, out (+ dOut, dq) and k, v (+ dk, dv)
    const qBytes = a.B * a.H * a.c * a.D * 4;
    const kvBytes = a.B * a.Hk * a.c * a.D * 4;
    reserveWasmHeap((a.dOut ? 4 : 2) * (qBytes + kvBytes));
    const q = tf.tensor4d(a.q, [a.B, a.H, a.c, a.D]);
    const k = tf.tensor4d(a.k, [a.B, a.Hk, a.c, a.D]);
    const v = tf.tensor4d(a.v, [a.B, a.Hk, a.c, a.D]);
    const dOut = a.dOut ? tf.tensor4d(a.dOut, [a.B, a.H, a.c, a.D]) : undefined;
    // NOTE: the inputs are in the backend's memory now; their JS copies would double them until
    // V8 collects them (issue 20)
    a.q = a.k = a.v = RELEASED;
    a.dOut = undefined;
    collectGarbage();
    try {
      if (!dOut) {
        const out = ringAttentionDevice(q, k, v, options);
        const data = out.dataSync() as Float32Array;
        out.dispose();
        return { out: data };
      }
      const f = (x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) => ringAttentionDevice(x, y, z, options);
      const { value, grads } = tf.valueAndGrads(f)([q, k, v], dOut);
      // NOTE: the call's dead arrays (a ring's travelling buffers) go before the results are read
      // into new ones: V8 had not collected them by then (issue 20: 64 MiB, ring N=2 L=16K)
      collectGarbage();
      const result = {
        out: value.dataSync() as Float32Array,
        dq: grads[0].dataSync() as Float32Array,
        dk: grads[1].dataSync() as Float32Array,
        dv: grads[2].dataSync() as Float32Array,
      };
      tf.dispose([value, ...grads]);
      return result;
    } finally {
      tf.dispose([q, k, v, ...(dOut ? [dOut] : [])]);
    }
  };
  const { result, peakBytes, memory } = await withPeakBytes(compute, a.measureMemory);
  return { ...result, ...timings, peakBytes, memory };
}
