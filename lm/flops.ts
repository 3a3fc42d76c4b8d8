/**
 * Model FLOPs of a LLaMA training step (issue 17 item 4: Table 4's MFU). The standard count
 * (Kaplan et al. 2020; PaLM, Chowdhery et al. 2022, appendix B), which MFU divides by the peak:
 *
 * - Dense: every weight of a matmul costs 2 FLOPs per token forward and 4 backward (the gradients
 *   of its input and of itself): 6 · W · tokens, W = the layers' q, k, v, o, gate, up and down
 *   matrices + the head (V × d). A tied embedding's one matrix counts once, as the head; the input
 *   embedding is a lookup (no FLOPs), so an untied one adds nothing.
 * - Attention: per layer and token, QKᵀ and AV cost 2 · d · T_visible each forward (d = heads ×
 *   head dim), ×3 for training: 12 · d · T_visible. Causal: the token at position t of a window
 *   sees t + 1 keys, so a window of T tokens sums to T(T + 1)/2.
 * - Not counted: norms, RoPE, softmax, the loss and other elementwise work (O(d) per token);
 *   the recomputed forward of checkpointed layers (that is hardware FLOPs, not model FLOPs); the
 *   segment mask of packed windows (the count is the causal window's, as the standard one; a
 *   kernel that skips masked blocks does less work than counted).
 */
import type { LlamaConfig } from './model.js';

/** Weights of the matmuls a token goes through: the layers' projections and the head. */
export function llamaMatmulWeights(c: LlamaConfig): number {
  const Dh = c.hiddenSize / c.numHeads;
  const attention = c.hiddenSize * (c.numHeads + 2 * c.numKvHeads) * Dh + c.numHeads * Dh * c.hiddenSize;
  const mlp = 3 * c.hiddenSize * c.intermediateSize;
  return c.numLayers * (attention + mlp) + c.vocabSize * c.hiddenSize;
}

/**
 * Model FLOPs of one training step (forward + backward) on `windows` causal windows of `seqLen`
 * tokens each: 6 · W · tokens + 12 · layers · d · T(T + 1)/2 per window.
 */
export function llamaTrainingFlops(c: LlamaConfig, seqLen: number, windows = 1): number {
  const d = c.numHeads * (c.hiddenSize / c.numHeads);
  const dense = 6 * llamaMatmulWeights(c) * seqLen;
  const attention = 12 * c.numLayers * d * ((seqLen * (seqLen + 1)) / 2);
  return windows * (dense + attention);
}
