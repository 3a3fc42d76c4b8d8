/**
 * A pre-norm transformer block whose attention is any ring/ implementation and whose FFN is
 * blockwise (the paper's Blockwise Parallel Transformer block). The RL policies (Agentic and
 * Decision Transformer) and the LLaMA decoder stack these with their own embeddings and heads.
 *
 *   x → x + Wo · attention(RoPE(Wq·norm(x)), RoPE(Wk·norm(x)), Wv·norm(x))
 *     → x + FFN(norm(x))
 *
 * Inside a ring device, `attention: 'ring'` runs `ringAttentionDevice` on this device's shard of
 * the sequence; the other implementations see the whole sequence.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError, type Rng } from '../common/index.js';
import { fusedNormApplies, fusedNormBackward, fusedNormForward } from '../native/index.js';
import { blockwiseAttention } from './attention/blockwise.js';
import { memeffAttention } from './attention/memeff.js';
import { ringAttentionDevice, tokenIndices } from './attention/ring.js';
import type { AttentionImpl, RingLayout } from './attention/types.js';
import { vanillaAttention } from './attention/vanilla.js';
import { blockwiseFeedForward, type FeedForwardKind, feedForward, fusedFeedForwardSublayer } from './ffn.js';
import { customOp, dims, linear, releaseAfterBackward } from './ops.js';
import type { RingTransport } from './transport.js';

export interface TransformerBlockConfig {
  dModel: number;
  heads: number;
  /** Key/value heads (grouped-query attention); = heads for multi-head attention. */
  kvHeads: number;
  ffnHidden: number;
  ffn: FeedForwardKind;
  norm: 'rms' | 'layer';
  normEps: number;
  /**
   * Rotary position embedding (LLaMA): theta, and a position-interpolation factor ≥ 1; or, for
   * frequency scalings (llama3, YaRN, dynamic NTK, LongRoPE: lm/rope.ts), a table per sequence
   * length that replaces theta's frequencies.
   */
  rope?: { theta: number; interpolation?: number; frequencies?: (seqLen: number) => RopeFrequencies };
  // NOTE: without RoPE, positions come from the model's own embeddings (RL policies)
  attention: AttentionImpl;
  /** Block size of memeff/blockwise/ring attention. */
  blockSize: number;
  /** Tokens per FFN chunk; 0 = the whole sequence at once. */
  ffnChunk: number;
  /**
   * The native block (issue 14) keeps the attention's q, k, v, output and log-sum-exp between
   * forward and backward, instead of only x (BPT's full checkpointing, the default), which
   * recomputes them: one attention forward and one input side fewer per step, ≈ 4·Dm more floats
   * per token and layer.
   */
  keepAttention?: boolean;
  /**
   * With keepAttention, the native block also keeps its output side's x1 and FFN pre-activations
   * (Dm + F floats per token and layer, + F with SwiGLU), so the backward does not recompute the
   * output projection and the FFN's first product: where memory does not bind, as keepAttention.
   */
  keepFfn?: boolean;
  /**
   * Query rows per chunk of the native block's recomputing backward with blockwise attention
   * (block/chunked-backward.ts): q, the output, dO and dQ exist for this many tokens at a time
   * instead of the whole sequence. 0 = the whole sequence at once; default 1024.
   */
  backwardChunk?: number;
  causal: boolean;
}

/** Where this block's tokens sit, and the ring when attention is 'ring'. */
export interface SequenceContext {
  /** Segment ids (B, T_global) row-major, or none. */
  segmentIds?: Int32Array;
  ring?: { transport: RingTransport; seqLen: number; layout: RingLayout };
}

export interface BlockWeights {
  attnNorm: tf.Variable; // (Dm)
  wq: tf.Variable; // (Dm, H·Dh)
  wk: tf.Variable; // (Dm, Hk·Dh)
  wv: tf.Variable; // (Dm, Hk·Dh)
  wo: tf.Variable; // (H·Dh, Dm)
  ffnNorm: tf.Variable; // (Dm)
  up: tf.Variable; // (Dm, F)
  down: tf.Variable; // (F, Dm)
  gate?: tf.Variable; // (Dm, F), SwiGLU
}

export function checkBlockConfig(c: TransformerBlockConfig, where = 'transformer'): void {
  if (c.dModel % c.heads !== 0)
    throw new InputError(`${where}: dModel ${c.dModel} is not divisible by heads ${c.heads}`);
  if (c.heads % c.kvHeads !== 0)
    throw new InputError(`${where}: heads ${c.heads} is not a multiple of kvHeads ${c.kvHeads}`);
  if (c.rope && (c.dModel / c.heads) % 2 !== 0)
    throw new InputError(`${where}: RoPE needs an even head dim; got ${c.dModel / c.heads}`);
  if (c.keepFfn && !c.keepAttention)
    throw new InputError(
      `${where}: keepFfn keeps the FFN's activations beside the attention's; it needs keepAttention`,
    );
}

