/**
 * LM finetuning on ring devices (issue 22; paper §3 and §5.3: LLaMA finetuned on ShareGPT with
 * the sequence split over the ring). Every device keeps a replica of the model and of AdamW's
 * moments (the same starting weights from the main thread), receives its shard of each packed
 * window (c = T/N tokens in the ring's layout, segment ids global so packed conversations never
 * attend to each other across the split), and after the micro-batches of a step the gradients and
 * loss shares are summed over the ring in one all-reduce, so every replica applies the same
 * update. One device (N = 1) runs the same code with no all-reduce: the one-device recipe and the
 * ring are one training step.
 *
 * Tasks (RingGroup.run): `initFinetune`, `finetuneStep`, `probeFinetune` (peak tensor bytes of
 * one micro-batch's forward and backward: the memory check), `finetuneState` (weights and
 * moments for checkpoints and the HF export).
 */
import * as tf from '@tensorflow/tfjs';
import { type ProbedPeak, withPeakBytes } from '../native/index.js';
import type { DeviceContext, RingLayout, SequenceContext } from '../ring/index.js';
import {
  AdamW,
  GradientSum,
  type OptimizerState,
  type RingTask,
  ringTask,
  shardColumns,
  stepOptimizer,
  type TrainingState,
} from '../train/index.js';
import { IGNORE_INDEX, type LlamaConfig, type LlamaModel } from './model.js';
import { buildModel, type LoadModelArgs } from './ring-device.js';

interface Finetuner {
  model: LlamaModel;
  optimizer: AdamW;
  /** The step's gradient sum (and the loss shares as its one extra), reused between steps. */
  sum: GradientSum;
}
let trainer: Finetuner | undefined;

export interface FinetuneInitArgs extends LoadModelArgs {
  beta1: number;
  beta2: number;
  /** AdamW's decoupled decay, on matrices only (not the norms' gains: the LLaMA recipe). */
  weightDecay: number;
  /** Moments and step count to resume from. */
  optimizer?: OptimizerState;
}

export function initFinetune(a: FinetuneInitArgs): { parameters: number } {
  if (trainer) {
    trainer.model.dispose();
    trainer.optimizer.dispose();
  }
  const model = buildModel(a);
  const optimizer = new AdamW(model.variables(), {
    lr: 0,
    beta1: a.beta1,
    beta2: a.beta2,
    weightDecay: a.weightDecay,
    decays: (v) => v.rank === 2,
  });
  if (a.optimizer) optimizer.load(a.optimizer);
  trainer = { model, optimizer, sum: new GradientSum(model.variables(), 1) };
  return { parameters: model.variables().reduce((s, v) => s + v.size, 0) };
}

/** One micro-batch as this device holds it. */
export interface MicroBatchShard {
  /** This device's tokens (B, c) row-major, in the ring layout's order (c = T on one device). */
  ids: Int32Array;
  /** Next-token targets of those tokens (B, c); −100 is not counted. */
  targets: Int32Array;
  /** Segment ids of the whole window (B, T), global: padding has its own segment. */
  segmentIds: Int32Array;
  /** Counted targets of the whole micro-batch over all devices, so the shares sum to its mean. */
  denominator: number;
  /** Per-target weights (B, c) of a weighted objective (normalised over the whole micro-batch; denominator 1). */
  weights?: Float32Array;
}

export interface FinetuneStepArgs {
  microBatches: MicroBatchShard[];
  batch: number;
  /** Tokens per window over all devices. */
  seqLen: number;
  layout: RingLayout;
  lr: number;
  /** Global gradient-norm clip; 0 = none. */
  clipNorm: number;
}

export interface FinetuneStepResult {
  /** Mean over micro-batches of each one's mean token cross-entropy. */
  loss: number;
  /** Global norm of the micro-batch-averaged gradient, before clipping. */
  gradNorm: number;
}

