/**
 * Ring attention on one device (paper Algorithm 1). Each of N devices holds one block of the
 * sequence: its queries, keys and values. For N steps it attends its queries to the key/value
 * block it holds, while that block is already on its way to the next device; after N − 1
 * rotations every query has seen every key. The backward pass rotates k, v and the dk, dv
 * accumulators the same way, so after N steps each device's dk, dv come home.
 *
 * This is a tfjs op with a custom gradient, called inside a device (worker thread or process)
 * with that device's shard; `RingGroup` drives N of them from the main thread. With the native
 * addon (issue 7) each step is one fused kernel call on the arrays that travel (kernels.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { customOp, dims } from '../ops.js';
import type { RingTransport } from '../transport.js';
import {
  BackwardAccumulator,
  disposeKvChunk,
  ForwardAccumulator,
  type Geometry,
  makeKvChunk,
} from './engine.js';
import {
  type KernelGeometry,
  NativeBackward,
  NativeForward,
  nativeAttention,
  tensorData,
} from './kernels.js';
import { type BlockRange, blockRanges, MaskPlanner, type TokenSide } from './mask.js';
import type { RingLayout } from './types.js';

/** Global token indices held by `rank`: contiguous blocks, or striped (token t on device t mod N). */
export function tokenIndices(rank: number, devices: number, seqLen: number, layout: RingLayout): Int32Array {
  const c = seqLen / devices;
  const idx = new Int32Array(c);
  for (let t = 0; t < c; t++) idx[t] = layout === 'striped' ? t * devices + rank : rank * c + t;
  return idx;
}

export interface RingDeviceOptions {
  transport: RingTransport;
  /** Global (padded) sequence length T; each device holds T / N tokens. */
  seqLen: number;
  layout: RingLayout;
  causal: boolean;
  /** Block size of the blockwise loops inside a device. */
  blockSize: number;
  scale?: number;
  /** Global segment ids, (B, T) row-major. */
  segmentIds?: Int32Array;
  /** Filled with the time spent in each pass, for benchmarks. */
  timings?: { fwdMs: number; bwdMs: number };
}

/** Positions and segments of the tokens `owner` holds. */
function sideOf(owner: number, B: number, o: RingDeviceOptions): TokenSide {
  const positions = tokenIndices(owner, o.transport.worldSize, o.seqLen, o.layout);
  if (!o.segmentIds) return { positions };
  const c = positions.length;
  const segments = new Int32Array(B * c);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < c; t++) segments[b * c + t] = o.segmentIds[b * o.seqLen + positions[t]];
  return { positions, segments };
}