/** Deterministic initialisation from `rng` (same seed → same weights on every device). */
export function initBlock(c: TransformerBlockConfig, rng: Rng, layers: number): BlockWeights {
  checkBlockConfig(c);
  const Dh = c.dModel / c.heads;
  // NOTE: tfjs variable names must be unique per thread; they are left to tfjs, since several
  // models may live in one thread
  const w = (rows: number, cols: number, std: number) =>
    tf.variable(tf.tensor2d(rng.normalArray(rows * cols, std), [rows, cols]), true);
  const std = 0.02;
  // GPT-2: residual projections scaled by 1/√(2·layers) so activations do not grow with depth
  const resid = std / Math.sqrt(2 * layers);
  return {
    attnNorm: tf.variable(tf.ones([c.dModel]), true),
    wq: w(c.dModel, c.heads * Dh, std),
    wk: w(c.dModel, c.kvHeads * Dh, std),
    wv: w(c.dModel, c.kvHeads * Dh, std),
    wo: w(c.heads * Dh, c.dModel, resid),
    ffnNorm: tf.variable(tf.ones([c.dModel]), true),
    up: w(c.dModel, c.ffnHidden, std),
    down: w(c.ffnHidden, c.dModel, resid),
    gate: c.ffn === 'swiglu' ? w(c.dModel, c.ffnHidden, std) : undefined,
  };
}

export function blockVariables(w: BlockWeights): tf.Variable[] {
  return [w.attnNorm, w.wq, w.wk, w.wv, w.wo, w.ffnNorm, w.up, w.down, ...(w.gate ? [w.gate] : [])];
}

/** RMSNorm (LLaMA) or LayerNorm without bias over the last axis, times `gain`. */
export function normalize(x: tf.Tensor, gain: tf.Tensor, kind: 'rms' | 'layer', eps: number): tf.Tensor {
  // NOTE: one native op where the addon runs: it keeps x alone for the backward, where autodiff of
  // the ops below keeps ≈ 3 (…, D) tensors (issue 14); the ops stay the reference
  if (!fusedNormApplies(x, gain)) return normOps(x, gain, kind, eps);
  const op = customOp(([xi, g], save) => {
    save([xi, g]);
    return {
      value: must(fusedNormForward(xi, g, kind, eps)),
      gradFunc: (dy, saved) => {
        const grads = must(fusedNormBackward(saved[0], saved[1], kind, eps, dy));
        releaseAfterBackward(dy, saved, grads);
        return grads;
      },
    };
  });
  return op(x, gain);
}

/** A native result that its `…Applies` check vouched for. */
function must<T>(r: T | undefined): T {
  if (r === undefined) throw new Error('native norm called where fusedNormApplies is false');
  return r;
}

/** The norm as tfjs ops: the reference and the fallback. */
function normOps(x: tf.Tensor, gain: tf.Tensor, kind: 'rms' | 'layer', eps: number): tf.Tensor {
  return tf.tidy(() => {
    let centred = x;
    if (kind === 'layer') centred = tf.sub(x, tf.mean(x, -1, true));
    const ms = tf.mean(tf.square(centred), -1, true);
    return tf.mul(tf.mul(centred, tf.rsqrt(tf.add(ms, eps))), gain);
  });
}

/** Positions of the local tokens: the ring shard's global positions, else 0..T−1. */
export function localPositions(T: number, seq: SequenceContext): Int32Array {
  if (!seq.ring) return Int32Array.from({ length: T }, (_, t) => t);
  const { transport, seqLen, layout } = seq.ring;
  return tokenIndices(transport.rank, transport.worldSize, seqLen, layout);
}

/** RoPE frequencies that replace theta's: inverse (Dh/2) per pair, and a gain on cos and sin. */
export interface RopeFrequencies {
  inverse: ArrayLike<number>;
  /** Multiplies cos and sin (YaRN's and LongRoPE's attention factor); 1 = none. */
  scale: number;
}

/**
 * Rotary embedding, Hugging Face's rotate_half layout: x·cos + rotate_half(x)·sin, with
 * angle(p, i) = (p / interpolation) · theta^(−2i/Dh), or p · frequencies.inverse[i] (times
 * frequencies.scale on cos and sin) when a table is given. x (B, H, T, Dh).
 */
