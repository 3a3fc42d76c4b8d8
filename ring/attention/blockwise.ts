/**
 * Blockwise attention (paper §3, BPT): online softmax over key/value blocks; the backward pass
 * recomputes block scores from the saved output and per-row log-sum-exp and never materialises
 * the (s, s) matrix. Memory O(s).
 *
 * With the native addon (issue 7) the whole pass is one fused kernel call (kernels.ts);
 * otherwise the tfjs engine (engine.ts) runs it as per-head, per-block 2-D products.
 */
import * as tf from '@tensorflow/tfjs';
import { customOp } from '../ops.js';
import {
  BackwardAccumulator,
  disposeKvChunk,
  ForwardAccumulator,
  type Geometry,
  joinChunkGrads,
  makeKvChunk,
} from './engine.js';
import {
  type KernelGeometry,
  NativeBackward,
  NativeForward,
  nativeAttention,
  tensorData,
} from './kernels.js';
import { blockRanges, contiguousPositions, MaskPlanner, type TokenSide } from './mask.js';
import type { AttentionOptions } from './types.js';
import { checkAttentionInputs } from './validate.js';

/** q (B, H, Tq, D), k and v (B, Hk, Tk, D) → (B, H, Tq, D). */
export function blockwiseAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: AttentionOptions = {},
): tf.Tensor4D {
  const shape = checkAttentionInputs('blockwiseAttention', q, k, v, options);
  const { B, H, Hk, Tq, Tk, D, scale, blockSize, causal } = shape;
  const g: Geometry = { B, H, Hk, D, scale, qBlocks: blockRanges(Tq, blockSize) };
  const kBlocks = blockRanges(Tk, blockSize);
  const planMask = () =>
    new MaskPlanner(
      { positions: contiguousPositions(Tq, Tk - Tq), segments: options.segmentIds },
      g.qBlocks,
      { positions: contiguousPositions(Tk), segments: options.segmentIds },
      kBlocks,
      causal,
      B,
    );
  const addon = nativeAttention();
  if (addon) {
    const kg: KernelGeometry = { B, H, Hk, D, scale, causal };
    const qSide: TokenSide = { positions: contiguousPositions(Tq, Tk - Tq), segments: options.segmentIds };
    const kSide: TokenSide = { positions: contiguousPositions(Tk), segments: options.segmentIds };
    const nativeOp = customOp(([qi, ki, vi], save) => {
      // views of the inputs (no copies on wasm), used before any other tfjs call
      const fwd = new NativeForward(addon, tensorData(qi), kg, qSide);
      fwd.accumulate(tensorData(ki), tensorData(vi), kSide);
      // out and lse are this op's own arrays: the backward reads them from here, not from tensors
      const { out, lse } = fwd.finalize();
      save([qi, ki, vi]);
      return {
        value: tf.tensor4d(out, [B, H, Tq, D]),
        gradFunc: (dy, saved) => {
          const dk = new Float32Array(B * Hk * Tk * D);
          const dv = new Float32Array(B * Hk * Tk * D);
          const [sq, sk, sv, sdy] = [...saved, dy].map(tensorData);
          const bwd = new NativeBackward(addon, sq, out, sdy, lse, kg, qSide);
          bwd.accumulate(sk, sv, kSide, dk, dv);
          return [
            tf.tensor4d(bwd.finalize(), [B, H, Tq, D]),
            tf.tensor4d(dk, [B, Hk, Tk, D]),
            tf.tensor4d(dv, [B, Hk, Tk, D]),
          ];
        },
      };
    });
    return nativeOp(q, k, v) as tf.Tensor4D;
  }
  const op = customOp(([qi, ki, vi], save) => {
    const mask = planMask();
    const acc = new ForwardAccumulator(qi, g);
    const chunk = makeKvChunk(ki, vi, kBlocks);
    acc.accumulate(chunk, mask);
    disposeKvChunk(chunk);
    mask.dispose();
    const { out, lse } = acc.finalize();
    save([qi, ki, vi, out, lse]);
    return {
      value: out,
      gradFunc: (dy, saved) => {
        const [sq, sk, sv, so, slse] = saved;
        const bmask = planMask();
        const bacc = new BackwardAccumulator(sq, so, dy, slse, g);
        const bchunk = makeKvChunk(sk, sv, kBlocks);
        const { dk, dv } = bacc.accumulate(bchunk, bmask);
        disposeKvChunk(bchunk);
        bmask.dispose();
        const dkT = joinChunkGrads(dk, kBlocks, B, Hk, D);
        const dvT = joinChunkGrads(dv, kBlocks, B, Hk, D);
        for (const list of [dk, dv]) for (const head of list) for (const t of head) t?.dispose();
        return [bacc.finalize(), dkT, dvT];
      },
    };
  });
  return op(q, k, v) as tf.Tensor4D;
}
