/**
 * Vanilla attention, the reference: materialises the (Tq, Tk) scores per head, softmax, then
 * the weighted values. Memory O(s²) (paper Table 1). Gradients by tfjs autodiff through 2-D
 * products with explicit-transpose gradients (ops.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { matmul } from '../ops.js';
import { joinHeads, splitHeads } from './engine.js';
import { blockRanges, contiguousPositions, MaskPlanner } from './mask.js';
import type { AttentionOptions } from './types.js';
import { checkAttentionInputs } from './validate.js';

/** q (B, H, Tq, D), k and v (B, Hk, Tk, D) → (B, H, Tq, D). */
export function vanillaAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: AttentionOptions = {},
): tf.Tensor4D {
  const { B, H, Hk, Tq, Tk, scale, causal } = checkAttentionInputs('vanillaAttention', q, k, v, options);
  const group = H / Hk;
  return tf.tidy(() => {
    const mask = new MaskPlanner(
      { positions: contiguousPositions(Tq, Tk - Tq), segments: options.segmentIds },
      blockRanges(Tq, Tq),
      { positions: contiguousPositions(Tk), segments: options.segmentIds },
      blockRanges(Tk, Tk),
      causal,
      B,
    );
    const qh = splitHeads(q);
    const kh = splitHeads(k);
    const vh = splitHeads(v);
    const outs: tf.Tensor2D[] = [];
    for (let b = 0; b < B; b++) {
      const vis = mask.visibility(b, 0, 0);
      const bias = vis === 'partial' ? mask.bias(b, 0, 0, false) : undefined;
      for (let h = 0; h < H; h++) {
        const kvIdx = b * Hk + Math.floor(h / group);
        let s = matmul(tf.mul(qh[b * H + h], scale) as tf.Tensor2D, tf.transpose(kh[kvIdx])); // (Tq, Tk)
        if (bias) s = tf.add(s, bias);
        outs.push(matmul(tf.softmax(s), vh[kvIdx])); // (Tq, D)
      }
    }
    const out = joinHeads(outs, B, H);
    mask.dispose();
    return out;
  });
}