function current(): Finetuner {
  if (!trainer) throw new Error('finetune device: call initFinetune first');
  return trainer;
}

function sequenceOf(
  model: LlamaModel,
  a: FinetuneStepArgs,
  mb: MicroBatchShard,
  ctx: DeviceContext,
): SequenceContext {
  return model.runtime.attention === 'ring'
    ? { segmentIds: mb.segmentIds, ring: { transport: ctx.transport, seqLen: a.seqLen, layout: a.layout } }
    : { segmentIds: mb.segmentIds };
}

/**
 * One optimizer step: gradients of every micro-batch summed here, then over the ring (one
 * all-reduce with the loss shares), averaged over micro-batches, clipped, and AdamW.
 */
export function finetuneStep(a: FinetuneStepArgs, ctx: DeviceContext): FinetuneStepResult {
  const { model, optimizer, sum } = current();
  sum.reset();
  for (const mb of a.microBatches) {
    const ids = tf.tensor2d(mb.ids, [a.batch, mb.ids.length / a.batch], 'int32'); // (B, c)
    const { value, grads } = tf.variableGrads(
      () => model.loss(ids, mb.targets, sequenceOf(model, a, mb, ctx), mb.denominator, mb.weights),
      sum.vars,
    );
    sum.add(grads, [value.dataSync()[0]]);
    tf.dispose([ids, value, ...Object.values(grads)]);
  }
  sum.allReduce(ctx.worldSize > 1 ? ctx.transport : undefined);
  const accumulate = a.microBatches.length;
  // NOTE: clip the micro-batch mean at clipNorm: scale = clip/‖g‖ when over (no epsilon)
  const { gradNorm } = stepOptimizer(sum, optimizer, { lr: a.lr, clipNorm: a.clipNorm, accumulate });
  return { loss: sum.extras[0] / accumulate, gradNorm };
}

/** A micro-batch of whole windows, as the main thread samples it. */
export interface Window {
  /** Token ids (B, T) row-major. */
  tokens: Int32Array;
  /** Next-token targets (B, T); −100 is not counted. */
  targets: Int32Array;
  /** Segment ids (B, T): packed conversations apart, padding in a segment of its own. */
  segmentIds: Int32Array;
  /**
   * Per-target weights (B, T) whose weighted sum is the objective (already normalised: line
   * retrieval's answer and prompt means); absent: the mean over counted targets.
   */
  weights?: Float32Array;
}

export interface ShardOptions {
  devices: number;
  batch: number;
  seqLen: number;
  layout: RingLayout;
  lr: number;
  clipNorm: number;
}

/** Each device's `finetuneStep` arguments: its tokens and targets of every micro-batch. */
export function shardStep(microBatches: Window[], o: ShardOptions): FinetuneStepArgs[] {
  const N = o.devices;
  return Array.from({ length: N }, (_, rank) => ({
    microBatches: microBatches.map((w) => ({
      ids: shardColumns(w.tokens, o.batch, o.seqLen, rank, N, o.layout),
      targets: shardColumns(w.targets, o.batch, o.seqLen, rank, N, o.layout),
      segmentIds: w.segmentIds,
      ...(w.weights
        ? { weights: shardColumns(w.weights, o.batch, o.seqLen, rank, N, o.layout), denominator: 1 }
        : { denominator: w.targets.reduce((n, t) => n + (t === IGNORE_INDEX ? 0 : 1), 0) }),
    })),
    batch: o.batch,
    seqLen: o.seqLen,
    layout: o.layout,
    lr: o.lr,
    clipNorm: o.clipNorm,
  }));
}

/**
 * The peak of one micro-batch's forward and backward on this device (no update): tensor bytes,
 * and what the device really holds (issue 20; the replica and AdamW's moments are resident).
 */
