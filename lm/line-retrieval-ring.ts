/**
 * Line retrieval trained on worker devices (paper Figure 3 in miniature, issue 17): the same task,
 * curriculum and objective as lm/line-retrieval-train.ts, but every step runs the ShareGPT
 * finetune step (lm/finetune-device.ts) on `trainDevices` devices — one device with BPT
 * (blockwise attention and FFN), or the ring, each row's tokens split over N devices — so the
 * longest prompt a model trains on is bounded by a per-device memory budget, as in the paper:
 *
 *   replicas ← the main thread's random init (tied embeddings), AdamW (β2 0.95, decay on matrices)
 *   probe: a step at the longest training prompt must fit trainMemoryMiB per device (real memory)
 *   for step = start … steps:
 *     cases ← batchSize cases from a per-step RNG, line counts the curriculum allows
 *     rows padded to a whole number of blocks per device; each device gets its c = T/N columns
 *     loss ← Σ weights · CE, weights = 1/answers on answer targets, otherTokenWeight/others on
 *            the prompt's (the one-device trainer's objective, normalised over the whole batch)
 *     gradients summed over the ring (one all-reduce), clipped, AdamW at learningRate(step)
 *     every evalEvery steps: device 0's weights → the main thread → held-out accuracy
 *
 * Both models of the figure (one device at its longest length, the ring at N× that) train by this
 * one code path, so the plot compares context and nothing else.
 */
import * as tf from '@tensorflow/tfjs';
import { RingGroup } from '../cluster/index.js';
import { InputError, Rng } from '../common/index.js';
import { decodeTrainingState, encodeTrainingState, type TrainContext } from '../train/index.js';
import { learningRate } from './finetune.js';
import {
  type FinetuneInitArgs,
  type FinetuneState,
  type FinetuneStepArgs,
  finetuneMessageFloats,
  finetuneRealBytesPerDevice,
  finetuneTasks,
  shardStep,
  type Window,
} from './finetune-device.js';
import { IGNORE_INDEX } from './head-loss.js';
import { type EncodedLineCase, encodeLineCase, lineBatch } from './line-retrieval.js';
import { evaluateOnDevice } from './line-retrieval-eval.js';
import {
  allowedLines,
  heldoutSet,
  type LineRetrievalOptions,
  type LineRetrievalTrained,
  lineRetrievalConfig,
  lineRetrievalRuntime,
  roundUp,
} from './line-retrieval-train.js';
import { LlamaModel, type LlamaRuntime } from './model.js';

/** How the replicas run: the training attention, blockwise FFN, no layer checkpoints. */
export function deviceTrainRuntime(
  o: Pick<LineRetrievalOptions, 'trainAttention' | 'blockSize'>,
): LlamaRuntime {
  const blocked = o.trainAttention === 'blockwise' || o.trainAttention === 'ring';
  return {
    attention: o.trainAttention,
    blockSize: o.blockSize,
    ffnChunk: blocked ? o.blockSize : 0,
    checkpointLayers: false,
  };
}

/**
 * A batch of cases as one window of T tokens per row: next-token targets, one segment per row and
 * the objective's weights (answer targets share 1, the prompt's share otherWeight; rows are
 * right-padded, so padding only follows a row's tokens and is never a target).
 */
export function lineWindow(cases: EncodedLineCase[], T: number, otherWeight: number): Window {
  const { ids, targets, isAnswer } = lineBatch(cases, T);
  let answers = 0;
  let others = 0;
  for (let i = 0; i < targets.length; i++) {
    if (targets[i] === IGNORE_INDEX) continue;
    if (isAnswer[i]) answers++;
    else others++;
  }
  const weights = new Float32Array(targets.length);
  for (let i = 0; i < targets.length; i++) {
    if (targets[i] === IGNORE_INDEX) continue;
    weights[i] = isAnswer[i] ? 1 / Math.max(1, answers) : otherWeight / Math.max(1, others);
  }
  return { tokens: ids, targets, segmentIds: new Int32Array(ids.length), weights };
}

