/**
 * Memory-efficient attention (Rabe & Staats 2021): queries in chunks; per query chunk, every key
 * chunk yields a summary (its values weighted by exp(s − m_chunk), its row sums, its max m_chunk),
 * and the summaries are combined with the global max. The backward pass checkpoints each query
 * chunk and recomputes it under autodiff, which holds that chunk's (cq, Tk) scores at once:
 * the "2·b·s·h + 4·b·c·h" attention memory of the paper's Table 1.
 */
import * as tf from '@tensorflow/tfjs';
import { checkpoint, matmul, stopGradient } from '../ops.js';
import { joinHeads, splitHeads } from './engine.js';
import { blockRanges, contiguousPositions, MaskPlanner } from './mask.js';
import type { AttentionOptions } from './types.js';
import { checkAttentionInputs } from './validate.js';

/** q (B, H, Tq, D), k and v (B, Hk, Tk, D) → (B, H, Tq, D). */
export function memeffAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: AttentionOptions = {},
): tf.Tensor4D {
  const { B, H, Hk, Tq, Tk, D, scale, blockSize, causal } = checkAttentionInputs(
    'memeffAttention',
    q,
    k,
    v,
    options,
  );
  const group = H / Hk;
  const qBlocks = blockRanges(Tq, blockSize);
  const kBlocks = blockRanges(Tk, blockSize);
  const mask = new MaskPlanner(
    { positions: contiguousPositions(Tq, Tk - Tq), segments: options.segmentIds },
    qBlocks,
    { positions: contiguousPositions(Tk), segments: options.segmentIds },
    kBlocks,
    causal,
    B,
  );
  const out = tf.tidy(() => {
    const qh = splitHeads(q);
    const kh = splitHeads(k);
    const vh = splitHeads(v);
    const heads: tf.Tensor2D[] = [];
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const kvIdx = b * Hk + Math.floor(h / group);
        const chunks = qBlocks.map((qr, i) => {
          const qChunk = tf.slice(qh[b * H + h], [qr.start, 0], [qr.size, D]);
          const summarise = (qc: tf.Tensor, kFull: tf.Tensor, vFull: tf.Tensor): tf.Tensor => {
            const qs = tf.mul(qc, scale) as tf.Tensor2D;
            const values: tf.Tensor[] = [];
            const sums: tf.Tensor[] = [];
            const maxes: tf.Tensor[] = [];
            for (let j = 0; j < kBlocks.length; j++) {
              const vis = mask.visibility(b, i, j);
              if (vis === 'none') continue;
              const kr = kBlocks[j];
              const kj = tf.slice(kFull, [kr.start, 0], [kr.size, D]) as tf.Tensor2D;
              const vj = tf.slice(vFull, [kr.start, 0], [kr.size, D]) as tf.Tensor2D;
              let s = matmul(qs, tf.transpose(kj)); // (cq, ck)
              if (vis === 'partial') s = tf.add(s, mask.buildBias(b, i, j, false)); // uncached: the recompute runs after dispose
              // NOTE: the chunk max is a constant shift (Rabe & Staats stop its gradient)
              const m = stopGradient(tf.max(s, 1, true));
              const e = tf.exp(tf.sub(s, m));
              values.push(matmul(e as tf.Tensor2D, vj));
              sums.push(tf.sum(e, 1, true));
              maxes.push(m);
            }
            const mAll = tf.max(tf.concat(maxes, 1), 1, true); // (cq, 1)
            let num: tf.Tensor | undefined;
            let den: tf.Tensor | undefined;
            for (let n = 0; n < values.length; n++) {
              const w = tf.exp(tf.sub(maxes[n], mAll));
              num = num ? tf.add(num, tf.mul(values[n], w)) : tf.mul(values[n], w);
              den = den ? tf.add(den, tf.mul(sums[n], w)) : tf.mul(sums[n], w);
            }
            return tf.div(num!, den!);
          };
          return checkpoint(summarise, [qChunk, kh[kvIdx], vh[kvIdx]]) as tf.Tensor2D;
        });
        heads.push(tf.concat(chunks, 0));
      }
    }
    return joinHeads(heads, B, H);
  });
  mask.dispose();
  return out;
}
