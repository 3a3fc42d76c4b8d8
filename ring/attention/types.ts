import type * as tf from '@tensorflow/tfjs';

/** The attention implementations of the paper's comparison (Table 3, Table 5). */
export const ATTENTION_IMPLS = ['vanilla', 'memeff', 'blockwise', 'ring'] as const;
export type AttentionImpl = (typeof ATTENTION_IMPLS)[number];

/** How tokens are laid out over the ring's devices (paper §3; Striped Attention). */
export type RingLayout = 'contiguous' | 'striped';

/**
 * Options every implementation accepts. Tensors are (B, H, T, D) for queries and (B, Hk, T, D)
 * for keys and values; H must be a multiple of Hk (grouped-query attention: query head h reads
 * key/value head ⌊h / (H/Hk)⌋, as Hugging Face's `repeat_kv` does).
 */
export interface AttentionOptions {
  /** Token t attends only to tokens at positions ≤ t. */
  causal?: boolean;
  /** Tokens per query and key block (memeff, blockwise and the ring's inner loop). Default 512. */
  blockSize?: number;
  /** Softmax scale; default 1/√D. */
  scale?: number;
  /**
   * Segment id of each token, (B, T) row-major. Tokens attend only to tokens of the same
   * segment, so packed sequences never see each other.
   */
  segmentIds?: Int32Array;
}

export const DEFAULT_BLOCK_SIZE = 512;
/** Additive bias of masked scores: exp(−1e30 − m) is exactly 0 in float32. */
export const MASKED = -1e30;

/**
 * One attention forward pass, with its backward to come: what a custom op wraps (blockwise.ts,
 * ring.ts), and what a fused block runs between its native halves (ring/transformer.ts, issue 14).
 */
export interface AttentionPass {
  /** (B, H, Tq, D). */
  out: tf.Tensor4D;
  /** Tensors the backward reads (q, k, v and the engine's): keep them alive until it runs. */
  keep: tf.Tensor[];
  /**
   * dq (B, H, Tq, D), dk, dv (B, Hk, Tk, D) for dOut (B, H, Tq, D), from `kept`: `keep` itself, or
   * the copies a custom op's `save` made of it (tfjs hands its gradFunc clones).
   */
  backward(dOut: tf.Tensor, kept: tf.Tensor[]): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
}
