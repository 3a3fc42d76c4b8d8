/**
 * The transformer both Decision Transformer and Agentic Transformer are made of: tokens embedded
 * by modality (one linear map per modality) plus a learned timestep embedding, a stack of
 * ring/ transformer blocks (any attention implementation, blockwise FFN), and an action head
 * with tanh on the state tokens. Loss: mean squared error of the predicted actions.
 */
import * as tf from '@tensorflow/tfjs';
import { transformerBlock } from '../../block/index.js';
import { InputError, type Rng } from '../../common/index.js';
import { modalityEmbedApplies, modalityEmbedBackward, modalityEmbedForward } from '../../native/index.js';
import {
  type AttentionImpl,
  type BlockWeights,
  blockVariables,
  checkBlockConfig,
  constantLinear,
  customOp,
  embeddingLookup,
  initBlock,
  type KvCache,
  normalize,
  releaseAfterBackward,
  type SequenceContext,
  type TransformerBlockConfig,
  transformerBlockStep,
} from '../../ring/index.js';
import { type ActionHead, actionHead, actionLoss } from './action-loss.js';
import type { TokenBatch } from './tokens.js';

export interface TrajectoryTransformerConfig {
  /** Width of each modality's values (e.g. [1, obsDim, actDim] for return, state, action). */
  modalities: number[];
  /** Index of the modality whose tokens predict the action (the state). */
  actionFrom: number;
  actDim: number;
  dModel: number;
  layers: number;
  heads: number;
  /** Largest timestep + 1 (episode length). */
  maxTimestep: number;
  attention: AttentionImpl;
  blockSize: number;
  /** The native block keeps its attention's tensors instead of recomputing them (ring/transformer.ts); default false. */
  keepAttention?: boolean;
  /** With keepAttention, the FFN's activations too (ring/transformer.ts); default false. */
  keepFfn?: boolean;
}

export function blockConfigOf(c: TrajectoryTransformerConfig): TransformerBlockConfig {
  const cfg: TransformerBlockConfig = {
    dModel: c.dModel,
    heads: c.heads,
    kvHeads: c.heads,
    ffnHidden: 4 * c.dModel,
    ffn: 'gelu',
    norm: 'layer',
    normEps: 1e-5,
    attention: c.attention,
    blockSize: c.blockSize,
    ffnChunk: c.attention === 'blockwise' || c.attention === 'ring' ? c.blockSize : 0,
    causal: true,
    keepAttention: c.keepAttention ?? false,
    keepFfn: c.keepFfn ?? false,
  };
  checkBlockConfig(cfg, 'trajectory transformer');
  return cfg;
}

export class TrajectoryTransformer {
  readonly featDim: number;
  private readonly embedW: tf.Variable[]; // per modality (width, Dm)
  private readonly embedB: tf.Variable[]; // per modality (Dm)
  private readonly timeEmbed: tf.Variable; // (maxTimestep, Dm)
  private readonly inNorm: tf.Variable; // (Dm)
  private readonly blocks: BlockWeights[];
  private readonly outNorm: tf.Variable;
  private readonly headW: tf.Variable; // (Dm, A)
  private readonly headB: tf.Variable; // (A)
  readonly blockConfig: TransformerBlockConfig;

  constructor(
    readonly config: TrajectoryTransformerConfig,
    rng: Rng,
  ) {
    const c = config;
    if (c.actionFrom < 0 || c.actionFrom >= c.modalities.length)
      throw new InputError(`trajectory transformer: actionFrom ${c.actionFrom} is not a modality index`);
    this.blockConfig = blockConfigOf(c);
    this.featDim = Math.max(...c.modalities);
    const mat = (r: number, k: number, std: number) =>
      tf.variable(tf.tensor2d(rng.normalArray(r * k, std), [r, k]));
    this.embedW = c.modalities.map((w) => mat(w, c.dModel, 1 / Math.sqrt(w)));
    this.embedB = c.modalities.map(() => tf.variable(tf.zeros([c.dModel])));
    this.timeEmbed = mat(c.maxTimestep, c.dModel, 0.02);
    this.inNorm = tf.variable(tf.ones([c.dModel]));
    this.blocks = Array.from({ length: c.layers }, () => initBlock(this.blockConfig, rng, c.layers));
    this.outNorm = tf.variable(tf.ones([c.dModel]));
    this.headW = mat(c.dModel, c.actDim, 0.02);
    this.headB = tf.variable(tf.zeros([c.actDim]));
  }

