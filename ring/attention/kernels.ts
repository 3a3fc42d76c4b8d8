/**
 * The attention engine's kernel interface on typed arrays: one query side against any number of
 * key/value chunks, with the running online-softmax state (o, m, l) kept between chunks, as the
 * ring feeds them one at a time (ring.ts) and blockwise feeds one (blockwise.ts). The native
 * addon (native/addon.ts, issue 7) implements it in one fused call per chunk; engine.ts's tfjs
 * ForwardAccumulator / BackwardAccumulator remain the reference and the fallback.
 *
 * Layouts (row-major): q, out, dOut (B, H, Tq, D); k, v, dk, dv (B, Hk, Tk, D); m, l, lse,
 * delta (B, H, Tq). Masking follows MaskPlanner: a query sees a key iff (not causal or
 * keyPos ≤ queryPos) and both have the same segment.
 */
import * as tf from '@tensorflow/tfjs';
import { type NativeAddon, nativeForCurrentBackend, nativeThreads } from '../../native/index.js';
import type { TokenSide } from './mask.js';

/** What the kernels need besides the arrays. */
export interface KernelGeometry {
  B: number;
  H: number;
  Hk: number;
  D: number;
  scale: number;
  causal: boolean;
}

let nativeAttentionCalls = 0;

/**
 * The native kernels, or undefined when the tfjs engine must run: addon off or missing, or a
 * backend whose tensors are not in CPU memory (a GPU: issue 23, native/addon.ts `nativeRefusedOn`).
 */
export function nativeAttention(): NativeAddon | undefined {
  const addon = nativeForCurrentBackend();
  if (addon) nativeAttentionCalls++;
  return addon;
}

/** Attention ops this thread has run on the native kernels so far (tests check the path). */
export function nativeAttentionCount(): number {
  return nativeAttentionCalls;
}

/**
 * A float32 tensor's values for a native call: on wasm a view of the wasm heap (no copy), else a
 * copy (dataSync). NOTE: a heap view is valid only until the heap next grows, i.e. until the next
 * tfjs allocation: take it right before the native calls that read it, with no tfjs call between.
 */
export function tensorData(t: tf.Tensor): Float32Array {
  const backend = tf.backend() as unknown as { typedArrayFromHeap?: (t: tf.TensorInfo) => Float32Array };
  if (tf.getBackend() === 'wasm' && typeof backend.typedArrayFromHeap === 'function' && t.dtype === 'float32')
    return backend.typedArrayFromHeap(t);
  return t.dataSync() as Float32Array;
}

/** Whether `tensorData` gives views of the backend's memory (wasm) rather than copies. */
export function tensorDataIsView(): boolean {
  const backend = tf.backend() as unknown as { typedArrayFromHeap?: unknown };
  return tf.getBackend() === 'wasm' && typeof backend.typedArrayFromHeap === 'function';
}

/**
 * An array the kernels read or write, or how to get it: a function returns a fresh view of a
 * tensor's wasm heap memory (issue 20: results written straight into their tensors), re-taken at
 * every native call because a view dies when the heap grows.
 */
export type FloatSource = Float32Array | (() => Float32Array);

/** The array `s` names (a fresh view when it is a function). */
export function arrayOf(s: FloatSource): Float32Array {
  return typeof s === 'function' ? s() : s;
}

function sideArgs(
  q: TokenSide,
  k: TokenSide,
): [Int32Array, Int32Array, Int32Array | null, Int32Array | null] {
  // NOTE: MaskPlanner masks by segment only when the query side has segments; both sides carry
  // them together everywhere in ring/.
  const segs = q.segments !== undefined && k.segments !== undefined;
  return [q.positions, k.positions, segs ? q.segments! : null, segs ? k.segments! : null];
}

/** Forward pass: running o (unnormalised), m (max of scaled scores), l (denominator) per row. */
export class NativeForward {
  private readonly o: FloatSource;
  private readonly m: Float32Array;
  private readonly l: Float32Array;
  private readonly Tq: number;
  /** Log-sum-exp per row once a chunk marked last has finalised the output in its call. */
  private lse?: Float32Array;

