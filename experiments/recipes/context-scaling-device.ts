/**
 * The device side of the context-scaling experiment: training steps of a small LLaMA-style
 * language model (ring/transformer.ts blocks: RMSNorm, RoPE, GQA, SwiGLU) on this device's shard
 * of the sequence — forward, backward, the gradient all-reduce (train/gradients.ts), AdamW
 * (train/optim.ts) — with its peak memory measured. Every device builds the same weights from
 * the same seed, so the replicas start and stay identical (sequence parallelism, paper §3).
 *
 * NOTE: the model is lm/model.ts's LLaMA (same init, same layers) assembled from ring/ directly:
 * importing lm/ loads the tokenizer package's vocabulary (≈ 11.5 MiB of JS heap per device),
 * which the real-memory budget would count as the model's.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import {
  type AttentionImpl,
  blockVariables,
  type DeviceContext,
  embeddingLookup,
  initBlock,
  linear,
  normalize,
  type RingLayout,
  type TransformerBlockConfig,
  transformerBlock,
} from '../../ring/index.js';
import { withPeakBytes } from '../../native/index.js';
import { AdamW, GradientSum } from '../../train/index.js';

export interface ScalingModel {
  vocab: number;
  dModel: number;
  heads: number;
  kvHeads: number;
  layers: number;
  ffnHidden: number;
}

export interface ScalingStepArgs {
  tokens: Int32Array; // (B, c) inputs held by this device
  targets: Int32Array; // (B, c) next tokens
  batch: number;
  localLen: number;
  seqLen: number;
  layout: RingLayout;
  attention: AttentionImpl;
  blockSize: number;
  model: ScalingModel;
  seed: number;
  /** Training steps to run (the first is measured for memory; all are timed). */
  steps: number;
}

export interface ScalingStepResult {
  loss: number;
  /** Peak tensor bytes of the first step (tf.profile). */
  peakBytes: number;
  /** What the device held at its peak in the first step: wasm heap + JS + native (issue 20). */
  realPeakBytes: number;
  stepMs: number[];
}

export function blockConfig(
  m: ScalingModel,
  attention: AttentionImpl,
  blockSize: number,
): TransformerBlockConfig {
  return {
    dModel: m.dModel,
    heads: m.heads,
    kvHeads: m.kvHeads,
    ffnHidden: m.ffnHidden,
    ffn: 'swiglu',
    norm: 'rms',
    normEps: 1e-5,
    rope: { theta: 10000 },
    attention,
    blockSize,
    // BPT applies the FFN blockwise; vanilla and memeff do not (paper Table 1)
    ffnChunk: attention === 'blockwise' || attention === 'ring' ? blockSize : 0,
    causal: true,
  };
}

/** Parameters of the model (embedding, blocks, final norm, untied head). */
export function parameterCount(m: ScalingModel): number {
  const Dh = m.dModel / m.heads;
  const block =
    2 * m.dModel +
    m.dModel * (m.heads + 2 * m.kvHeads) * Dh +
    m.heads * Dh * m.dModel +
    3 * m.dModel * m.ffnHidden;
  return 2 * m.vocab * m.dModel + m.layers * block + m.dModel;
}

export async function scalingStep(a: ScalingStepArgs, ctx: DeviceContext): Promise<ScalingStepResult> {
  const stepMs: number[] = [];
  let loss = 0;
  const { peakBytes, memory } = await withPeakBytes(() => {
    const rng = new Rng(a.seed);
    const cfg = blockConfig(a.model, a.attention, a.blockSize);
    const { vocab, dModel, layers } = a.model;
    const embed = tf.variable(
      tf.tensor2d(rng.normalArray(vocab * dModel, 0.02), [vocab, dModel]),
      true,
      'embed',
    );
    const blocks = Array.from({ length: layers }, () => initBlock(cfg, rng, layers));
    const finalNorm = tf.variable(tf.ones([dModel]), true);
    const head = tf.variable(
      tf.tensor2d(rng.normalArray(dModel * vocab, 0.02), [dModel, vocab]),
      true,
      'head',
    );
    const vars = [embed, ...blocks.flatMap(blockVariables), finalNorm, head];
    const optimizer = new AdamW(vars, { lr: 1e-3 });
    // one all-reduce of every gradient and the loss (a ring of one sums nothing)
    const sum = ctx.worldSize > 1 ? new GradientSum(vars, 1) : undefined;
    const tokens = tf.tensor2d(a.tokens, [a.batch, a.localLen], 'int32');
    const targets = tf.tensor2d(a.targets, [a.batch, a.localLen], 'int32');
    const seq =
      a.attention === 'ring'
        ? { ring: { transport: ctx.transport, seqLen: a.seqLen, layout: a.layout } }
        : {};
    for (let s = 0; s < a.steps; s++) {
      const started = performance.now();
      const { value, grads } = tf.variableGrads(() => {
        let x = embeddingLookup(embed as unknown as tf.Tensor2D, tokens); // (B, c, Dm)
        for (const w of blocks) x = transformerBlock(x, w, cfg, seq);
        const logits = linear(normalize(x, finalNorm, 'rms', 1e-5), head as unknown as tf.Tensor2D); // (B, c, V)
        const logp = tf.logSoftmax(logits);
        const picked = tf.sum(tf.mul(logp, tf.oneHot(targets, vocab)));
        // mean over the whole sequence: each device's share, summed by the all-reduce
        return tf.div(tf.neg(picked), a.batch * a.seqLen) as tf.Scalar;
      }, vars);
      loss = value.dataSync()[0];
      value.dispose();
      let list = vars.map((v) => grads[v.name]);
      if (sum) {
        sum.reset();
        sum.add(list, [loss]);
        sum.allReduce(ctx.transport);
        loss = sum.extras[0];
        tf.dispose(list);
        list = sum.tensors();
      }
      optimizer.apply(list);
      tf.dispose(list);
      stepMs.push(performance.now() - started);
    }
    optimizer.dispose();
    tf.dispose([tokens, targets, ...vars]);
    return null;
  }, true);
  return { loss, peakBytes, realPeakBytes: memory?.totalBytes ?? 0, stepMs };
}

/** GFLOP/s of a 2-D matmul on this device: the backend's measured peak, for MFU. */
export function matmulPeak(args: { size: number; repeats: number }): number {
  const n = args.size;
  const a = tf.randomNormal([n, n]) as tf.Tensor2D;
  const b = tf.randomNormal([n, n]) as tf.Tensor2D;
  const once = () => {
    const c = tf.matMul(a, b);
    c.dataSync(); // NOTE: read outside tidy: returning the array from tidy walks every element
    c.dispose();
  };
  once();
  let best = Infinity;
  for (let i = 0; i < args.repeats; i++) {
    const t = performance.now();
    once();
    best = Math.min(best, performance.now() - t);
  }
  tf.dispose([a, b]);
  return (2 * n ** 3) / (best * 1e6);
}
