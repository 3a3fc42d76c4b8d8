/**
 * Trajectories as token sequences. Every step of a trajectory becomes a few tokens of different
 * modalities (target return, state, action, completion flag …); a policy embeds each token by its
 * modality and predicts the action from the state token. Working per token (not per step) is what
 * lets the ring split a sequence anywhere: each device embeds, attends and scores only its tokens.
 */

/** One token batch: B sequences of T tokens. Feature rows are zero-padded to `featDim`. */
export interface TokenBatch {
  batch: number;
  /** Tokens per sequence. */
  length: number;
  featDim: number;
  actDim: number;
  /** (B, T) modality index of each token. */
  types: Int32Array;
  /** (B, T, featDim) the token's value (a state, an action, a scalar in column 0). */
  feats: Float32Array;
  /** (B, T) step index within the token's trajectory (for the timestep embedding). */
  timesteps: Int32Array;
  /** (B, T) 1 for real tokens, 0 for padding (padding never attends to, or is seen by, real tokens). */
  segments: Int32Array;
  /** (B, T, actDim) the action to predict at this token (state tokens), else zeros. */
  targets: Float32Array;
  /** (B, T) loss weight: 1 on state tokens of real steps. */
  weights: Float32Array;
  /**
   * (B, seqLen) segment ids of the whole sequence when this batch is one ring device's shard
   * (set by `selectTokens`): ring attention masks the keys other devices send by their global
   * positions, which the shard's own `segments` cannot tell (issue 21).
   */
  sequenceSegments?: Int32Array;
}

export function emptyTokenBatch(batch: number, length: number, featDim: number, actDim: number): TokenBatch {
  return {
    batch,
    length,
    featDim,
    actDim,
    types: new Int32Array(batch * length),
    feats: new Float32Array(batch * length * featDim),
    timesteps: new Int32Array(batch * length),
    segments: new Int32Array(batch * length),
    targets: new Float32Array(batch * length * actDim),
    weights: new Float32Array(batch * length),
  };
}

/** The tokens at positions `idx` of every sequence (a ring device's shard), in that order. */
export function selectTokens(b: TokenBatch, idx: Int32Array): TokenBatch {
  const out = emptyTokenBatch(b.batch, idx.length, b.featDim, b.actDim);
  out.sequenceSegments = b.sequenceSegments ?? b.segments;
  for (let s = 0; s < b.batch; s++) {
    for (let j = 0; j < idx.length; j++) {
      const from = s * b.length + idx[j];
      const to = s * idx.length + j;
      out.types[to] = b.types[from];
      out.timesteps[to] = b.timesteps[from];
      out.segments[to] = b.segments[from];
      out.weights[to] = b.weights[from];
      out.feats.set(b.feats.subarray(from * b.featDim, (from + 1) * b.featDim), to * b.featDim);
      out.targets.set(b.targets.subarray(from * b.actDim, (from + 1) * b.actDim), to * b.actDim);
    }
  }
  return out;
}

/** Pads every sequence with `extra` padding tokens at the end (ring: length divisible by N). */
export function padTokens(b: TokenBatch, extra: number): TokenBatch {
  if (extra === 0) return b;
  const [T, L, F, A] = [b.length, b.length + extra, b.featDim, b.actDim];
  const out = emptyTokenBatch(b.batch, L, F, A);
  for (let s = 0; s < b.batch; s++) {
    out.types.set(b.types.subarray(s * T, (s + 1) * T), s * L);
    out.timesteps.set(b.timesteps.subarray(s * T, (s + 1) * T), s * L);
    out.segments.set(b.segments.subarray(s * T, (s + 1) * T), s * L);
    out.weights.set(b.weights.subarray(s * T, (s + 1) * T), s * L);
    out.feats.set(b.feats.subarray(s * T * F, (s + 1) * T * F), s * L * F);
    out.targets.set(b.targets.subarray(s * T * A, (s + 1) * T * A), s * L * A);
  }
  return out;
}
