/**
 * Training a trajectory transformer on ring devices (sequence parallelism, paper §3): every
 * device keeps a replica of the model and optimizer (same seed → same initial weights), receives
 * its shard of each batch's tokens, and after the backward pass the gradients are summed over
 * the ring, so every replica applies the same update. The model lives in the worker between
 * calls (module state), and the main thread drives the steps.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { type ProbedPeak, withPeakBytes } from '../../native/index.js';
import type { DeviceContext, RingLayout } from '../../ring/index.js';
import { AdamW, GradientSum } from '../../train/index.js';
import type { TokenBatch } from './tokens.js';
import { TrajectoryTransformer, type TrajectoryTransformerConfig } from './trajectory-transformer.js';

interface Trainer {
  model: TrajectoryTransformer;
  optimizer: AdamW;
  /** Every gradient and the loss in one buffer: one all-reduce a step (train/gradients.ts). */
  sum: GradientSum;
}
let trainer: Trainer | undefined;

export interface InitArgs {
  config: TrajectoryTransformerConfig;
  seed: number;
  weightDecay: number;
  /** Restore weights and optimizer state (resume). */
  weights?: Float32Array[];
  optimizer?: { step: number; m: Float32Array[]; v: Float32Array[] };
}

export function initTrainer(a: InitArgs): { parameters: number } {
  if (trainer) {
    trainer.model.dispose();
    trainer.optimizer.dispose();
  }
  const model = new TrajectoryTransformer(a.config, new Rng(a.seed));
  if (a.weights) model.setWeights(a.weights);
  const optimizer = new AdamW(model.variables(), { lr: 0, weightDecay: a.weightDecay });
  if (a.optimizer) optimizer.load(a.optimizer);
  trainer = { model, optimizer, sum: new GradientSum(model.variables(), 1) };
  return { parameters: model.parameterCount() };
}

export interface StepArgs {
  /** This device's tokens (the whole batch on one device). */
  tokens: TokenBatch;
  /** Loss weight of the whole batch (all devices), so shares sum to the mean. */
  totalWeight: number;
  /** Tokens per sequence over all devices, and the layout (ring only). */
  seqLen: number;
  layout: RingLayout;
  lr: number;
  clip: number;
}

export interface StepResult {
  loss: number;
  gradNorm: number;
  ms: number;
}

export function trainStep(a: StepArgs, ctx: DeviceContext): StepResult {
  if (!trainer) throw new Error('trainStep before initTrainer');
  const started = performance.now();
  const { model, optimizer } = trainer;
  const ring =
    model.config.attention === 'ring'
      ? { transport: ctx.transport, seqLen: a.seqLen, layout: a.layout }
      : undefined;
  const vars = model.variables();
  const { value, grads } = tf.variableGrads(() => model.loss(a.tokens, a.totalWeight, ring), vars);
  let loss = value.dataSync()[0];
  value.dispose();
  let list = vars.map((v) => grads[v.name]);
  if (ctx.worldSize > 1) {
    // one all-reduce for every gradient and the loss (train/gradients.ts)
    const { sum } = trainer;
    sum.reset();
    sum.add(list, [loss]);
    sum.allReduce(ctx.transport);
    loss = sum.extras[0];
    tf.dispose(list);
    list = sum.tensors();
  }
  // clip and AdamW over every parameter: one native call where the addon runs (issue 14)
  const norm = optimizer.clipAndApply(list, a.clip, a.lr);
  return { loss, gradNorm: norm, ms: performance.now() - started };
}

/** Weights and optimizer state of this replica (device 0's is saved in checkpoints). */
export function trainerState(): {
  weights: Float32Array[];
  optimizer: { step: number; m: Float32Array[]; v: Float32Array[] };
} {
  if (!trainer) throw new Error('trainerState before initTrainer');
  return { weights: trainer.model.weights(), optimizer: trainer.optimizer.state() };
}

/** Largest message a training step sends: a K/V block, or a share of the gradient all-reduce. */
export function trainMessageFloats(
  config: TrajectoryTransformerConfig,
  batch: number,
  tokensPerDevice: number,
  parameters: number,
  devices: number,
): number {
  const Dh = config.dModel / config.heads;
  return Math.max(
    2 * batch * config.heads * tokensPerDevice * Dh,
    GradientSum.messageFloats(parameters, 1, devices),
  );
}

/**
 * The peak of one forward+backward on this device's shard, without updating anything (the memory
 * check before training): tensor bytes, and what the device really holds (issue 20).
 */
export async function probeMemory(a: StepArgs, ctx: DeviceContext): Promise<ProbedPeak> {
  if (!trainer) throw new Error('probeMemory before initTrainer');
  const { model } = trainer;
  const ring =
    model.config.attention === 'ring'
      ? { transport: ctx.transport, seqLen: a.seqLen, layout: a.layout }
      : undefined;
  const { peakBytes, memory } = await withPeakBytes(() => {
    const { value, grads } = tf.variableGrads(
      () => model.loss(a.tokens, a.totalWeight, ring),
      model.variables(),
    );
    tf.dispose([value, ...Object.values(grads)]);
    return null;
  }, true);
  return { tensorBytes: peakBytes, realBytes: memory?.totalBytes ?? peakBytes };
}
