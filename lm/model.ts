/**
 * A LLaMA-architecture decoder on ring/: token embedding → N pre-norm blocks (RMSNorm, RoPE,
 * grouped-query attention, SwiGLU; ring/transformer.ts) → final RMSNorm → LM head (tied to the
 * embedding or not). Attention is any ring/ implementation; blockwise FFN and per-layer gradient
 * checkpointing as the paper trains (§4: full checkpointing). Greedy and sampled generation with
 * a KV cache.
 *
 * Weights are kept as (in, out) matrices (ring/'s `linear`); Hugging Face stores nn.Linear as
 * (out, in), so lm/safetensors.ts transposes at the boundary.
 */
import * as tf from '@tensorflow/tfjs';
import { transformerBlock, transformerBlockIsNative } from '../block/index.js';
import { InputError, Rng } from '../common/index.js';
import { fusedNormApplies } from '../native/index.js';
import {
  type AttentionImpl,
  applyRope,
  type BlockWeights,
  blockVariables,
  blockwiseFeedForward,
  checkBlockConfig,
  checkpoint,
  dims,
  embeddingLookup,
  feedForward,
  initBlock,
  linear,
  normalize,
  type RopeFrequencies,
  type SequenceContext,
  type TransformerBlockConfig,
  vanillaAttention,
} from '../ring/index.js';
import { countedTargets, headCrossEntropy, IGNORE_INDEX } from './head-loss.js';
import {
  checkRopeScaling,
  type RopeScaling,
  ropeFrequencies,
  ropeFromHfConfig,
  ropeScalingToHf,
} from './rope.js';

/** The LLaMA hyper-parameters, named as in our code; `fromHfConfig`/`toHfConfig` map HF's names. */
export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Key/value heads (grouped-query attention); = numHeads for multi-head attention. */
  numKvHeads: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** Linear position interpolation factor (HF `rope_scaling: {type: linear, factor}`); 1 = none. */
  ropeScalingFactor: number;
  /**
   * A RoPE frequency scaling other than linear (llama3, yarn, dynamic, longrope; lm/rope.ts), or
   * none. Exclusive with ropeScalingFactor ≠ 1.
   */
  ropeScaling?: RopeScaling;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  bosTokenId: number;
  eosTokenId: number;
}

/** How the model runs (not part of the checkpoint). */
export interface LlamaRuntime {
  attention: AttentionImpl;
  /** Block size of memeff/blockwise/ring attention. */
  blockSize: number;
  /** Tokens per FFN chunk (blockwise FFN); 0 = whole sequence. */
  ffnChunk: number;
  /** Recompute each layer in the backward pass instead of keeping its activations. */
  checkpointLayers: boolean;
  /**
   * Rows per chunk of the head + cross-entropy (lm/head-loss.ts); default: 2 MiB of logits a
   * chunk. The context-scaling experiment passes its block size, as BPT computes the loss block by
   * block (at V = 256 the default chunk is 2,048 rows, whose logits and softmax held a context's
   * first 2K tokens at ≈ 4 KB each).
   */
  lossChunkRows?: number;
}

export const DEFAULT_RUNTIME: LlamaRuntime = {
  attention: 'blockwise',
  blockSize: 128,
  ffnChunk: 128,
  checkpointLayers: true,
};

/** HF `config.json` fields of a LLaMA model (the subset we read and write). */
export interface HfLlamaConfig {
  architectures?: string[];
  model_type?: string;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  rms_norm_eps?: number;
  rope_theta?: number;
  /** Older transformers' RoPE spelling; transformers ≥ 5 writes rope_parameters (lm/rope.ts reads both). */
  rope_scaling?: Record<string, unknown> | null;
  rope_parameters?: Record<string, unknown>;
  tie_word_embeddings?: boolean;
  max_position_embeddings?: number;
  bos_token_id?: number;
  eos_token_id?: number | number[];
  hidden_act?: string;
  attention_bias?: boolean;
  mlp_bias?: boolean;
  head_dim?: number;
  [key: string]: unknown;
}

