/**
 * One accumulator interface for both attention schedules and both engines (issue 13). A schedule
 * (blockwise.ts: one chunk of keys and values; ring.ts: N chunks, one per ring step, paper
 * Algorithm 1) is written once against it; the native kernels (kernels.ts, one fused call per
 * chunk, issue 7) and the tfjs engine (engine.ts, per-head 2-D products) implement it.
 *
 * Chunks come as arrays k, v (B, Hk, Tk, D) with their tokens' positions and segments, because
 * arrays are what the ring's transport moves; dK, dV are added into arrays that travel with them.
 */
import * as tf from '@tensorflow/tfjs';
import { TfjsForward } from './engine.js';
import {
  type KernelGeometry,
  NativeBackward,
  NativeForward,
  nativeAttention,
  tensorData,
} from './kernels.js';
import type { TokenSide } from './mask.js';

/** The op's geometry: what the kernels need, and the tfjs engine's block size. */
export interface ChunkGeometry extends KernelGeometry {
  blockSize: number;
}

/** Forward pass of one query side: online softmax over any number of key/value chunks. */
export interface ForwardAccumulator {
  /** Adds the chunk k, v (B, Hk, Tk, D) whose tokens are `kSide`. */
  accumulate(k: Float32Array, v: Float32Array, kSide: TokenSide): void;
  finish(): ForwardResult;
}

/** What a finished forward pass leaves: the output and how to start the backward pass. */
export interface ForwardResult {
  /** (B, H, Tq, D). */
  out: tf.Tensor4D;
  /** Tensors the backward reads, kept through the op's `save` (the native engine keeps arrays). */
  saved: tf.Tensor[];
  /** The backward pass from q and `saved` as the op's gradFunc gets them back, and dOut (B, H, Tq, D). */
  backward(q: tf.Tensor, saved: tf.Tensor[], dOut: tf.Tensor): BackwardAccumulator;
}

/** Backward pass of one query side: dQ accumulates inside; each chunk's dK, dV go to the caller. */
export interface BackwardAccumulator {
  /** dk, dv (B, Hk, Tk, D) += the gradients of the chunk k, v (B, Hk, Tk, D) whose tokens are `kSide`. */
  accumulate(k: Float32Array, v: Float32Array, kSide: TokenSide, dk: Float32Array, dv: Float32Array): void;
  /** dQ (B, H, Tq, D). */
  finish(): tf.Tensor4D;
}

/** An engine: how a schedule reads its tensors and starts a forward pass. */
export interface AttentionEngine {
  /**
   * A tensor's values as `accumulate` takes them. Native: a view of the wasm heap (no copy), valid
   * until the next tfjs allocation, so a native schedule makes no tfjs call between taking views
   * and `finish`; tfjs: a copy.
   */
  data(t: tf.Tensor): Float32Array;
  /** q (B, H, Tq, D) whose tokens are `qSide`. */
  forward(q: tf.Tensor, qSide: TokenSide): ForwardAccumulator;
}

/** The native kernels where they load for this backend, else the tfjs engine. */
export function attentionEngine(g: ChunkGeometry): AttentionEngine {
  const addon = nativeAttention();
  if (!addon)
    return { data: (t) => t.dataSync() as Float32Array, forward: (q, qSide) => new TfjsForward(q, g, qSide) };
  return {
    data: tensorData,
    forward: (q, qSide) => {
      const [B, H, Tq, D] = [g.B, g.H, qSide.positions.length, g.D];
      const fwd = new NativeForward(addon, tensorData(q), g, qSide);
      return {
        accumulate: (k, v, kSide) => fwd.accumulate(k, v, kSide),
        finish: () => {
          // out and lse are this op's own arrays: the backward reads them from here, not from tensors
          const { out, lse } = fwd.finalize();
          return {
            out: tf.tensor4d(out, [B, H, Tq, D]),
            saved: [],
            backward: (sq, _saved, dOut) => {
              const bwd = new NativeBackward(addon, tensorData(sq), out, tensorData(dOut), lse, g, qSide);
              return {
                accumulate: (k, v, kSide, dk, dv) => bwd.accumulate(k, v, kSide, dk, dv),
                finish: () => tf.tensor4d(bwd.finalize(), [B, H, Tq, D]),
              };
            },
          };
        },
      };
    },
  };
}
