/**
 * Ring attention on one device (paper Algorithm 1). Each of N devices holds one block of the
 * sequence: its queries, keys and values. For N steps it attends its queries to the key/value
 * block it holds, while that block is already on its way to the next device; after N − 1
 * rotations every query has seen every key. The backward pass rotates k, v and the dk, dv
 * accumulators the same way, so after N steps each device's dk, dv come home.
 *
 * This is a tfjs op with a custom gradient, called inside a device (worker thread or process)
 * with that device's shard; `RingGroup` drives N of them from the main thread. Each step hands the
 * arrays that travel to accumulator.ts's engine: with the native addon (issue 7) one fused kernel
 * call (kernels.ts), else the tfjs engine's per-block products (engine.ts).
 */
import type * as tf from '@tensorflow/tfjs';
import { dims } from '../ops.js';
import type { RingTransport } from '../transport.js';
import { attentionEngine, type GradientBuffer } from './accumulator.js';
import { blockRanges, MaskPlanner, type TokenSide } from './mask.js';
import { passOp } from './pass-op.js';
import type { AttentionPass, RingLayout } from './types.js';

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

/** `buf` as a tensor holding `got`: the transport wrote into it unless it returned an array of its own. */
function homeTensor(got: Float32Array, buf: GradientBuffer): tf.Tensor4D {
  const view = buf.data();
  if (got.buffer !== view.buffer || got.byteOffset !== view.byteOffset) view.set(got);
  return buf.tensor();
}

/** q (B, H, c, D), k and v (B, Hk, c, D): this device's shards → its output shard (B, H, c, D). */
export function ringAttentionDevice(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  o: RingDeviceOptions,
): tf.Tensor4D {
  return passOp((qi, ki, vi) => ringPass(qi, ki, vi, o), q, k, v);
}

/**
 * The forward pass of ring attention on this device's shards (N ring steps), and its backward (N
 * more): what `ringAttentionDevice` wraps as an op and a fused block runs inside (issue 14).
 */
export function ringPass(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, o: RingDeviceOptions): AttentionPass {
  const [B, H, c, D] = dims(q);
  const Hk = dims(k)[1];
  const N = o.transport.worldSize;
  const rank = o.transport.rank;
  const scale = o.scale ?? 1 / Math.sqrt(D);
  const engine = attentionEngine({ B, H, Hk, D, scale, causal: o.causal, blockSize: o.blockSize });
  const kvShape: [number, number, number, number] = [B, Hk, c, D];
  const sides = Array.from({ length: N }, (_, owner) => sideOf(owner, B, o));
  const qSide = sides[rank];
  // NOTE: a step whose chunk no query sees is skipped (causal: the blocks after this device's)
  const blocks = blockRanges(c, o.blockSize);
  const visible = sides.map((side) => {
    const mask = new MaskPlanner(qSide, blocks, side, blocks, o.causal, B);
    for (let b = 0; b < B; b++)
      for (let j = 0; j < blocks.length; j++) if (mask.anyVisible(b, j)) return true;
    return false;
  });

  // the step whose chunk is the last one seen: the native engine finishes the output inside it
  const lastStep = visible.reduce(
    (last, seen, owner) => (seen ? Math.max(last, (rank - owner + N) % N) : last),
    -1,
  );

  const started = performance.now();
  // native: views of the inputs (no copies on wasm), so no tfjs call until the loop is over
  const fwd = engine.forward(q, qSide);
  let kData = engine.data(k);
  let vData = engine.data(v);
  for (let step = 0; step < N; step++) {
    const owner = (rank - step + N) % N;
    // NOTE: send before computing, so the transfer overlaps this step's compute (Algorithm 1)
    if (step < N - 1) o.transport.send([kData, vData]);
    if (visible[owner]) fwd.accumulate(kData, vData, sides[owner], step === lastStep);
    // NOTE: received into this op's own pair of arrays once the views of k, v have been sent:
    // the pair is free again by then (send copied it out, accumulate has read it)
    if (step < N - 1) [kData, vData] = o.transport.recv(step === 0 ? undefined : [kData, vData]);
  }
  // the pair received last is this op's own (N > 1): the backward receives into it again
  const spare = N > 1 ? [kData, vData] : undefined;
  const { out, saved, backward } = fwd.finish();
  if (o.timings) o.timings.fwdMs += performance.now() - started;
  return {
    out,
    keep: [q, k, v, ...saved],
    backward: (dy, [sq, sk, sv, ...rest]) => {
      const bwdStarted = performance.now();
      let dkAcc: Float32Array = new Float32Array(B * Hk * c * D);
      let dvAcc: Float32Array = new Float32Array(B * Hk * c * D);
      const bwd = backward(sq, rest, dy);
      // Δ = rowsum(dO ∘ O) is computed: the output is not read again, one (B, H, Tq, D) less at
      // the backward's peak (issue 14's memory)
      rest[0].dispose();
      // where dK, dV land when they come home: tensors on wasm (native), written by the last recv
      const dkHome = engine.zeros(kvShape);
      const dvHome = engine.zeros(kvShape);
      let bk = engine.data(sk);
      let bv = engine.data(sv);
      for (let step = 0; step < N; step++) {
        const owner = (rank - step + N) % N;
        if (step < N - 1) o.transport.send([bk, bv]);
        // dK, dV are added straight into the accumulators that travel with the block
        if (visible[owner]) bwd.accumulate(bk, bv, sides[owner], dkAcc, dvAcc);
        // after N sends the accumulators are back home
        o.transport.send([dkAcc, dvAcc]);
        if (step < N - 1) [bk, bv] = o.transport.recv(step === 0 ? spare : [bk, bv]);
        // views of the home tensors taken here: no tfjs allocation since dkHome, dvHome
        const home = step === N - 1;
        [dkAcc, dvAcc] = o.transport.recv(home ? [dkHome.data(), dvHome.data()] : [dkAcc, dvAcc]);
      }
      // NOTE: dK, dV first: the views the last recv wrote through die if dQ's assembly (the tfjs
      // engine allocates there) grows the heap
      const dk = homeTensor(dkAcc, dkHome);
      const dv = homeTensor(dvAcc, dvHome);
      const dq = bwd.finish();
      if (o.timings) o.timings.bwdMs += performance.now() - bwdStarted;
      return [dq, dk, dv];
    },
  };
}