function need(c: Record<string, unknown>, key: string, where: string): number {
  const v = c[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw new InputError(`${where}: key "${key}": expected a positive integer; got ${JSON.stringify(v)}`);
  return v;
}

/** Reads HF's config.json fields; throws InputError naming the key on what we cannot run. */
export function fromHfConfig(hf: HfLlamaConfig, where = 'config.json'): LlamaConfig {
  const c = hf as Record<string, unknown>;
  if (hf.model_type !== undefined && hf.model_type !== 'llama')
    throw new InputError(
      `${where}: key "model_type": expected "llama"; got ${JSON.stringify(hf.model_type)}`,
    );
  if (hf.hidden_act !== undefined && hf.hidden_act !== 'silu')
    throw new InputError(`${where}: key "hidden_act": expected "silu"; got ${JSON.stringify(hf.hidden_act)}`);
  if (hf.attention_bias || hf.mlp_bias)
    throw new InputError(`${where}: attention_bias/mlp_bias are not supported (LLaMA has no biases)`);
  const heads = need(c, 'num_attention_heads', where);
  const hidden = need(c, 'hidden_size', where);
  if (hf.head_dim !== undefined && hf.head_dim !== null && hf.head_dim !== hidden / heads)
    throw new InputError(
      `${where}: key "head_dim": expected hidden_size / num_attention_heads = ${hidden / heads}; got ${hf.head_dim}`,
    );
  const maxPositions = hf.max_position_embeddings ?? 2048;
  const rope = ropeFromHfConfig(c, hidden / heads, maxPositions, where);
  const eos = Array.isArray(hf.eos_token_id) ? hf.eos_token_id[0] : hf.eos_token_id;
  const cfg: LlamaConfig = {
    vocabSize: need(c, 'vocab_size', where),
    hiddenSize: hidden,
    intermediateSize: need(c, 'intermediate_size', where),
    numLayers: need(c, 'num_hidden_layers', where),
    numHeads: heads,
    numKvHeads: hf.num_key_value_heads ?? heads,
    rmsNormEps: hf.rms_norm_eps ?? 1e-6,
    ropeTheta: rope.theta,
    ropeScalingFactor: rope.linearFactor,
    ...(rope.scaling ? { ropeScaling: rope.scaling } : {}),
    tieWordEmbeddings: hf.tie_word_embeddings ?? false,
    maxPositionEmbeddings: maxPositions,
    bosTokenId: hf.bos_token_id ?? 1,
    eosTokenId: eos ?? 2,
  };
  checkLlamaConfig(cfg, where);
  return cfg;
}

/** Our config as HF's config.json (LlamaForCausalLM). */
export function toHfConfig(c: LlamaConfig): HfLlamaConfig {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.hiddenSize / c.numHeads,
    hidden_act: 'silu',
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling
      ? { ...ropeScalingToHf(c.ropeScaling), rope_theta: c.ropeTheta }
      : c.ropeScalingFactor !== 1
        ? { type: 'linear', rope_type: 'linear', factor: c.ropeScalingFactor }
        : null,
    // transformers ≥ 5 reads RoPE from here; older versions from rope_theta / rope_scaling
    rope_parameters: c.ropeScaling
      ? { ...ropeScalingToHf(c.ropeScaling), rope_theta: c.ropeTheta }
      : c.ropeScalingFactor !== 1
        ? { rope_type: 'linear', rope_theta: c.ropeTheta, factor: c.ropeScalingFactor }
        : { rope_type: 'default', rope_theta: c.ropeTheta },
    tie_word_embeddings: c.tieWordEmbeddings,
    max_position_embeddings: c.maxPositionEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    attention_bias: false,
    mlp_bias: false,
    torch_dtype: 'float32',
  };
}

export function checkLlamaConfig(c: LlamaConfig, where = 'llama'): void {
  for (const k of [
    'vocabSize',
    'hiddenSize',
    'intermediateSize',
    'numLayers',
    'numHeads',
    'numKvHeads',
  ] as const)
    if (!Number.isInteger(c[k]) || c[k] < 1)
      throw new InputError(`${where}: ${k} must be a positive integer; got ${c[k]}`);
  if (!(c.ropeScalingFactor >= 1))
    throw new InputError(`${where}: ropeScalingFactor must be ≥ 1; got ${c.ropeScalingFactor}`);
  if (c.ropeScaling) {
    if (c.ropeScalingFactor !== 1)
      throw new InputError(
        `${where}: ropeScaling (${c.ropeScaling.type}) and ropeScalingFactor ${c.ropeScalingFactor} are exclusive`,
      );
    checkRopeScaling(c.ropeScaling, c.hiddenSize / c.numHeads, where);
  }
  checkBlockConfig(blockConfigOf(c, DEFAULT_RUNTIME), where);
}