export function applyRope(
  x: tf.Tensor,
  positions: Int32Array,
  theta: number,
  interpolation = 1,
  frequencies?: RopeFrequencies,
): tf.Tensor {
  const [, , T, Dh] = dims(x);
  const half = Dh / 2;
  const { cos, sin } = ropeTables(positions, Dh, theta, interpolation, frequencies);
  return tf.tidy(() => {
    const x1 = tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, half]);
    const x2 = tf.slice(x, [0, 0, 0, half], [-1, -1, -1, half]);
    const rotated = tf.concat([tf.neg(x2), x1], 3);
    return tf.add(tf.mul(x, tf.tensor2d(cos, [T, Dh])), tf.mul(rotated, tf.tensor2d(sin, [T, Dh])));
  });
}

/** RoPE's cos and sin (T, Dh) at `positions`, as `applyRope` applies them (and the native block). */
export function ropeTables(
  positions: Int32Array,
  Dh: number,
  theta: number,
  interpolation = 1,
  frequencies?: RopeFrequencies,
): { cos: Float32Array; sin: Float32Array } {
  const T = positions.length;
  const half = Dh / 2;
  const cos = new Float32Array(T * Dh);
  const sin = new Float32Array(T * Dh);
  const gain = frequencies?.scale ?? 1;
  for (let t = 0; t < T; t++) {
    const p = frequencies ? positions[t] : positions[t] / interpolation;
    for (let i = 0; i < half; i++) {
      const a = p * (frequencies ? frequencies.inverse[i] : theta ** ((-2 * i) / Dh));
      cos[t * Dh + i] = cos[t * Dh + i + half] = gain * Math.cos(a);
      sin[t * Dh + i] = sin[t * Dh + i + half] = gain * Math.sin(a);
    }
  }
  return { cos, sin };
}

/** (B, T, heads·Dh) → (B, heads, T, Dh) */
function toHeads(x: tf.Tensor, heads: number): tf.Tensor {
  const [B, T, W] = dims(x);
  return tf.transpose(tf.reshape(x, [B, T, heads, W / heads]), [0, 2, 1, 3]);
}

/** The attention options of a block; `T` its local tokens (a ring device's block is at most its shard). */
export function attentionOptions(c: TransformerBlockConfig, seq: SequenceContext, T: number) {
  const options = { causal: c.causal, blockSize: c.blockSize, segmentIds: seq.segmentIds };
  return { options, ring: seq.ring && { ...options, blockSize: Math.min(c.blockSize, T), ...seq.ring } };
}

/** Attention of (B, H, T, Dh) queries with the configured implementation. */
export function attend(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  c: TransformerBlockConfig,
  seq: SequenceContext,
): tf.Tensor {
  const { options, ring } = attentionOptions(c, seq, dims(q)[2]);
  switch (c.attention) {
    case 'vanilla':
      return vanillaAttention(q, k, v, options);
    case 'memeff':
      return memeffAttention(q, k, v, options);
    case 'blockwise':
      return blockwiseAttention(q, k, v, options);
    case 'ring': {
      if (!ring)
        throw new InputError(`attention 'ring' runs on ring devices; this block has no ring context`);
      return ringAttentionDevice(q, k, v, ring);
    }
  }
}

/**
 * Keys and values of the tokens seen so far, per block, for incremental decoding (generation,
 * policy rollouts): each new token attends to the cache instead of recomputing the context.
 */
export interface KvCache {
  k?: tf.Tensor; // (B, Hk, T, Dh), kept
  v?: tf.Tensor;
  /** Tokens in the cache. */
  length: number;
}

export function emptyKvCache(): KvCache {
  return { length: 0 };
}

/** Keeps the last `maxTokens` tokens of the cache (a sliding window; valid without RoPE). */
export function trimKvCache(c: KvCache, maxTokens: number): void {
  if (c.length <= maxTokens || !c.k || !c.v) return;
  const [B, H, T, D] = dims(c.k);
  const k = tf.slice(c.k, [0, 0, T - maxTokens, 0], [B, H, maxTokens, D]);
  const v = tf.slice(c.v, [0, 0, T - maxTokens, 0], [B, H, maxTokens, D]);
  tf.dispose([c.k, c.v]);
  c.k = k;
  c.v = v;
  c.length = maxTokens;
}

export function disposeKvCache(c: KvCache): void {
  tf.dispose([c.k, c.v].filter((t): t is tf.Tensor => t !== undefined));
  c.k = c.v = undefined;
  c.length = 0;
}

const asMatrix = (v: tf.Variable) => v as unknown as tf.Tensor2D;

/**
 * Queries, keys and values of x (B, T, Dm) at token `positions`: (B, H|Hk, T, Dh), rotated.
 * seqLen: the whole sequence's length (all ring shards; the cache plus the new tokens), which
 * length-dependent RoPE scalings (dynamic NTK, LongRoPE) read.
 */