/** Throws an InputError naming the option when the devices cannot train these options. */
export function checkDeviceTraining(o: LineRetrievalOptions, path: string): void {
  const N = o.trainDevices;
  if (!Number.isInteger(N) || N < 1)
    throw new InputError(
      `${path}.trainDevices: expected an integer ≥ 1 on devices; got ${JSON.stringify(N)}`,
    );
  if (o.trainAttention !== 'ring' && N !== 1)
    throw new InputError(
      `${path}.trainDevices: ${o.trainAttention} trains on one device; got ${N} (use trainAttention: ring)`,
    );
}

/**
 * Trains on worker devices (see the header), logging what the one-device trainer logs except
 * train/answer_loss; params `train.probe_mib_per_device` when a budget is set. Returns the model
 * on the main thread with the final weights, running BPT for evaluation.
 */
export async function trainLineRetrievalOnDevices(
  o: LineRetrievalOptions,
  ctx: TrainContext,
): Promise<LineRetrievalTrained> {
  const path = ctx.optionsPath ?? 'line-retrieval trainer';
  checkDeviceTraining(o, path);
  const N = o.trainDevices;
  const config = lineRetrievalConfig(o);
  const model = LlamaModel.init(config, ctx.rng, lineRetrievalRuntime(o));
  const vars = model.variables();
  const parameters = vars.reduce((a, v) => a + v.size, 0);
  ctx.params?.({ 'model.parameters': parameters, 'model.vocab': config.vocabSize });

  let start = 1;
  let heldout: LineRetrievalTrained['heldout'] = [];
  let weights = vars.map((v) => v.dataSync() as Float32Array);
  let optimizer: FinetuneInitArgs['optimizer'];
  if (ctx.resume) {
    const saved = ctx.resume.state as { optStep: number; heldout?: LineRetrievalTrained['heldout'] };
    const restored = decodeTrainingState(ctx.resume.tensors, saved.optStep);
    weights = restored.weights;
    optimizer = restored.optimizer;
    heldout = saved.heldout ?? [];
    start = ctx.resume.step + 1;
  }
  const init: FinetuneInitArgs = {
    config,
    runtime: deviceTrainRuntime(o),
    weights,
    beta1: 0.9,
    beta2: 0.95,
    weightDecay: o.weightDecay,
    optimizer,
  };
  // rows are whole blocks on every device; the longest row sizes the ring's channels
  const unit = N * o.blockSize;
  const longest = roundUp(encodeLineCase(new Rng(0), Math.max(...o.trainLines), o.maxValue).ids.length, unit);
  const tasks = finetuneTasks(finetuneMessageFloats(config, o.batchSize, longest, N, parameters));
  const shard = (windowT: number, lr: number, w: Window): FinetuneStepArgs[] =>
    shardStep([w], {
      devices: N,
      batch: o.batchSize,
      seqLen: windowT,
      layout: o.layout,
      lr,
      clipNorm: o.clipNorm,
    });

  let group: RingGroup;
  try {
    group = await RingGroup.create({ devices: N, backend: ctx.backend });
  } catch (e) {
    model.dispose();
    throw e;
  }
  try {
    await tasks.init.run(group, Array(N).fill(init));
    if (o.trainMemoryMiB > 0) {
      // NOTE: the longest training prompt must fit the budget before any step runs (issue 17)
      const rng = new Rng(ctx.seed);
      const worst = Array.from({ length: o.batchSize }, () =>
        encodeLineCase(rng, Math.max(...o.trainLines), o.maxValue),
      );
      const peaks = await tasks.probe.run(
        group,
        shard(longest, 0, lineWindow(worst, longest, o.otherTokenWeight)),
      );
      const comm = N > 1 ? group.commBytesPerDevice : 0;
      // both add the step's all-reduce and receive buffers (finetuneRealBytesPerDevice)
      const mib = (bytes: number) => finetuneRealBytesPerDevice(bytes, parameters, comm) / 2 ** 20;
      const real = mib(Math.max(...peaks.map((p) => p.realBytes)));
      const tensors = mib(Math.max(...peaks.map((p) => p.tensorBytes)));
      const need = o.trainMemoryOn === 'real' ? real : tensors;
      ctx.params?.({
        'train.probe_mib_per_device': real.toFixed(1),
        'train.probe_tensor_mib_per_device': tensors.toFixed(1),
        'train.longest_tokens': longest,
      });
      const kind = o.trainMemoryOn === 'real' ? 'real memory' : 'tensor bytes';
      ctx.log?.(
        `training memory: ${need.toFixed(1)} MiB per device (${kind}; real ${real.toFixed(1)}, tensors ${tensors.toFixed(1)}) at ${longest} tokens (${Math.max(...o.trainLines)} lines) of ${o.trainMemoryMiB} MiB`,
      );
      if (need > o.trainMemoryMiB)
        throw new InputError(
          `${path}: training on ${Math.max(...o.trainLines)} lines (${longest} tokens, batch ${o.batchSize}) needs ${need.toFixed(1)} MiB per device (${kind}) with ${o.trainAttention}${N > 1 ? ` on ${N} devices` : ''}; the budget is ${o.trainMemoryMiB} MiB (${path}.trainMemoryMiB). Use trainAttention: ring with more devices, or fewer trainLines`,
        );
    }

    /** Device 0's replica into the main thread's model (every replica holds the same). */
    const pull = async (): Promise<FinetuneState> => {
      const replies = await tasks.state.run(
        group,
        Array.from({ length: N }, (_, rank) => ({ reply: rank === 0 })),
      );
      const state = replies[0] as FinetuneState;
      vars.forEach((v, i) => {
        const t = tf.tensor(state.weights[i], v.shape);
        v.assign(t);
        t.dispose();
      });
      return state;
    };
    const snapshot = async (step: number) => {
      const state = await pull();
      await ctx.checkpoints?.save({
        step,
        state: { optStep: step, heldout: heldout.map((h) => ({ ...h })) },
        tensors: encodeTrainingState(state),
      });
    };

    const { cases: heldCases, T: heldT } = heldoutSet(o);
    const bpt = model.withRuntime(lineRetrievalRuntime(o));

    const progress = ctx.progress?.(
      `line-retrieval train ${o.trainAttention}${N > 1 ? ` N=${N}` : ''}`,
      o.steps,
    );
    let last = start - 1;
    for (let step = start; step <= o.steps; step++) {
      await new Promise((r) => setImmediate(r));
      if (ctx.signal?.aborted) break;
      const started = performance.now();
      // the batch's cases come from a per-step RNG, so a resumed run draws the same batches
      const rng = new Rng(ctx.seed * 100_003 + step);
      const lines = allowedLines(step, o);
      const cases = Array.from({ length: o.batchSize }, () =>
        encodeLineCase(rng, lines[rng.int(lines.length)], o.maxValue),
      );
      const T = roundUp(Math.max(...cases.map((e) => e.ids.length)), unit);
      const lr = learningRate(step, o);
      const [res] = await tasks.step.run(group, shard(T, lr, lineWindow(cases, T, o.otherTokenWeight)));
      const secs = (performance.now() - started) / 1000;
      ctx.logger.metrics(
        {
          'train/loss': res.loss,
          'train/max_lines': Math.max(...lines),
          'train/lr': lr,
          'train/grad_norm': res.gradNorm,
          'perf/tokens_per_sec': (o.batchSize * T) / secs,
        },
        step,
      );
      if ((o.evalEvery > 0 && step % o.evalEvery === 0) || step === o.steps) {
        await pull();
        const { accuracy } = await evaluateOnDevice(bpt, heldCases, heldT, o.evalBatch);
        heldout.push({ step, accuracy });
        ctx.logger.metrics({ 'train/heldout_accuracy': accuracy }, step);
      }
      progress?.update(step, { loss: res.loss });
      last = step;
      if (ctx.checkpoints?.due(step) && step !== o.steps) await snapshot(step);
    }
    progress?.finish();
    if (last >= start || !ctx.resume) await snapshot(last);
    else await pull();
    return { model: bpt, heldout };
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    await group.dispose();
  }
}