/** The ring/ block config of one LLaMA layer. */
export function blockConfigOf(c: LlamaConfig, r: LlamaRuntime): TransformerBlockConfig {
  return {
    dModel: c.hiddenSize,
    heads: c.numHeads,
    kvHeads: c.numKvHeads,
    ffnHidden: c.intermediateSize,
    ffn: 'swiglu',
    norm: 'rms',
    normEps: c.rmsNormEps,
    rope: { theta: c.ropeTheta, interpolation: c.ropeScalingFactor, frequencies: ropeTableOf(c) },
    attention: r.attention,
    blockSize: r.blockSize,
    ffnChunk: r.ffnChunk,
    causal: true,
  };
}

/** The RoPE table per sequence length of a frequency scaling; undefined without one. */
export function ropeTableOf(c: LlamaConfig): ((seqLen: number) => RopeFrequencies) | undefined {
  const s = c.ropeScaling;
  if (!s) return undefined;
  const Dh = c.hiddenSize / c.numHeads;
  return (seqLen) => ropeFrequencies(s, c.ropeTheta, Dh, c.maxPositionEmbeddings, seqLen);
}

export interface LlamaWeights {
  /** (V, Dm) */
  embed: tf.Variable;
  layers: BlockWeights[];
  /** (Dm) */
  norm: tf.Variable;
  /** (Dm, V); absent when tied to the embedding. */
  lmHead?: tf.Variable;
}

/** Parameter count (HF's `num_parameters()`: a tied head counted once). */
export function llamaParameterCount(c: LlamaConfig): number {
  const Dh = c.hiddenSize / c.numHeads;
  const layer =
    2 * c.hiddenSize +
    c.hiddenSize * (c.numHeads + 2 * c.numKvHeads) * Dh +
    c.numHeads * Dh * c.hiddenSize +
    3 * c.hiddenSize * c.intermediateSize;
  return (c.tieWordEmbeddings ? 1 : 2) * c.vocabSize * c.hiddenSize + c.numLayers * layer + c.hiddenSize;
}

/** Per-layer key/value cache for generation: k and v (B, Hk, T_past, Dh). */
export interface KvCache {
  k: (tf.Tensor | undefined)[];
  v: (tf.Tensor | undefined)[];
  length: number;
}

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 = greedy (argmax); > 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Keep only the k most likely tokens when sampling; 0 = all. */
  topK?: number;
  /** Nucleus sampling: the smallest set whose probability reaches topP; 1 = all. */
  topP?: number;
  /** Stop at this token (default the config's EOS; −1 never). */
  eosTokenId?: number;
  rng?: Rng;
}

/** Loss on (B, T) logits against targets; −100 targets are ignored (HF's ignore_index). */
export { IGNORE_INDEX };

export class LlamaModel {
  readonly block: TransformerBlockConfig;

  constructor(
    readonly config: LlamaConfig,
    readonly weights: LlamaWeights,
    readonly runtime: LlamaRuntime = DEFAULT_RUNTIME,
  ) {
    checkLlamaConfig(config);
    this.block = blockConfigOf(config, runtime);
  }

  /** Random init from `rng` (same seed → same weights; GPT-2-style std 0.02, scaled residuals). */
  static init(config: LlamaConfig, rng: Rng, runtime: LlamaRuntime = DEFAULT_RUNTIME): LlamaModel {
    checkLlamaConfig(config);
    const { vocabSize: V, hiddenSize: Dm } = config;
    const block = blockConfigOf(config, runtime);
    const embed = tf.variable(tf.tensor2d(rng.normalArray(V * Dm, 0.02), [V, Dm]), true, 'embed');
    const layers = Array.from({ length: config.numLayers }, () => initBlock(block, rng, config.numLayers));
    const norm = tf.variable(tf.ones([Dm]), true, 'norm');
    const lmHead = config.tieWordEmbeddings
      ? undefined
      : tf.variable(tf.tensor2d(rng.normalArray(Dm * V, 0.02), [Dm, V]), true, 'lmHead');
    return new LlamaModel(config, { embed, layers, norm, lmHead }, runtime);
  }

  /** The same weights run another way (attention impl, checkpointing); shares the variables. */
  withRuntime(runtime: LlamaRuntime): LlamaModel {
    return new LlamaModel(this.config, this.weights, runtime);
  }