function projectQkv(
  x: tf.Tensor,
  w: BlockWeights,
  c: TransformerBlockConfig,
  positions: () => Int32Array,
  seqLen: number,
) {
  const h = normalize(x, w.attnNorm, c.norm, c.normEps);
  let q = toHeads(linear(h, asMatrix(w.wq)), c.heads); // (B, H, T, Dh)
  let k = toHeads(linear(h, asMatrix(w.wk)), c.kvHeads); // (B, Hk, T, Dh)
  const v = toHeads(linear(h, asMatrix(w.wv)), c.kvHeads);
  if (c.rope) {
    const pos = positions();
    const table = c.rope.frequencies?.(seqLen);
    q = applyRope(q, pos, c.rope.theta, c.rope.interpolation, table);
    k = applyRope(k, pos, c.rope.theta, c.rope.interpolation, table);
  }
  return { q, k, v };
}

/** The rest of the block after attention: output projection, residual, FFN, residual. */
function finishBlock(
  x: tf.Tensor,
  a: tf.Tensor,
  w: BlockWeights,
  c: TransformerBlockConfig,
  ffnChunk: number,
): tf.Tensor {
  const [B, T, Dm] = dims(x);
  const merged = tf.reshape(tf.transpose(a, [0, 2, 1, 3]), [B, T, Dm]); // (B, H, T, Dh) → (B, T, H·Dh)
  const x1 = tf.add(x, linear(merged, asMatrix(w.wo)));
  const weights = {
    kind: c.ffn,
    up: asMatrix(w.up),
    down: asMatrix(w.down),
    gate: w.gate ? asMatrix(w.gate) : undefined,
  };
  // the tfjs sublayer: the reference, and the path wherever the native one cannot run
  const sublayer = (xIn: tf.Tensor, gain: tf.Tensor, ...ws: tf.Tensor[]) => {
    const wsIn = {
      kind: c.ffn,
      up: ws[0] as tf.Tensor2D,
      down: ws[1] as tf.Tensor2D,
      gate: ws[2] as tf.Tensor2D | undefined,
    };
    const h2 = normalize(xIn, gain, c.norm, c.normEps);
    const f = ffnChunk > 0 ? blockwiseFeedForward(h2, wsIn, ffnChunk) : feedForward(h2, wsIn);
    return tf.add(xIn, f);
  };
  return (
    fusedFeedForwardSublayer(x1, w.ffnNorm, weights, c.norm, c.normEps, sublayer) ??
    sublayer(x1, w.ffnNorm, weights.up, weights.down, ...(weights.gate ? [weights.gate] : []))
  );
}

/**
 * xNew (B, Tn, Dm): the next Tn tokens at positions cache.length…; returns their outputs
 * (B, Tn, Dm) and appends their keys and values to `cache`. No gradients (inference). Attention
 * is vanilla over the cache (queries are the last positions), which is exact for every
 * implementation; segment ids are not supported here.
 */
export function transformerBlockStep(
  xNew: tf.Tensor,
  w: BlockWeights,
  c: TransformerBlockConfig,
  cache: KvCache,
): tf.Tensor {
  const Tn = dims(xNew)[1];
  const out = tf.tidy(() => {
    const { q, k, v } = projectQkv(
      xNew,
      w,
      c,
      () => Int32Array.from({ length: Tn }, (_, t) => cache.length + t),
      cache.length + Tn,
    );
    const kAll = cache.k ? tf.concat([cache.k, k], 2) : k;
    const vAll = cache.v ? tf.concat([cache.v, v], 2) : v;
    const a = vanillaAttention(q, kAll, vAll, { causal: c.causal }); // (B, H, Tn, Dh)
    return { y: finishBlock(xNew, a, w, c, 0), kAll: tf.keep(kAll), vAll: tf.keep(vAll) };
  });
  if (out.kAll !== cache.k) cache.k?.dispose();
  if (out.vAll !== cache.v) cache.v?.dispose();
  cache.k = out.kAll;
  cache.v = out.vAll;
  cache.length += Tn;
  return out.y;
}

/**
 * x (B, T, Dm) → (B, T, Dm) in tfjs ops: the reference, the fallback and the GPU path. Models call
 * block/'s `transformerBlock`, which runs the block as one native op where the addon can.
 */
export function transformerBlock(
  x: tf.Tensor,
  w: BlockWeights,
  c: TransformerBlockConfig,
  seq: SequenceContext,
): tf.Tensor {
  const T = dims(x)[1];
  const { q, k, v } = projectQkv(x, w, c, () => localPositions(T, seq), seq.ring?.seqLen ?? T);
  return finishBlock(x, attend(q, k, v, c, seq), w, c, c.ffnChunk);
}
