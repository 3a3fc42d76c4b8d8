/**
 * The device side of the context-scaling experiment: training steps of lm/'s LLaMA (RMSNorm,
 * RoPE, GQA, SwiGLU; ring/transformer.ts blocks) on this device's shard of the sequence —
 * forward, backward, the gradient all-reduce (train/gradients.ts), AdamW (train/optim.ts) — with
 * its peak memory measured. Every device builds the same weights from the same seed, so the
 * replicas start and stay identical (sequence parallelism, paper §3).
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { type LlamaConfig, LlamaModel, llamaParameterCount } from '../../lm/index.js';
import { type DeviceMemory, withPeakBytes } from '../../native/index.js';
import type { AttentionImpl, DeviceContext, RingLayout } from '../../ring/index.js';
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
  /** Peak bytes of distinct tensor buffers in the first step (views and saved copies once). */
  bufferBytes: number;
  /** What the device held at its peak in the first step: wasm heap + JS + native (issue 20). */
  real?: DeviceMemory;
  stepMs: number[];
}

/** The experiment's model as a LLaMA config (untied head, no RoPE scaling). */
export function llamaConfigOf(m: ScalingModel): LlamaConfig {
  return {
    vocabSize: m.vocab,
    hiddenSize: m.dModel,
    intermediateSize: m.ffnHidden,
    numLayers: m.layers,
    numHeads: m.heads,
    numKvHeads: m.kvHeads,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScalingFactor: 1,
    tieWordEmbeddings: false,
    maxPositionEmbeddings: 1 << 20,
    bosTokenId: 1,
    eosTokenId: 2,
  };
}

/** Parameters of the model (embedding, blocks, final norm, untied head). */
export function parameterCount(m: ScalingModel): number {
  return llamaParameterCount(llamaConfigOf(m));
}

export async function scalingStep(a: ScalingStepArgs, ctx: DeviceContext): Promise<ScalingStepResult> {
  const stepMs: number[] = [];
  let loss = 0;
  const { peakBytes, bufferBytes, memory } = await withPeakBytes(() => {
    const model = LlamaModel.init(llamaConfigOf(a.model), new Rng(a.seed), {
      attention: a.attention,
      blockSize: a.blockSize,
      // BPT applies the FFN blockwise; vanilla and memeff do not (paper Table 1)
      ffnChunk: a.attention === 'blockwise' || a.attention === 'ring' ? a.blockSize : 0,
      // NOTE: no layer checkpoint of the LM's own: vanilla and memeff keep every activation, as the
      // table has always measured them; BPT and ring run the native block where the addon loads,
      // which keeps only its input (the paper's BPT: full checkpointing per layer, issue 14)
      checkpointLayers: false,
      lossChunkRows: a.blockSize,
    });
    const vars = model.variables();
    const optimizer = new AdamW(vars, { lr: 1e-3 });
    // one all-reduce of every gradient and the loss (a ring of one sums nothing)
    const sum = ctx.worldSize > 1 ? new GradientSum(vars, 1) : undefined;
    const tokens = tf.tensor2d(a.tokens, [a.batch, a.localLen], 'int32');
    const seq =
      a.attention === 'ring'
        ? { ring: { transport: ctx.transport, seqLen: a.seqLen, layout: a.layout } }
        : {};
    for (let s = 0; s < a.steps; s++) {
      const started = performance.now();
      // mean over the whole sequence: each device's share, summed by the all-reduce. The head and
      // the cross-entropy run in row chunks (lm/head-loss.ts), as BPT computes its loss blockwise:
      // the (B, c, V) logits, their softmax and the one-hot targets never exist whole (issue 14:
      // at V = 256 they were ≈ 8 KB of a token's ≈ 20 KB)
      const { value, grads } = tf.variableGrads(
        () => model.loss(tokens, a.targets, seq, a.batch * a.seqLen),
        vars,
      );
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
    model.dispose();
    tokens.dispose();
    return null;
  }, true);
  return { loss, peakBytes, bufferBytes, real: memory, stepMs };
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