  variables(): tf.Variable[] {
    const w = this.weights;
    return [w.embed, ...w.layers.flatMap(blockVariables), w.norm, ...(w.lmHead ? [w.lmHead] : [])];
  }

  dispose(): void {
    tf.dispose(this.variables());
  }

  /** h (B, T, Dm) → logits (B, T, V) through the final norm and the (tied) head. */
  head(h: tf.Tensor): tf.Tensor {
    const { x, w, transposed } = this.headInputs(h);
    return linear(x, transposed ? (tf.transpose(w) as tf.Tensor2D) : w);
  }

  /**
   * The head's input: h (B, T, Dm) after the final norm, and its weight: lm_head (Dm, V), or the
   * tied embedding (V, Dm) as it is (`transposed`).
   */
  private headInputs(h: tf.Tensor): { x: tf.Tensor; w: tf.Tensor2D; transposed: boolean } {
    const { embed, norm, lmHead } = this.weights;
    // NOTE: checkpointed: autodiff of the norm's tfjs ops kept ≈ 3 (B, T, Dm) tensors through the
    // whole backward, the largest per-token term after the layers' inputs (issue 14's memory). The
    // native norm keeps only its input already: a checkpoint around it would recompute its output
    // in the backward for nothing, one (B, T, Dm) more at the step's peak
    const eps = this.config.rmsNormEps;
    const x = fusedNormApplies(h, norm)
      ? normalize(h, norm, 'rms', eps)
      : checkpoint((a, g) => normalize(a, g, 'rms', eps), [h, norm]);
    const w = (lmHead ?? embed) as unknown as tf.Tensor2D;
    return { x, w, transposed: !lmHead };
  }

  /**
   * Hidden states before the final norm: ids (B, T) int32 → (B, T, Dm). `seq` carries segment ids
   * (packed sequences) and, for attention 'ring', the ring (this device's shard of the sequence).
   */
  hidden(ids: tf.Tensor, seq: SequenceContext = {}): tf.Tensor {
    if (ids.rank !== 2 || ids.dtype !== 'int32')
      throw new InputError(`LlamaModel.forward: ids must be (B, T) int32; got ${ids.dtype} [${ids.shape}]`);
    let x = embeddingLookup(this.weights.embed as unknown as tf.Tensor2D, ids); // (B, T, Dm)
    for (const w of this.weights.layers) {
      const input = x;
      // NOTE: a native block checkpoints itself (ring/transformer.ts): wrapping it again would
      // run its forward three times per step
      if (this.runtime.checkpointLayers && !transformerBlockIsNative(x, w, this.block, seq)) {
        // parameters go in as inputs so that their gradients flow out of the checkpoint
        const vars = blockVariables(w);
        const hasGate = w.gate !== undefined;
        x = checkpoint(
          (xi, ...ps) => transformerBlock(xi, unpackBlock(ps, hasGate), this.block, seq),
          [x, ...vars],
        );
      } else x = transformerBlock(x, w, this.block, seq);
      // NOTE: a layer's input is ours to free once the layer has read it: what its backward needs
      // it saved (a clone sharing the buffer, freed after that backward), while tfjs would hold
      // the original to the end of the whole gradient pass (issue 14: the paper's BPT frees each
      // layer's checkpoint as the backward passes it)
      input.dispose();
    }
    return x;
  }

  /** ids (B, T) int32 → logits (B, T, V). */
  forward(ids: tf.Tensor, seq: SequenceContext = {}): tf.Tensor {
    return this.head(this.hidden(ids, seq));
  }

  /**
   * Sum of token cross-entropies over targets ≠ −100, divided by `denominator` (default: the
   * number of counted targets here; on a ring pass the global count so device shares add up).
   * ids, targets (B, T): targets are already the next tokens (shift with `shiftLabels`).
   * `weights` (B, T), when given, scale each counted target's term (head-loss.ts `rowWeights`).
   */
  loss(
    ids: tf.Tensor,
    targets: Int32Array,
    seq: SequenceContext = {},
    denominator?: number,
    weights?: Float32Array,
  ): tf.Scalar {
    const [B, T] = dims(ids);
    if (targets.length !== B * T)
      throw new InputError(
        `LlamaModel.loss: targets must have B·T = ${B * T} entries; got ${targets.length}`,
      );
    // NOTE: head and cross-entropy fused in row chunks: the (B, T, V) logits never exist (head-loss.ts)
    const h = this.hidden(ids, seq);
    const { x, w, transposed } = this.headInputs(h);
    h.dispose(); // the final norm saved what its backward needs (see hidden)
    const loss = headCrossEntropy(x, w, targets, {
      denominator,
      chunkRows: this.runtime.lossChunkRows,
      rowWeights: weights,
      transposed,
    });
    x.dispose(); // the head loss saved its gradients, not x
    return loss;
  }

