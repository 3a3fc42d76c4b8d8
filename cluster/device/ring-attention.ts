/**
 * `ringAttention`: attention over a group of N devices, called from the main thread with whole
 * (B, H, T, D) tensors. The sequence is padded to a multiple of N when needed (the padding gets
 * a segment of its own, so no real token sees it and it is cut from every result), split by the
 * layout (contiguous blocks, or striped: token t on device t mod N, which balances causal work),
 * and each device runs the ring op on its shard.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../../common/index.js';
import {
  type AttentionOptions,
  checkAttentionInputs,
  type RingLayout,
  tokenIndices,
} from '../../ring/index.js';
import type { AttentionTaskArgs, AttentionTaskResult } from './attention-task.js';
import type { RingGroup } from './group.js';
import type { DeviceMemory } from '../../native/index.js';

export interface RingCallOptions extends AttentionOptions {
  /** Token layout over devices (default contiguous, as the paper; striped balances causal work). */
  layout?: RingLayout;
  /** Gradient of the output: when given, the backward pass runs too and dq, dk, dv come back. */
  dOut?: tf.Tensor;
  /** Measure each device's memory at its peak (native/memory.ts). */
  measureMemory?: boolean;
}

export interface RingCallResult {
  out: tf.Tensor4D;
  dq?: tf.Tensor4D;
  dk?: tf.Tensor4D;
  dv?: tf.Tensor4D;
  /** Slowest device's forward and backward compute time (ms). */
  fwdMs: number;
  bwdMs: number;
  /**
   * What each device held at its peak (wasm heap, JS, native buffers; native/memory.ts)
   * plus its receive buffers; 0 without measureMemory.
   */
  peakBytesPerDevice: number[];
  /** Each device's peak live tensor bytes (tf.profile). */
  peakTensorBytesPerDevice: number[];
  /** Each device's figures by where the bytes live (with measureMemory). */
  memoryPerDevice?: DeviceMemory[];
  /** Bytes of the receive buffers each device holds. */
  commBytesPerDevice: number;
  /** Sequence length after padding to a multiple of N. */
  paddedSeqLen: number;
}

/** Segment id given to padding tokens: never equal to a real token's. */
const PAD_SEGMENT = -2147483648;

/** Copies rows (B·H of them, each T × D) at token indices `idx` into a new (B, H, idx.length, D) array. */
export function gatherTokens(
  src: Float32Array,
  BH: number,
  T: number,
  D: number,
  idx: Int32Array,
): Float32Array {
  const c = idx.length;
  const out = new Float32Array(BH * c * D);
  for (let bh = 0; bh < BH; bh++) {
    for (let t = 0; t < c; t++) {
      const from = (bh * T + idx[t]) * D;
      out.set(src.subarray(from, from + D), (bh * c + t) * D);
    }
  }
  return out;
}

/** Inverse of gatherTokens into `dst` (B, H, T, D); tokens at or past `limit` are dropped. */
export function scatterTokens(
  dst: Float32Array,
  part: Float32Array,
  BH: number,
  T: number,
  D: number,
  idx: Int32Array,
  limit: number,
): void {
  const c = idx.length;
  for (let bh = 0; bh < BH; bh++) {
    for (let t = 0; t < c; t++) {
      if (idx[t] >= limit) continue;
      const to = (bh * T + idx[t]) * D;
      dst.set(part.subarray((bh * c + t) * D, (bh * c + t + 1) * D), to);
    }
  }
}

/** Pads (B·H, T, D) rows to (B·H, Tp, D) with zeros. */
function padTokens(src: Float32Array, BH: number, T: number, Tp: number, D: number): Float32Array {
  if (Tp === T) return src;
  const out = new Float32Array(BH * Tp * D);
  for (let bh = 0; bh < BH; bh++) out.set(src.subarray(bh * T * D, (bh + 1) * T * D), bh * Tp * D);
  return out;
}

