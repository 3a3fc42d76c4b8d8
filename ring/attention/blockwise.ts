/**
 * Blockwise attention (paper §3, BPT): online softmax over key/value blocks; the backward pass
 * recomputes block scores from the saved output and per-row log-sum-exp and never materialises
 * the (s, s) matrix. Memory O(s).
 *
 * The whole sequence is one chunk for accumulator.ts's engines: with the native addon (issue 7)
 * one fused kernel call (kernels.ts); otherwise the tfjs engine (engine.ts) loops over key blocks
 * as per-head, per-block 2-D products.
 */
import type * as tf from '@tensorflow/tfjs';
import { attentionEngine } from './accumulator.js';
import { contiguousPositions, type TokenSide } from './mask.js';
import { passOp } from './pass-op.js';
import type { AttentionOptions, AttentionPass } from './types.js';
import { checkAttentionInputs } from './validate.js';

/** q (B, H, Tq, D), k and v (B, Hk, Tk, D) → (B, H, Tq, D). */
export function blockwiseAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: AttentionOptions = {},
): tf.Tensor4D {
  checkAttentionInputs('blockwiseAttention', q, k, v, options);
  return passOp((qi, ki, vi) => blockwisePass(qi, ki, vi, options), q, k, v);
}

/** The forward pass of blockwise attention on checked inputs, and its backward. */
export function blockwisePass(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: AttentionOptions,
): AttentionPass {
  const { B, H, Hk, Tq, Tk, D, scale, blockSize, causal } = checkAttentionInputs(
    'blockwiseAttention',
    q,
    k,
    v,
    options,
  );
  const engine = attentionEngine({ B, H, Hk, D, scale, causal, blockSize });
  // queries are the last Tq positions of the keys
  const qSide: TokenSide = { positions: contiguousPositions(Tq, Tk - Tq), segments: options.segmentIds };
  const kSide: TokenSide = { positions: contiguousPositions(Tk), segments: options.segmentIds };
  // the op's own k, v as tensors: the native engine takes heap views of them at the call, the
  // tfjs engine slices them (no copies through JS, issue 20)
  const fwd = engine.forward(q, qSide);
  fwd.accumulate(k, v, kSide, true);
  const { out, saved, backward } = fwd.finish();
  return {
    out,
    keep: [q, k, v, ...saved],
    backward: (dy, [sq, sk, sv, ...rest]) => {
      const bwd = backward(sq, rest, dy);
      // Δ = rowsum(dO ∘ O) is computed: the output is not read again, one (B, H, Tq, D) less at
      // the backward's peak (issue 14's memory)
      rest[0].dispose();
      const dk = engine.zeros([B, Hk, Tk, D]);
      const dv = engine.zeros([B, Hk, Tk, D]);
      // dk, dv as views re-taken at each write: the tfjs engine allocates between its writes
      bwd.accumulate(
        sk,
        sv,
        kSide,
        () => dk.data(),
        () => dv.data(),
      );
      return [bwd.finish(), dk.tensor(), dv.tensor()];
    },
  };
}