  /** Every trainable variable, in a fixed order (checkpoints, all-reduce). */
  variables(): tf.Variable[] {
    return [
      ...this.embedW,
      ...this.embedB,
      this.timeEmbed,
      this.inNorm,
      ...this.blocks.flatMap(blockVariables),
      this.outNorm,
      this.headW,
      this.headB,
    ];
  }

  parameterCount(): number {
    return this.variables().reduce((a, v) => a + v.size, 0);
  }

  /** Token embeddings (B, T, Dm): Σ_m [type = m]·(feat_m W_m + b_m) + time[t], layer-normed. */
  private embed(b: TokenBatch): tf.Tensor {
    const e = modalityEmbeddings(b, this.config.modalities, this.embedW, this.embedB); // (N, Dm)
    const time = embeddingLookup(
      this.timeEmbed as unknown as tf.Tensor2D,
      tf.tensor2d(b.timesteps, [b.batch, b.length], 'int32'),
    );
    return normalize(tf.add(time, tf.reshape(e, [b.batch, b.length, -1])), this.inNorm, 'layer', 1e-5);
  }

  private get actionHeadWeights(): ActionHead {
    return {
      gain: this.outNorm as unknown as tf.Tensor1D,
      w: this.headW as unknown as tf.Tensor2D,
      b: this.headB as unknown as tf.Tensor1D,
    };
  }

  /** Predicted actions (B, T, A) at every token (meaningful at state tokens). */
  forward(b: TokenBatch, ring?: SequenceContext['ring']): tf.Tensor {
    return actionHead(this.hidden(b, ring), this.actionHeadWeights);
  }

  /** The last block's output (B, T, Dm). */
  private hidden(b: TokenBatch, ring?: SequenceContext['ring']): tf.Tensor {
    // Attention masks by the segment ids of the whole sequence (B, seqLen): on a ring device
    // the shard's own ids would be read at global positions (issue 21).
    const segmentIds = b.sequenceSegments ?? b.segments;
    if (ring && segmentIds.length !== b.batch * ring.seqLen)
      throw new InputError(
        `trajectory transformer: a ring shard needs the sequence's segment ids (${b.batch}×${ring.seqLen}); got ${segmentIds.length} (make shards with selectTokens)`,
      );
    let x = this.embed(b);
    const seq: SequenceContext = { segmentIds, ring };
    for (const w of this.blocks) x = transformerBlock(x, w, this.blockConfig, seq);
    return x;
  }

  /**
   * Weighted squared error of the actions, summed over this batch's tokens and divided by
   * `totalWeight` (the weight of the whole sequence, so that devices' shares sum to the mean).
   */
  loss(b: TokenBatch, totalWeight: number, ring?: SequenceContext['ring']): tf.Scalar {
    const denominator = Math.max(1, totalWeight) * b.actDim;
    return actionLoss(this.hidden(b, ring), this.actionHeadWeights, b.targets, b.weights, denominator);
  }

  /** Incremental inference: appends tokens (B = 1) to the caches, returns their action predictions (1, Tn, A). */
  step(b: TokenBatch, caches: KvCache[]): tf.Tensor {
    return tf.tidy(() => {
      let x = this.embed(b);
      this.blocks.forEach((w, i) => {
        x = transformerBlockStep(x, w, this.blockConfig, caches[i]);
      });
      return actionHead(x, this.actionHeadWeights);
    });
  }

  get layers(): number {
    return this.blocks.length;
  }

