/**
 * LM finetuning on packed token windows (paper §3 and §5.3: LLaMA finetuned on ShareGPT with the
 * sequence split over the ring), read top to bottom:
 *
 *   replicas ← the model's weights on N devices (lm/finetune-device.ts), moments on resume
 *   (memory check: one micro-batch's measured real peak + the gradient sum + the ring's slots ≤ budget)
 *   for step = start … steps:
 *     windows ← gradAccum micro-batches from a sampler seeded by (seed, step)
 *     every device: its T/N tokens of each window → loss and gradients; one all-reduce;
 *                   mean over micro-batches, global-norm clip, AdamW at learningRate(step)
 *     log train/loss, train/lr, train/grad_norm, perf/tokens_per_sec; checkpoint when due
 *   the final weights come back into `model`
 *
 * One device (vanilla, memeff, blockwise) runs the same device code with N = 1: the one-device
 * finetune and the ring are one training step.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../common/index.js';
import { TokenDataset, TokenWindowSampler } from '../datasets/index.js';
import { RingGroup } from '../cluster/index.js';
import type { RingLayout } from '../ring/index.js';
import {
  decodeTrainingState,
  encodeTrainingState,
  type TrainContext,
  type TrainingState,
  warmupCosine,
} from '../train/index.js';
import {
  type FinetuneInitArgs,
  type FinetuneStepArgs,
  type FinetuneState,
  finetuneBytesPerDevice,
  finetuneMessageFloats,
  finetuneRealBytesPerDevice,
  finetuneTasks,
  shardStep,
  type Window,
} from './finetune-device.js';
import type { LlamaModel, LlamaRuntime } from './model.js';
import { windowTargets } from './sharegpt.js';

/**
 * The trainer's options; each field's doc line is in SHAREGPT_FINETUNE_OPTIONS (lm/options.ts),
 * the comments here say only what it does not.
 */
export interface FinetuneOptions {
  attention: 'vanilla' | 'memeff' | 'blockwise' | 'ring';
  devices: number;
  layout: RingLayout;
  memoryBudgetMiB: number;
  blockSize: number;
  checkpointLayers: boolean;
  seqLen: number;
  batchSize: number;
  gradAccum: number;
  steps: number;
  lr: number;
  minLrRatio: number;
  warmupSteps: number;
  /** Matrices only, not the norms' gains. */
  weightDecay: number;
  beta1: number;
  beta2: number;
  clipNorm: number;
}

export const FINETUNE_DEFAULTS: FinetuneOptions = {
  attention: 'blockwise',
  devices: 1,
  layout: 'striped',
  memoryBudgetMiB: 0,
  blockSize: 64,
  checkpointLayers: true,
  seqLen: 256,
  batchSize: 2,
  gradAccum: 2,
  steps: 100,
  lr: 3e-3,
  minLrRatio: 0.1,
  warmupSteps: 10,
  weightDecay: 0.01,
  beta1: 0.9,
  beta2: 0.95,
  clipNorm: 1,
};

export interface FinetuneResult {
  /** The last completed step (start − 1 when none ran). */
  lastStep: number;
  /** train/loss of every step run, for a learning curve. */
  curve: { step: number; loss: number }[];
}

/**
 * The LM schedule, steps counted from 1: linear warmup reaching `lr` at step `warmupSteps`, then
 * cosine decay to `lr · minLrRatio` at the last step. train/'s warmupCosine counts from 0, so the
 * warmup asks it for step − 1 and the decay for step (the decay ends exactly on the last step).
 */
export function learningRate(
  step: number,
  o: Pick<FinetuneOptions, 'lr' | 'minLrRatio' | 'warmupSteps' | 'steps'>,
): number {
  const schedule = { lr: o.lr, warmup: o.warmupSteps, total: o.steps, minLr: o.lr * o.minLrRatio };
  return warmupCosine(step <= o.warmupSteps ? step - 1 : step, schedule);
}

/** How the model runs on the devices for these options (blockwise FFN with BPT and the ring). */
export function finetuneRuntime(o: FinetuneOptions): LlamaRuntime {
  return {
    attention: o.attention,
    blockSize: o.blockSize,
    ffnChunk: o.attention === 'blockwise' || o.attention === 'ring' ? o.blockSize : 0,
    checkpointLayers: o.checkpointLayers,
  };
}

/** Throws an InputError naming `<name>.<option>` when the devices cannot split the windows. */
export function checkFinetuneOptions(o: FinetuneOptions, name = 'finetune'): void {
  if (o.attention !== 'ring' && o.devices !== 1)
    throw new InputError(
      `${name}.devices: ${o.attention} runs on one device; got ${o.devices} (use attention: ring)`,
    );
  if (o.attention === 'ring' && o.seqLen % o.devices !== 0)
    throw new InputError(
      `${name}.seqLen: ${o.seqLen} tokens do not split over ${o.devices} ring devices; use a multiple of ${o.devices}`,
    );
}

/**
 * Finetunes `model` on the packed token dataset at `dataset` (Arrow, lm/sharegpt's
 * buildShareGptDataset) and leaves the final weights in it. Errors name the options under
 * `ctx.optionsPath` (default `finetune`).
 */