/** q (B, H, T, D), k and v (B, Hk, T, D) → (B, H, T, D), computed by the group's N devices. */
export async function ringAttention(
  group: RingGroup,
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  o: RingCallOptions = {},
): Promise<RingCallResult> {
  const shape = checkAttentionInputs('ringAttention', q, k, v, o);
  const { B, H, Hk, Tq: T, Tk, D, blockSize, causal } = shape;
  const N = group.devices;
  if (T !== Tk)
    throw new InputError(`ringAttention: queries (${T}) and keys (${Tk}) must have the same length`);
  if (T < N)
    throw new InputError(
      `ringAttention: ${N} devices need at least ${N} tokens (one per device); got sequence length ${T}`,
    );
  const layout = o.layout ?? 'contiguous';
  if (layout !== 'contiguous' && layout !== 'striped')
    throw new InputError(`ringAttention: layout must be 'contiguous' or 'striped'; got '${String(layout)}'`);
  if (o.dOut && o.dOut.shape.join() !== q.shape.join())
    throw new InputError(`ringAttention: dOut must have q's shape [${q.shape}]; got [${o.dOut.shape}]`);

  const Tp = Math.ceil(T / N) * N;
  const c = Tp / N;
  let segmentIds = o.segmentIds;
  if (Tp !== T) {
    // NOTE: padding gets a segment of its own, so real tokens never attend to it (issue 2).
    const seg = new Int32Array(B * Tp).fill(PAD_SEGMENT);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < T; t++) seg[b * Tp + t] = o.segmentIds ? o.segmentIds[b * T + t] : 0;
    segmentIds = seg;
  }
  const qData = padTokens(q.dataSync() as Float32Array, B * H, T, Tp, D);
  const kData = padTokens(k.dataSync() as Float32Array, B * Hk, T, Tp, D);
  const vData = padTokens(v.dataSync() as Float32Array, B * Hk, T, Tp, D);
  const dData = o.dOut ? padTokens(o.dOut.dataSync() as Float32Array, B * H, T, Tp, D) : undefined;

  const indices = Array.from({ length: N }, (_, r) => tokenIndices(r, N, Tp, layout));
  const args: AttentionTaskArgs[] = indices.map((idx) => ({
    q: gatherTokens(qData, B * H, Tp, D, idx),
    k: gatherTokens(kData, B * Hk, Tp, D, idx),
    v: gatherTokens(vData, B * Hk, Tp, D, idx),
    dOut: dData ? gatherTokens(dData, B * H, Tp, D, idx) : undefined,
    B,
    H,
    Hk,
    c,
    D,
    seqLen: Tp,
    layout,
    causal,
    blockSize: Math.min(blockSize, c),
    scale: o.scale,
    segmentIds,
    measureMemory: o.measureMemory ?? false,
  }));
  const transfer = args.map((a) =>
    [a.q, a.k, a.v, ...(a.dOut ? [a.dOut] : [])].map((x) => x.buffer as ArrayBuffer),
  );
  // the largest message: k, v and their gradient accumulators travel in pairs (backward)
  const messageFloats = 2 * B * Hk * c * D;
  const results = await group.run<AttentionTaskArgs, AttentionTaskResult>(
    new URL('./attention-task.js', import.meta.url),
    'attentionTask',
    args,
    messageFloats,
    transfer,
  );

  const assemble = (
    pick: (r: AttentionTaskResult) => Float32Array | undefined,
    heads: number,
  ): tf.Tensor4D | undefined => {
    if (!pick(results[0])) return undefined;
    const full = new Float32Array(B * heads * T * D);
    results.forEach((r, rank) => {
      scatterTokens(full, pick(r)!, B * heads, T, D, indices[rank], T);
    });
    return tf.tensor4d(full, [B, heads, T, D]);
  };
  return {
    out: assemble((r) => r.out, H)!,
    dq: assemble((r) => r.dq, H),
    dk: assemble((r) => r.dk, Hk),
    dv: assemble((r) => r.dv, Hk),
    fwdMs: Math.max(...results.map((r) => r.fwdMs)),
    bwdMs: Math.max(...results.map((r) => r.bwdMs)),
    // NOTE: the receive slots are SharedArrayBuffers the main thread made: no device's isolate counts them
    peakBytesPerDevice: results.map((r) => (r.memory ? r.memory.totalBytes + group.commBytesPerDevice : 0)),
    peakTensorBytesPerDevice: results.map((r) => r.peakBytes),
    memoryPerDevice: results.every((r) => r.memory) ? results.map((r) => r.memory!) : undefined,
    commBytesPerDevice: group.commBytesPerDevice,
    paddedSeqLen: Tp,
  };
}