  /** A fresh, empty KV cache. */
  newCache(): KvCache {
    const n = this.config.numLayers;
    return { k: new Array(n).fill(undefined), v: new Array(n).fill(undefined), length: 0 };
  }

  /**
   * Runs new tokens ids (B, T) at positions cache.length.. through the model, appending their
   * keys and values to `cache`; returns logits (B, T, V). Vanilla attention over the cache (the
   * query block is the last T positions of the keys, causal).
   */
  forwardCached(ids: tf.Tensor, cache: KvCache): tf.Tensor {
    const [, T] = dims(ids);
    const c = this.config;
    const Dh = c.hiddenSize / c.numHeads;
    const positions = Int32Array.from({ length: T }, (_, t) => cache.length + t);
    const table = ropeTableOf(c)?.(cache.length + T);
    const logits = tf.tidy(() => {
      let x = embeddingLookup(this.weights.embed as unknown as tf.Tensor2D, ids); // (B, T, Dm)
      this.weights.layers.forEach((w, i) => {
        const [B] = dims(x);
        const h = normalize(x, w.attnNorm, 'rms', c.rmsNormEps);
        const m = (v: tf.Variable) => v as unknown as tf.Tensor2D;
        const q = applyRope(
          toHeads(linear(h, m(w.wq)), c.numHeads),
          positions,
          c.ropeTheta,
          c.ropeScalingFactor,
          table,
        ); // (B, H, T, Dh)
        const kNew = applyRope(
          toHeads(linear(h, m(w.wk)), c.numKvHeads),
          positions,
          c.ropeTheta,
          c.ropeScalingFactor,
          table,
        ); // (B, Hk, T, Dh)
        const vNew = toHeads(linear(h, m(w.wv)), c.numKvHeads);
        const prevK = cache.k[i];
        const prevV = cache.v[i];
        const k = prevK ? tf.concat([prevK, kNew], 2) : kNew; // (B, Hk, T_past + T, Dh)
        const v = prevV ? tf.concat([prevV, vNew], 2) : vNew;
        const a = vanillaAttention(q, k, v, { causal: true }); // (B, H, T, Dh)
        cache.k[i] = tf.keep(k);
        cache.v[i] = tf.keep(v);
        if (prevK && prevV) tf.dispose([prevK, prevV]);
        const merged = tf.reshape(tf.transpose(a, [0, 2, 1, 3]), [B, T, c.numHeads * Dh]);
        const x1 = tf.add(x, linear(merged, m(w.wo)));
        const h2 = normalize(x1, w.ffnNorm, 'rms', c.rmsNormEps);
        const fw = {
          kind: 'swiglu' as const,
          up: m(w.up),
          down: m(w.down),
          gate: w.gate ? m(w.gate) : undefined,
        };
        const f =
          this.runtime.ffnChunk > 0
            ? blockwiseFeedForward(h2, fw, this.runtime.ffnChunk)
            : feedForward(h2, fw);
        x = tf.add(x1, f);
      });
      return this.head(x);
    });
    cache.length += T;
    return logits;
  }