/** q (B, H, c, D), k and v (B, Hk, c, D): this device's shards → its output shard (B, H, c, D). */
export function ringAttentionDevice(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  o: RingDeviceOptions,
): tf.Tensor4D {
  const [B, H, c, D] = dims(q);
  const Hk = dims(k)[1];
  const N = o.transport.worldSize;
  const rank = o.transport.rank;
  const g: Geometry = {
    B,
    H,
    Hk,
    D,
    scale: o.scale ?? 1 / Math.sqrt(D),
    qBlocks: blockRanges(c, o.blockSize),
  };
  const kBlocks = blockRanges(c, o.blockSize);
  const qSide = sideOf(rank, B, o);
  const kvShape: [number, number, number, number] = [B, Hk, c, D];
  const planFor = (owner: number) =>
    new MaskPlanner(qSide, g.qBlocks, sideOf(owner, B, o), kBlocks, o.causal, B);
  const anyVisible = (mask: MaskPlanner) => {
    for (let b = 0; b < B; b++)
      for (let j = 0; j < kBlocks.length; j++) if (mask.anyVisible(b, j)) return true;
    return false;
  };

  const addon = nativeAttention();
  if (addon) {
    const kg: KernelGeometry = { B, H, Hk, D, scale: g.scale, causal: o.causal };
    const sides = Array.from({ length: N }, (_, owner) => sideOf(owner, B, o));
    // NOTE: a step whose chunk no query sees is skipped (causal: the blocks after this device's).
    const visible = sides.map((side) =>
      anyVisible(new MaskPlanner(qSide, g.qBlocks, side, kBlocks, o.causal, B)),
    );
    const nativeOp = customOp(([qi, ki, vi], save) => {
      const started = performance.now();
      // views of the inputs (no copies on wasm): no tfjs call until the loop is over
      const fwd = new NativeForward(addon, tensorData(qi), kg, qSide);
      let kData: Float32Array = tensorData(ki);
      let vData: Float32Array = tensorData(vi);
      for (let step = 0; step < N; step++) {
        const owner = (rank - step + N) % N;
        // send before computing, so the transfer overlaps this step's compute (Algorithm 1)
        if (step < N - 1) o.transport.send([kData, vData]);
        if (visible[owner]) fwd.accumulate(kData, vData, sides[owner]);
        if (step < N - 1) [kData, vData] = o.transport.recv();
      }
      // out and lse are this op's own arrays: the backward reads them from here
      const { out, lse } = fwd.finalize();
      save([qi, ki, vi]);
      if (o.timings) o.timings.fwdMs += performance.now() - started;
      return {
        value: tf.tensor4d(out, [B, H, c, D]),
        gradFunc: (dy, saved) => {
          const bwdStarted = performance.now();
          let dkAcc: Float32Array = new Float32Array(B * Hk * c * D);
          let dvAcc: Float32Array = new Float32Array(B * Hk * c * D);
          const [sq, sk, sv, sdy] = [...saved, dy].map(tensorData);
          const bwd = new NativeBackward(addon, sq, out, sdy, lse, kg, qSide);
          let bk = sk;
          let bv = sv;
          for (let step = 0; step < N; step++) {
            const owner = (rank - step + N) % N;
            if (step < N - 1) o.transport.send([bk, bv]);
            // the kernel adds straight into the accumulators that travel with the block
            if (visible[owner]) bwd.accumulate(bk, bv, sides[owner], dkAcc, dvAcc);
            o.transport.send([dkAcc, dvAcc]);
            if (step < N - 1) [bk, bv] = o.transport.recv();
            [dkAcc, dvAcc] = o.transport.recv();
          }
          const dq = bwd.finalize();
          if (o.timings) o.timings.bwdMs += performance.now() - bwdStarted;
          return [tf.tensor4d(dq, [B, H, c, D]), tf.tensor4d(dkAcc, kvShape), tf.tensor4d(dvAcc, kvShape)];
        },
      };
    });
    return nativeOp(q, k, v) as tf.Tensor4D;
  }

  const op = customOp(([qi, ki, vi], save) => {
    const started = performance.now();
    const acc = new ForwardAccumulator(qi, g);
    let kData: Float32Array = ki.dataSync() as Float32Array;
    let vData: Float32Array = vi.dataSync() as Float32Array;
    for (let step = 0; step < N; step++) {
      const owner = (rank - step + N) % N;
      // NOTE: send before computing, so the transfer overlaps this step's compute (Algorithm 1)
      if (step < N - 1) o.transport.send([kData, vData]);
      const mask = planFor(owner);
      if (anyVisible(mask)) {
        const kt = step === 0 ? ki : tf.tensor4d(kData, kvShape);
        const vt = step === 0 ? vi : tf.tensor4d(vData, kvShape);
        const chunk = makeKvChunk(kt, vt, kBlocks);
        acc.accumulate(chunk, mask);
        disposeKvChunk(chunk);
        if (step > 0) tf.dispose([kt, vt]);
      }
      mask.dispose();
      if (step < N - 1) [kData, vData] = o.transport.recv();
    }
    const { out, lse } = acc.finalize();
    save([qi, ki, vi, out, lse]);
    if (o.timings) o.timings.fwdMs += performance.now() - started;
    return {
      value: out,
      gradFunc: (dy, saved) => {
        const bwdStarted = performance.now();
        const [sq, sk, sv, so, slse] = saved;
        const bacc = new BackwardAccumulator(sq, so, dy, slse, g);
        let bk: Float32Array = sk.dataSync() as Float32Array;
        let bv: Float32Array = sv.dataSync() as Float32Array;
        let dkAcc: Float32Array = new Float32Array(bk.length);
        let dvAcc: Float32Array = new Float32Array(bv.length);
        for (let step = 0; step < N; step++) {
          const owner = (rank - step + N) % N;
          if (step < N - 1) o.transport.send([bk, bv]);
          const mask = planFor(owner);
          if (anyVisible(mask)) {
            const kt = tf.tensor4d(bk, kvShape);
            const vt = tf.tensor4d(bv, kvShape);
            const chunk = makeKvChunk(kt, vt, kBlocks);
            const { dk, dv } = bacc.accumulate(chunk, mask);
            disposeKvChunk(chunk);
            tf.dispose([kt, vt]);
            dkAcc = addInto(dkAcc, dk, kBlocks, c, D);
            dvAcc = addInto(dvAcc, dv, kBlocks, c, D);
          }
          mask.dispose();
          // the accumulators travel with their block; after N sends they are back home
          o.transport.send([dkAcc, dvAcc]);
          if (step < N - 1) [bk, bv] = o.transport.recv();
          [dkAcc, dvAcc] = o.transport.recv();
        }
        const dq = bacc.finalize();
        if (o.timings) o.timings.bwdMs += performance.now() - bwdStarted;
        return [dq, tf.tensor4d(dkAcc, kvShape), tf.tensor4d(dvAcc, kvShape)];
      },
    };
  });
  return op(q, k, v) as tf.Tensor4D;
}

/**
 * acc (B, Hk, c, D) += the chunk gradient pieces, per (b·Hk + hk) and key block (undefined =
 * zero), added in place without joining them into one tensor first (saves two copies a step).
 */
function addInto(
  acc: Float32Array,
  parts: (tf.Tensor2D | undefined)[][],
  blocks: BlockRange[],
  c: number,
  D: number,
): Float32Array {
  parts.forEach((head, n) => {
    head.forEach((t, j) => {
      if (!t) return;
      const d = t.dataSync();
      const off = (n * c + blocks[j].start) * D;
      for (let i = 0; i < d.length; i++) acc[off + i] += d[i];
      t.dispose();
    });
  });
  return acc;
}