  /** q (B, H, Tq, D); `o` (B, H, Tq, D), zeros, receives the output (a new array by default). */
  constructor(
    private readonly addon: NativeAddon,
    private readonly q: FloatSource,
    private readonly g: KernelGeometry,
    private readonly qSide: TokenSide,
    o?: FloatSource,
  ) {
    this.Tq = qSide.positions.length;
    const rows = g.B * g.H * this.Tq;
    this.o = o ?? new Float32Array(rows * g.D);
    this.m = new Float32Array(rows).fill(Number.NEGATIVE_INFINITY);
    this.l = new Float32Array(rows);
  }

  /**
   * Adds the chunk k, v (B, Hk, Tk, D) whose tokens are `kSide`. `last`: no chunk follows, so the
   * kernel normalises each query tile as it finishes it (no separate pass in `finalize`).
   */
  accumulate(k: Float32Array, v: Float32Array, kSide: TokenSide, last = false): void {
    if (this.lse) throw new Error('NativeForward.accumulate: a chunk marked last was already added');
    const { B, H, Hk, D, scale, causal } = this.g;
    const lse = last ? new Float32Array(B * H * this.Tq) : null;
    const Tk = kSide.positions.length;
    const [qPos, kPos, qSeg, kSeg] = sideArgs(this.qSide, kSide);
    this.addon.attnForward(
      arrayOf(this.q),
      k,
      v,
      arrayOf(this.o),
      this.m,
      this.l,
      B,
      H,
      Hk,
      this.Tq,
      Tk,
      D,
      scale,
      causal,
      qPos,
      kPos,
      qSeg,
      kSeg,
      nativeThreads(),
      lse,
    );
    if (lse) this.lse = lse;
  }

  /** Output (B, H, Tq, D) and log-sum-exp per row (B, H, Tq). */
  finalize(): { out: Float32Array; lse: Float32Array } {
    if (this.lse) return { out: arrayOf(this.o), lse: this.lse };
    const rows = this.g.B * this.g.H * this.Tq;
    const lse = new Float32Array(rows);
    const out = arrayOf(this.o);
    this.addon.attnFinalize(out, this.m, this.l, lse, rows, this.g.D);
    return { out, lse };
  }
}

/** Backward pass: dQ accumulates here; each chunk's dK, dV are added into the caller's arrays. */
export class NativeBackward {
  private readonly delta: Float32Array;
  private readonly dq: FloatSource;
  private readonly Tq: number;

  /**
   * q, out, dOut (B, H, Tq, D); lse (B, H, Tq); `dq` (B, H, Tq, D), zeros, receives dQ (a new
   * array by default).
   */
  constructor(
    private readonly addon: NativeAddon,
    private readonly q: FloatSource,
    out: FloatSource,
    private readonly dOut: FloatSource,
    private readonly lse: Float32Array,
    private readonly g: KernelGeometry,
    private readonly qSide: TokenSide,
    dq?: FloatSource,
  ) {
    this.Tq = qSide.positions.length;
    const rows = g.B * g.H * this.Tq;
    this.dq = dq ?? new Float32Array(rows * g.D);
    this.delta = new Float32Array(rows); // Δ = rowsum(dO ∘ O) (FlashAttention-2 §3.1)
    addon.rowDot(arrayOf(dOut), arrayOf(out), this.delta, rows, g.D, nativeThreads());
  }

  /** dk, dv (B, Hk, Tk, D) += this chunk's gradients; k, v (B, Hk, Tk, D) are the chunk. */
  accumulate(k: Float32Array, v: Float32Array, kSide: TokenSide, dk: Float32Array, dv: Float32Array): void {
    const { B, H, Hk, D, scale, causal } = this.g;
    const Tk = kSide.positions.length;
    const [qPos, kPos, qSeg, kSeg] = sideArgs(this.qSide, kSide);
    this.addon.attnBackward(
      arrayOf(this.q),
      k,
      v,
      arrayOf(this.dOut),
      this.lse,
      this.delta,
      arrayOf(this.dq),
      dk,
      dv,
      B,
      H,
      Hk,
      this.Tq,
      Tk,
      D,
      scale,
      causal,
      qPos,
      kPos,
      qSeg,
      kSeg,
      nativeThreads(),
    );
  }

  /** dQ (B, H, Tq, D). */
  finalize(): Float32Array {
    return arrayOf(this.dq);
  }
}