  /**
   * Continues each prompt (B rows of equal length) by up to `maxNewTokens` tokens with a KV cache:
   * the prompt runs once (prefill), then one token per step. Returns the new tokens per row
   * (a row stops after its EOS, which is included).
   */
  generate(prompt: number[][], options: GenerateOptions): number[][] {
    const B = prompt.length;
    const T0 = prompt[0]?.length ?? 0;
    if (B === 0 || T0 === 0 || prompt.some((p) => p.length !== T0))
      throw new InputError(`LlamaModel.generate: prompts must be non-empty and of equal length`);
    if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 0)
      throw new InputError(
        `LlamaModel.generate: maxNewTokens must be a non-negative integer; got ${options.maxNewTokens}`,
      );
    for (const p of prompt)
      for (const t of p)
        if (!(Number.isInteger(t) && t >= 0 && t < this.config.vocabSize))
          throw new InputError(`LlamaModel.generate: token ${t} is outside [0, ${this.config.vocabSize})`);
    const eos = options.eosTokenId ?? this.config.eosTokenId;
    const temperature = options.temperature ?? 0;
    const rng = options.rng ?? new Rng(0);
    const cache = this.newCache();
    const out: number[][] = prompt.map(() => []);
    const done = new Array(B).fill(false);
    let ids = tf.tensor2d(prompt.flat(), [B, T0], 'int32');
    try {
      for (let step = 0; step < options.maxNewTokens; step++) {
        const logits = this.forwardCached(ids, cache); // (B, T, V)
        const [, T, V] = dims(logits);
        const all = logits.dataSync() as Float32Array;
        logits.dispose();
        ids.dispose();
        const next: number[] = [];
        for (let b = 0; b < B; b++) {
          const row = all.subarray((b * T + T - 1) * V, (b * T + T) * V);
          const tok =
            temperature > 0
              ? sampleToken(row, temperature, options.topK ?? 0, options.topP ?? 1, rng)
              : argmax(row);
          next.push(tok);
          if (!done[b]) {
            out[b].push(tok);
            if (tok === eos) done[b] = true;
          }
        }
        ids = tf.tensor2d(next, [B, 1], 'int32');
        if (done.every(Boolean)) break;
      }
    } finally {
      ids.dispose();
      tf.dispose([...cache.k, ...cache.v].filter((t): t is tf.Tensor => t !== undefined));
    }
    return out;
  }
}

function unpackBlock(ps: tf.Tensor[], hasGate: boolean): BlockWeights {
  const v = ps as unknown as tf.Variable[];
  return {
    attnNorm: v[0],
    wq: v[1],
    wk: v[2],
    wv: v[3],
    wo: v[4],
    ffnNorm: v[5],
    up: v[6],
    down: v[7],
    gate: hasGate ? v[8] : undefined,
  };
}

/** (B, T, heads·Dh) → (B, heads, T, Dh) */
function toHeads(x: tf.Tensor, heads: number): tf.Tensor {
  const [B, T, W] = dims(x);
  return tf.transpose(tf.reshape(x, [B, T, heads, W / heads]), [0, 2, 1, 3]);
}

/**
 * logits (B, T, V), targets B·T (−100 = ignored) → Σ −log p(target) / denominator. The one-hot
 * product instead of a gather: wasm has no gather gradient (ring/ops.ts).
 */
export function maskedCrossEntropy(logits: tf.Tensor, targets: Int32Array, denominator?: number): tf.Scalar {
  const V = dims(logits)[logits.rank - 1];
  const N = targets.length;
  const { safe, weight, count } = countedTargets(targets, V, 'maskedCrossEntropy');
  const denom = denominator ?? Math.max(1, count);
  return tf.tidy(() => {
    const logp = tf.logSoftmax(tf.reshape(logits, [N, V])); // (N, V)
    const picked = tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d(safe, 'int32'), V)), 1); // (N)
    return tf.div(tf.neg(tf.sum(tf.mul(picked, tf.tensor1d(weight)))), denom) as tf.Scalar;
  });
}

/** HF's causal-LM convention: labels aligned with ids → next-token targets (last = −100). */
export function shiftLabels(labels: ArrayLike<number>, B: number, T: number): Int32Array {
  const out = new Int32Array(B * T).fill(IGNORE_INDEX);
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) out[b * T + t] = labels[b * T + t + 1];
  return out;
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** One token from softmax(row / temperature), restricted to top-k and nucleus top-p. */
export function sampleToken(
  row: Float32Array,
  temperature: number,
  topK: number,
  topP: number,
  rng: Rng,
): number {
  const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a]);
  const keep = topK > 0 ? order.slice(0, topK) : order;
  const max = row[keep[0]];
  const p = keep.map((i) => Math.exp((row[i] - max) / temperature));
  const total = p.reduce((a, b) => a + b, 0);
  let cum = 0;
  let n = 0;
  for (; n < p.length; n++) {
    p[n] /= total;
    cum += p[n];
    if (cum >= topP) {
      n++;
      break;
    }
  }
  const kept = p.slice(0, n);
  const mass = kept.reduce((a, b) => a + b, 0);
  let u = rng.next() * mass;
  for (let i = 0; i < kept.length; i++) {
    u -= kept[i];
    if (u <= 0) return keep[i];
  }
  return keep[kept.length - 1];
}