export async function probeFinetune(a: FinetuneStepArgs, ctx: DeviceContext): Promise<ProbedPeak> {
  const { model } = current();
  const mb = a.microBatches[0];
  const ids = tf.tensor2d(mb.ids, [a.batch, mb.ids.length / a.batch], 'int32');
  const { peakBytes, memory } = await withPeakBytes(() => {
    const { value, grads } = tf.variableGrads(
      () => model.loss(ids, mb.targets, sequenceOf(model, a, mb, ctx), mb.denominator, mb.weights),
      model.variables(),
    );
    tf.dispose([value, ...Object.values(grads)]);
    return null;
  }, true);
  ids.dispose();
  return { tensorBytes: peakBytes, realBytes: memory?.totalBytes ?? peakBytes };
}

/**
 * The largest message a device sends its neighbour in a step: a layer's K/V block of its c = T/N
 * tokens (ring only), or its share of the gradient all-reduce (every parameter and the loss).
 */
export function finetuneMessageFloats(
  config: LlamaConfig,
  batch: number,
  seqLen: number,
  devices: number,
  parameters: number,
): number {
  const Dh = config.hiddenSize / config.numHeads;
  const kvBlock = devices > 1 ? 2 * batch * config.numKvHeads * (seqLen / devices) * Dh : 1;
  return Math.max(kvBlock, GradientSum.messageFloats(parameters, 1, devices));
}

/**
 * Tensor bytes a device needs to train: the probe's peak (one micro-batch's forward and backward)
 * plus the replica (weights, AdamW's two moments and the gradient: 4 float32 per parameter) plus
 * the ring's receive slots.
 */
export function finetuneBytesPerDevice(
  probePeakBytes: number,
  parameters: number,
  commBytes: number,
): number {
  return probePeakBytes + 4 * 4 * parameters + commBytes;
}

/**
 * What a device really holds to train (issue 20): the probe's real peak (wasm heap, JS, native; the
 * replica and AdamW's moments are resident, the gradients live in it) plus the step's gradient sum
 * (a JS array of every parameter and the loss, which the probe does not make) plus the ring's
 * receive slots.
 */
export function finetuneRealBytesPerDevice(
  probeRealBytes: number,
  parameters: number,
  commBytes: number,
): number {
  return probeRealBytes + 4 * (parameters + 1) + commBytes;
}

/** A replica's weights (in `LlamaModel.variables()` order) and AdamW's state. */
export type FinetuneState = TrainingState;

/**
 * This replica's state when `reply` is set, else null: every replica holds the same, so a
 * checkpoint asks device 0 only instead of copying N states to the main thread.
 */
export function finetuneState(a: { reply: boolean }): FinetuneState | null {
  if (!a.reply) return null;
  const { model, optimizer } = current();
  return {
    weights: model.variables().map((v) => v.dataSync() as Float32Array),
    optimizer: optimizer.state(),
  };
}

/** Frees the replica. */
export function disposeFinetune(): null {
  if (trainer) {
    trainer.model.dispose();
    trainer.optimizer.dispose();
    trainer = undefined;
  }
  return null;
}

/**
 * This module's tasks as the main thread calls them (lm/finetune.ts), the names written once
 * beside the functions; `messageFloats` (finetuneMessageFloats) sizes the ring's channels.
 */
export function finetuneTasks(messageFloats: number): {
  init: RingTask<FinetuneInitArgs, { parameters: number }>;
  step: RingTask<FinetuneStepArgs, FinetuneStepResult>;
  probe: RingTask<FinetuneStepArgs, ProbedPeak>;
  state: RingTask<{ reply: boolean }, FinetuneState | null>;
} {
  const self = import.meta.url;
  return {
    init: ringTask(self, 'initFinetune', () => messageFloats),
    step: ringTask(self, 'finetuneStep', () => messageFloats),
    probe: ringTask(self, 'probeFinetune', () => messageFloats),
    // the state goes to the main thread, not over the ring
    state: ringTask(self, 'finetuneState', () => 1),
  };
}
