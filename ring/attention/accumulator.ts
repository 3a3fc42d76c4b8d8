/**
 * One accumulator interface for both attention schedules and both engines (issue 13). A schedule
 * (blockwise.ts: one chunk of keys and values; ring.ts: N chunks, one per ring step, paper
 * Algorithm 1) is written once against it; the native kernels (kernels.ts, one fused call per
 * chunk, issue 7) and the tfjs engine (engine.ts, per-head 2-D products) implement it.
 *
 * Chunks come as arrays k, v (B, Hk, Tk, D) with their tokens' positions and segments, because
 * arrays are what the ring's transport moves; dK, dV are added into arrays that travel with them.
 * A schedule that holds a chunk as tensors (blockwise: the op's own k, v) hands the tensors over
 * instead, so the tfjs engine reads them without a copy through JS (issue 20).
 */
import * as tf from '@tensorflow/tfjs';
import { TfjsForward } from './engine.js';
import {
  arrayOf,
  type FloatSource,
  type KernelGeometry,
  NativeBackward,
  NativeForward,
  nativeAttention,
  tensorData,
  tensorDataIsView,
} from './kernels.js';
import type { TokenSide } from './mask.js';

/**
 * A chunk's keys or values (B, Hk, Tk, D): an array (what the ring's transport moves) or the
 * tensor holding them. The native engine reads a tensor through a heap view taken at the call, the
 * tfjs engine slices it as it is (no JS copy, issue 20).
 */
export type ChunkValues = Float32Array | tf.Tensor;

/**
 * Where a chunk's dK or dV (B, Hk, Tk, D) is added: an array, or a function giving a fresh view of
 * a tensor's wasm heap memory (re-taken at each write, since a view dies when the heap grows).
 */
export type GradientTarget = FloatSource;

/** The op's geometry: what the kernels need, and the tfjs engine's block size. */
export interface ChunkGeometry extends KernelGeometry {
  blockSize: number;
}

/** Forward pass of one query side: online softmax over any number of key/value chunks. */
export interface ForwardAccumulator {
  /**
   * Adds the chunk k, v (B, Hk, Tk, D) whose tokens are `kSide`. `last`: no chunk follows before
   * `finish` (the native engine then normalises the output inside this call, tile by tile).
   */
  accumulate(k: ChunkValues, v: ChunkValues, kSide: TokenSide, last?: boolean): void;
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
  accumulate(k: ChunkValues, v: ChunkValues, kSide: TokenSide, dk: GradientTarget, dv: GradientTarget): void;
  /** dQ (B, H, Tq, D). */
  finish(): tf.Tensor4D;
}

/** A zero gradient accumulator that `accumulate` adds into, and the tensor it ends as. */
export interface GradientBuffer {
  /**
   * The values to add into (a wasm heap view: take it after the call's last tfjs allocation, or
   * hand `() => buffer.data()` to `accumulate`, which takes it at each write).
   */
  data(): Float32Array;
  /** The accumulated values as a tensor (the buffer's own tensor on wasm: no copy). */
  tensor(): tf.Tensor4D;
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
  /** Zeros of `shape` for dK or dV. */
  zeros(shape: Shape4): GradientBuffer;
}

type Shape4 = [number, number, number, number];

/** Zeros as a JS array, copied into a tensor at the end (the tfjs engine; native off wasm). */
function arrayBuffer(shape: Shape4): GradientBuffer {
  const a = new Float32Array(shape[0] * shape[1] * shape[2] * shape[3]);
  return { data: () => a, tensor: () => tf.tensor4d(a, shape) };
}

/**
 * Zeros as a tensor in the wasm heap that the native kernels write into (issue 20): no JS array
 * beside it and no copy into the tensor at the end.
 */
function heapBuffer(shape: Shape4): GradientBuffer {
  // NOTE: tf.fill runs a kernel into fresh heap memory; tf.zeros would first build a JS array
  const t = tf.fill(shape, 0) as tf.Tensor4D;
  return { data: () => tensorData(t), tensor: () => t };
}

/** The native kernels where they load for this backend, else the tfjs engine. */
export function attentionEngine(g: ChunkGeometry): AttentionEngine {
  const addon = nativeAttention();
  // NOTE: the tfjs engine keeps dK, dV in JS arrays: during its backward the wasm heap holds its
  // per-block tensors and sets the device's peak, so 16 MiB more there cost more than 16 MiB of JS
  // (measured, blockwise L = 4096 with RING_NATIVE=0: real peak 253 MiB with heap tensors, 219 MiB
  // with arrays)
  if (!addon)
    return {
      data: (t) => t.dataSync() as Float32Array,
      forward: (q, qSide) => new TfjsForward(q, g, qSide),
      zeros: arrayBuffer,
    };
  // NOTE: on wasm the output and dQ are tensors allocated first and written in place through heap
  // views re-taken at each native call; JS arrays copied into tensors held both (issue 20)
  const zeros = tensorDataIsView() ? heapBuffer : arrayBuffer;
  // a view of a chunk tensor, taken right before the kernel reads it
  const values = (x: ChunkValues) => (x instanceof tf.Tensor ? tensorData(x) : x);
  return {
    data: tensorData,
    zeros,
    forward: (q, qSide) => {
      const shape: Shape4 = [g.B, g.H, qSide.positions.length, g.D];
      const o = zeros(shape); // before any view is taken: allocating may grow the heap
      const fwd = new NativeForward(
        addon,
        () => tensorData(q),
        g,
        qSide,
        () => o.data(),
      );
      return {
        accumulate: (k, v, kSide, last) => fwd.accumulate(values(k), values(v), kSide, last),
        finish: () => {
          // lse is this op's own array (B·H·Tq floats): the backward reads it from here
          const { lse } = fwd.finalize();
          const out = o.tensor();
          return {
            out,
            saved: [out],
            backward: (sq, [so], dOut) => {
              const dq = zeros(shape);
              const view = (t: tf.Tensor) => () => tensorData(t);
              const bwd = new NativeBackward(addon, view(sq), view(so), view(dOut), lse, g, qSide, () =>
                dq.data(),
              );
              return {
                accumulate: (k, v, kSide, dk, dv) =>
                  bwd.accumulate(values(k), values(v), kSide, arrayOf(dk), arrayOf(dv)),
                finish: () => dq.tensor(),
              };
            },
          };
        },
      };
    },
  };
}