  /** Weights as arrays, in `variables()` order. */
  weights(): Float32Array[] {
    return this.variables().map((v) => v.dataSync() as Float32Array);
  }

  setWeights(ws: Float32Array[]): void {
    const vars = this.variables();
    if (ws.length !== vars.length)
      throw new InputError(
        `trajectory transformer: checkpoint has ${ws.length} tensors; the model has ${vars.length}`,
      );
    vars.forEach((v, i) => {
      if (ws[i].length !== v.size)
        throw new InputError(
          `trajectory transformer: tensor ${i} has ${ws[i].length} values; expected ${v.size} (shape [${v.shape}])`,
        );
      v.assign(tf.tensor(ws[i], v.shape));
    });
  }

  dispose(): void {
    tf.dispose(this.variables());
  }
}

/**
 * (N = B·T, Dm): token n's Σ_m [type_n = m]·(feat_n[0..width_m) · W_m + b_m); a token whose type is
 * no modality (padding) gets zeros. W_m (width_m, Dm), b_m (Dm).
 *
 * NOTE: one product for every modality: a token's features sit in its type's columns (zeros
 * elsewhere) and a 1 in its type's bias column, so X · [W_0; …; W_M−1; b_0; …; b_M−1] is the
 * masked sum. Per-type products over the whole sequence, their masks and the K = 1 products of
 * scalar modalities were ≈ 30 tfjs kernels and ≈ 7% of an ant-medium step. With the native addon
 * each token touches its own modality's weights only (native/ modalityEmbedForward; the product
 * below is mostly zeros, 15.6M multiply-adds at ant-medium against ≈ 5M) and nothing is uploaded.
 */
export function modalityEmbeddings(
  b: Pick<TokenBatch, 'batch' | 'length' | 'featDim' | 'feats' | 'types'>,
  widths: number[],
  weights: tf.Tensor[],
  biases: tf.Tensor[],
): tf.Tensor2D {
  if (!modalityEmbedApplies([...weights, ...biases]))
    return stackedModalityEmbeddings(b, widths, weights, biases);
  const M = widths.length;
  const op = customOp((params) => {
    const value = modalityEmbedForward(b, params.slice(0, M), params.slice(M));
    if (!value) throw new Error('modality embeddings: the native forward could not run');
    return {
      value,
      gradFunc: (dy: tf.Tensor) => {
        const grads = modalityEmbedBackward(b, dy, params.slice(0, M), params.slice(M));
        if (!grads) throw new Error('modality embeddings: the native backward could not run');
        releaseAfterBackward(dy, [], grads);
        return grads;
      },
    };
  });
  return op(...weights, ...biases) as tf.Tensor2D;
}

/** modalityEmbeddings as one tfjs product (the reference, and the path without the addon). */
function stackedModalityEmbeddings(
  b: Pick<TokenBatch, 'batch' | 'length' | 'featDim' | 'feats' | 'types'>,
  widths: number[],
  weights: tf.Tensor[],
  biases: tf.Tensor[],
): tf.Tensor2D {
  const { batch: B, length: T, featDim: F } = b;
  const M = widths.length;
  const offsets = widths.map((_, m) => widths.slice(0, m).reduce((a, w) => a + w, 0));
  const columns = offsets[M - 1] + widths[M - 1] + M; // every modality's features, then one-hot types
  const N = B * T;
  const rows = new Float32Array(N * columns);
  for (let n = 0; n < N; n++) {
    const m = b.types[n];
    if (!(m >= 0 && m < M)) continue;
    rows.set(b.feats.subarray(n * F, n * F + widths[m]), n * columns + offsets[m]);
    rows[n * columns + columns - M + m] = 1;
  }
  return tf.tidy(() => {
    const stacked = tf.concat([...weights, ...biases.map((v) => tf.reshape(v, [1, -1]))], 0) as tf.Tensor2D;
    return constantLinear(tf.tensor2d(rows, [N, columns]), stacked);
  });
}