export async function finetune(
  model: LlamaModel,
  dataset: string,
  o: FinetuneOptions,
  ctx: TrainContext,
): Promise<FinetuneResult> {
  const name = ctx.optionsPath ?? 'finetune';
  checkFinetuneOptions(o, name);
  const vars = model.variables();
  const N = o.attention === 'ring' ? o.devices : 1;
  const total = vars.reduce((a, v) => a + v.size, 0);

  // the replicas on the devices: weights from here, moments restored on resume
  let start = 1;
  let weights = vars.map((v) => v.dataSync() as Float32Array);
  let optimizer: TrainingState['optimizer'] | undefined;
  if (ctx.resume) {
    // AdamW's step is the run's step: one update per step
    const restored = decodeTrainingState(ctx.resume.tensors, ctx.resume.step);
    weights = restored.weights;
    optimizer = restored.optimizer;
    start = ctx.resume.step + 1;
    ctx.log?.(`resuming at step ${start}`);
  }
  const init: FinetuneInitArgs = {
    config: model.config,
    runtime: finetuneRuntime(o),
    weights,
    beta1: o.beta1,
    beta2: o.beta2,
    weightDecay: o.weightDecay,
    optimizer,
  };
  // the largest message: a K/V block of one layer, or a device's share of the all-reduce
  const messageFloats = finetuneMessageFloats(model.config, o.batchSize, o.seqLen, N, total);
  const tasks = finetuneTasks(messageFloats);

  const group = await RingGroup.create({ devices: N, backend: ctx.backend });
  const ds = new TokenDataset(dataset);
  try {
    await tasks.init.run(group, Array(N).fill(init));
    /** Each device's arguments for one step: its shard of every micro-batch. */
    const stepArgs = (step: number, lr: number): FinetuneStepArgs[] => {
      // the sampler's seed advances with the step, so a resumed run draws the same batches
      const sampler = new TokenWindowSampler(ds, {
        batchSize: o.batchSize,
        seqLen: o.seqLen,
        seed: ctx.seed * 100_003 + step,
      });
      const windows: Window[] = Array.from({ length: o.gradAccum }, () => {
        const b = sampler.sample();
        return {
          tokens: b.tokens,
          targets: windowTargets(b.tokens, b.lossMask, b.segmentIds, b.mask, o.batchSize, o.seqLen),
          // padding gets its own segment so real tokens never attend to it
          segmentIds: Int32Array.from(b.segmentIds, (s, i) => (b.mask[i] ? s : -1)),
        };
      });
      const shard = {
        devices: N,
        batch: o.batchSize,
        seqLen: o.seqLen,
        layout: o.layout,
        lr,
        clipNorm: o.clipNorm,
      };
      return shardStep(windows, shard);
    };

    if (o.memoryBudgetMiB > 0) {
      // NOTE: a window the devices cannot hold fails here, before training (issue 22)
      const peaks = await tasks.probe.run(group, stepArgs(start, 0));
      const comm = N > 1 ? group.commBytesPerDevice : 0;
      // NOTE: the budget is on real memory (issue 20); the tensor figure is logged beside it
      const need =
        finetuneRealBytesPerDevice(Math.max(...peaks.map((p) => p.realBytes)), total, comm) / 2 ** 20;
      const tensors =
        finetuneBytesPerDevice(Math.max(...peaks.map((p) => p.tensorBytes)), total, comm) / 2 ** 20;
      ctx.params?.({
        'model.probe_mib_per_device': need.toFixed(1),
        'model.probe_tensor_mib_per_device': tensors.toFixed(1),
      });
      ctx.log?.(
        `memory: ${need.toFixed(1)} MiB per device (real: wasm heap, JS, native; tensors ${tensors.toFixed(1)} MiB) of ${o.memoryBudgetMiB} MiB`,
      );
      if (need > o.memoryBudgetMiB)
        throw new InputError(
          `${name}: a ${o.seqLen}-token window (batch ${o.batchSize}) needs ${need.toFixed(1)} MiB per device (real memory; tensors ${tensors.toFixed(1)} MiB) with ${o.attention}${N > 1 ? ` on ${N} devices` : ''}; the budget is ${o.memoryBudgetMiB} MiB (${name}.memoryBudgetMiB). Use attention: ring with more devices, or a shorter seqLen`,
        );
    }

    /** Device 0's replica (every replica holds the same), saved as a checkpoint of `step`. */
    const snapshot = async (step: number): Promise<FinetuneState> => {
      const replies = await tasks.state.run(
        group,
        Array.from({ length: N }, (_, rank) => ({ reply: rank === 0 })),
      );
      const state = replies[0] as FinetuneState;
      const tensors = encodeTrainingState(state);
      await ctx.checkpoints?.save({ step, state: { step }, tensors });
      return state;
    };

    const progress = ctx.progress?.(`${name} ${o.attention}${N > 1 ? ` N=${N}` : ''}`, o.steps);
    const curve: FinetuneResult['curve'] = [];
    let last = start - 1;
    for (let step = start; step <= o.steps; step++) {
      // yield so Ctrl-C and the metric flush timer get their turn between steps
      await new Promise((r) => setImmediate(r));
      if (ctx.signal?.aborted) break;
      const started = performance.now();
      const lr = learningRate(step, o);
      const [res] = await tasks.step.run(group, stepArgs(step, lr));
      const secs = (performance.now() - started) / 1000;
      ctx.logger.metrics(
        {
          'train/loss': res.loss,
          'train/lr': lr,
          'perf/tokens_per_sec': (o.gradAccum * o.batchSize * o.seqLen) / secs,
          'train/grad_norm': res.gradNorm,
        },
        step,
      );
      curve.push({ step, loss: res.loss });
      progress?.update(step, { loss: res.loss });
      last = step;
      if (ctx.checkpoints?.due(step) && step !== o.steps) await snapshot(step);
    }
    progress?.finish();
    // the final weights come back from device 0 (a resumed run with nothing left keeps its own)
    const final = last >= start || !ctx.resume ? await snapshot(last) : undefined;
    if (final)
      vars.forEach((v, i) => {
        v.assign(tf.tensor(final.weights[i], v.shape));
      });
    return { lastStep: last, curve };
  } finally {
    ds.close();
    await group.dispose();
  }
}
