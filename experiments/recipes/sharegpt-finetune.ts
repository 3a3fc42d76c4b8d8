/**
 * `recipe: sharegpt-finetune` — finetune a LLaMA-style model on ShareGPT conversations (paper
 * Figure 3's setup, in miniature): ShareGPT → cleaned, Vicuna v1.1, assistant-only loss, packed
 * Arrow token dataset → AdamW with linear warmup and cosine decay, gradient accumulation, global
 * norm clipping, per-layer gradient checkpointing → checkpoints, resume, and a Hugging Face
 * folder (config.json + model.safetensors) at the end.
 *
 * The model starts from `init` (a HF LLaMA folder) or from random weights of `model`'s shape.
 *
 * Devices (issue 22): training runs on `devices` ring devices (worker threads, lm/finetune-device.ts)
 * — one for vanilla/memeff/blockwise; with `attention: ring`, each packed window is split over N
 * devices in `layout` order (segment ids stay global, so packed conversations never attend to each
 * other across the split), gradients are all-reduced, and every replica applies the same AdamW
 * step. The memory check runs before training when `memoryBudgetMiB` is set.
 *
 * Metrics: `train/loss` (mean token cross-entropy of the step's batches), `train/lr`,
 * `perf/tokens_per_sec` (tokens through forward+backward per wall second), `train/grad_norm`
 * (before clipping). Params `data.*` and table `data_report`: the ShareGPT cleaning report.
 */
import { existsSync, readdirSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../../common/index.js';
import { TokenDataset, TokenWindowSampler } from '../../datasets/index.js';
import {
  type FinetuneInitArgs,
  type FinetuneState,
  type FinetuneStepArgs,
  type FinetuneStepResult,
  finetuneBytesPerDevice,
  finetuneMessageFloats,
  finetuneRealBytesPerDevice,
  shardStep,
  type Window,
} from '../../lm/finetune-device.js';
import {
  buildShareGptDataset,
  type LlamaConfig,
  LlamaModel,
  type LlamaRuntime,
  loadLlama,
  loadTokenizer,
  saveLlama,
  windowTargets,
} from '../../lm/index.js';
import type { ProbedPeak } from '../../native/index.js';
import type { RingLayout } from '../../ring/index.js';
import { RingGroup } from '../../cluster/index.js';
import type { OptimizerState } from '../../train/index.js';
import type { SavedTensor } from '../checkpoint.js';
import { datasetInfoFromFile } from '../dataset-input.js';
import { logModel } from '../logged-model.js';
import { maxWorkerThreads, WORKER_THREADS_WHY } from '../config/machine.js';
import { type InferFields, s } from '../config/schema.js';
import { linePlotSvg } from '../plot/svg.js';
import type { Recipe, RecipeContext } from './types.js';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));

const fields = {
  data: s.string({
    doc: 'ShareGPT JSON/JSONL file (relative paths: the working folder, then the repository)',
    default: 'lm/data/sharegpt-sample.json',
    nonEmpty: true,
  }),
  tokenizer: s.string({
    doc: '"llama" (bundled LLaMA-1/2 vocabulary) or a folder/file with tokenizer.json',
    default: 'llama',
    nonEmpty: true,
  }),
  init: s.string({
    doc: 'HF LLaMA checkpoint folder to finetune; empty = random init of `model`',
    default: '',
  }),
  model: s.object(
    {
      hiddenSize: s.integer({ doc: 'Hidden size', default: 64, min: 1 }),
      intermediateSize: s.integer({ doc: 'SwiGLU hidden size', default: 176, min: 1 }),
      numLayers: s.integer({ doc: 'Decoder layers', default: 2, min: 1 }),
      numHeads: s.integer({ doc: 'Query heads', default: 4, min: 1 }),
      numKvHeads: s.integer({ doc: 'Key/value heads (GQA)', default: 2, min: 1 }),
      ropeTheta: s.number({ doc: 'RoPE base', default: 10000, min: 1 }),
      tieWordEmbeddings: s.boolean({ doc: 'Share the embedding and the LM head', default: true }),
    },
    { doc: 'Shape of a randomly initialised model (ignored with `init`)' },
  ),
  attention: s.enum(['vanilla', 'memeff', 'blockwise', 'ring'] as const, {
    doc: 'Attention implementation: vanilla, memeff, blockwise (one device) or ring (`devices` devices)',
    default: 'blockwise',
  }),
  devices: s.integer({
    doc: 'Ring devices N (attention: ring); seqLen must be divisible by N',
    default: 1,
    min: 1,
    max: maxWorkerThreads(),
    maxWhy: WORKER_THREADS_WHY,
  }),
  layout: s.enum(['contiguous', 'striped'] as const, {
    doc: 'Ring token layout: contiguous blocks, or striped (token i on device i mod N: causal work balanced)',
    default: 'striped',
  }),
  memoryBudgetMiB: s.number({
    doc: 'Per-device memory budget checked before training, on real memory (wasm heap, JS, native; an idle device holds about 40 MiB); 0 = no check',
    default: 0,
    min: 0,
  }),
  blockSize: s.integer({
    doc: 'Attention block size and FFN chunk (memeff/blockwise/ring)',
    default: 64,
    min: 1,
  }),
  checkpointLayers: s.boolean({
    doc: 'Per-layer gradient checkpointing (the paper: full checkpointing)',
    default: true,
  }),
  seqLen: s.integer({ doc: 'Tokens per training window (and the pack length)', default: 256, min: 8 }),
  batchSize: s.integer({ doc: 'Windows per micro-batch', default: 2, min: 1 }),
  gradAccum: s.integer({ doc: 'Micro-batches accumulated per optimizer step', default: 2, min: 1 }),
  steps: s.integer({ doc: 'Optimizer steps', default: 100, min: 1 }),
  lr: s.number({ doc: 'Peak learning rate', default: 3e-3, min: 0, exclusiveMin: true }),
  minLrRatio: s.number({
    doc: 'Final learning rate as a fraction of lr (cosine floor)',
    default: 0.1,
    min: 0,
  }),
  warmupSteps: s.integer({ doc: 'Linear warmup steps', default: 10, min: 0 }),
  weightDecay: s.number({ doc: 'AdamW decoupled weight decay (not on norms)', default: 0.01, min: 0 }),
  beta1: s.number({ doc: 'Adam β1', default: 0.9, min: 0 }),
  beta2: s.number({ doc: 'Adam β2', default: 0.95, min: 0 }),
  clipNorm: s.number({ doc: 'Global gradient-norm clip; 0 = none', default: 1, min: 0 }),
  exportHf: s.boolean({ doc: 'Write the final model as a HF folder (artifact hf/)', default: true }),
};

export type ShareGptFinetuneConfig = InferFields<typeof fields>;

export function resolveDataPath(p: string): string {
  if (isAbsolute(p)) return p;
  const here = resolve(p);
  return existsSync(here) ? here : join(REPO, p);
}

/** Linear warmup to `lr`, then cosine decay to `lr · minLrRatio` at the last step. */
export function learningRate(
  step: number,
  c: Pick<ShareGptFinetuneConfig, 'lr' | 'minLrRatio' | 'warmupSteps' | 'steps'>,
): number {
  if (c.warmupSteps > 0 && step <= c.warmupSteps) return (c.lr * step) / c.warmupSteps;
  const span = Math.max(1, c.steps - c.warmupSteps);
  const progress = Math.min(1, (step - c.warmupSteps) / span);
  const floor = c.lr * c.minLrRatio;
  return floor + 0.5 * (c.lr - floor) * (1 + Math.cos(Math.PI * progress));
}

async function run(ctx: RecipeContext<ShareGptFinetuneConfig>): Promise<void> {
  const c = ctx.config;
  if (c.attention !== 'ring' && c.devices !== 1)
    throw new InputError(
      `sharegpt-finetune.devices: ${c.attention} runs on one device; got ${c.devices} (use attention: ring)`,
    );
  if (c.attention === 'ring' && c.seqLen % c.devices !== 0)
    throw new InputError(
      `sharegpt-finetune.seqLen: ${c.seqLen} tokens do not split over ${c.devices} ring devices; use a multiple of ${c.devices}`,
    );
  const tokenizer = loadTokenizer(c.tokenizer === 'llama' ? 'llama' : resolveDataPath(c.tokenizer));
  const input = resolveDataPath(c.data);
  const arrow = join(ctx.workDir, 'sharegpt.arrow');
  const report = buildShareGptDataset(input, arrow, { tokenizer, maxLen: c.seqLen, packLen: c.seqLen });
  ctx.log(
    `data: ${report.kept}/${report.records} conversations kept, dropped ${JSON.stringify(report.dropped)}, ${report.sequences} packed sequences, ${report.tokens} tokens`,
  );
  // the cleaning report: params data.* and a table of drop reasons
  const dataParams: Record<string, number> = {
    'data.records': report.records,
    'data.kept': report.kept,
    'data.sequences': report.sequences,
    'data.tokens': report.tokens,
    'data.loss_tokens': report.loss_tokens,
    'data.split_conversations': report.split_conversations,
    'data.pairs_too_long': report.pairs_too_long,
  };
  ctx.tracker.params(dataParams);
  await ctx.tracker.table('data_report', [
    ...Object.entries(report.dropped).map(([reason, count]) => ({
      kind: 'dropped',
      reason,
      count: count ?? 0,
    })),
    ...Object.entries(report.trimmed).map(([reason, count]) => ({ kind: 'trimmed', reason, count })),
  ]);
  await ctx.tracker.dataset(await datasetInfoFromFile(arrow, 'sharegpt'), 'training');

  const runtime: LlamaRuntime = {
    attention: c.attention,
    blockSize: c.blockSize,
    ffnChunk: c.attention === 'blockwise' || c.attention === 'ring' ? c.blockSize : 0,
    checkpointLayers: c.checkpointLayers,
  };
  let model: LlamaModel;
  if (c.init) model = loadLlama(resolveDataPath(c.init), runtime);
  else {
    const cfg: LlamaConfig = {
      vocabSize: tokenizer.vocabSize,
      ...c.model,
      rmsNormEps: 1e-5,
      ropeScalingFactor: 1,
      maxPositionEmbeddings: c.seqLen,
      bosTokenId: tokenizer.bosId,
      eosTokenId: tokenizer.eosId,
    };
    model = LlamaModel.init(cfg, ctx.rng, runtime);
  }
  if (model.config.vocabSize < tokenizer.vocabSize)
    throw new InputError(
      `sharegpt-finetune: model vocab ${model.config.vocabSize} < tokenizer vocab ${tokenizer.vocabSize}`,
    );
  const vars = model.variables();
  ctx.tracker.params({
    'model.parameters': vars.reduce((a, v) => a + v.size, 0),
    'model.vocab': model.config.vocabSize,
  });

  // the replicas on the devices: weights from here, moments restored on resume
  const N = c.attention === 'ring' ? c.devices : 1;
  const layout = c.layout as RingLayout;
  const total = vars.reduce((a, v) => a + v.size, 0);
  let start = 1;
  let optimizer: OptimizerState | undefined;
  let weights = vars.map((v) => v.dataSync() as Float32Array);
  if (ctx.resume) {
    const t = ctx.resume.tensors;
    weights = vars.map((_, i) => t[`w${i}`].data as Float32Array);
    optimizer = {
      step: ctx.resume.step,
      m: vars.map((_, i) => t[`m${i}`].data as Float32Array),
      v: vars.map((_, i) => t[`v${i}`].data as Float32Array),
    };
    start = ctx.resume.step + 1;
    ctx.log(`resuming at step ${start}`);
  }
  const init: FinetuneInitArgs = {
    config: model.config,
    runtime: { ...runtime, attention: c.attention },
    weights,
    beta1: c.beta1,
    beta2: c.beta2,
    weightDecay: c.weightDecay,
    optimizer,
  };
  // the largest message: a K/V block of one layer, or a device's share of the all-reduce
  const messageFloats = finetuneMessageFloats(model.config, c.batchSize, c.seqLen, N, total);
  const group = await RingGroup.create({ devices: N, backend: ctx.backend.name });
  const ds = new TokenDataset(arrow);
  try {
    await group.run(deviceModule, 'initFinetune', Array(N).fill(init), messageFloats);
    // the sampler's seed advances with the step, so a resumed run draws the same batches
    const samplerAt = (step: number) =>
      new TokenWindowSampler(ds, {
        batchSize: c.batchSize,
        seqLen: c.seqLen,
        seed: ctx.seed * 100_003 + step,
      });
    /** Each device's arguments for one step: its shard of every micro-batch. */
    const stepArgs = (step: number, lr: number): FinetuneStepArgs[] => {
      const sampler = samplerAt(step);
      const windows: Window[] = Array.from({ length: c.gradAccum }, () => {
        const b = sampler.sample();
        return {
          tokens: b.tokens,
          targets: windowTargets(b.tokens, b.lossMask, b.segmentIds, b.mask, c.batchSize, c.seqLen),
          // padding gets its own segment so real tokens never attend to it
          segmentIds: Int32Array.from(b.segmentIds, (s, i) => (b.mask[i] ? s : -1)),
        };
      });
      return shardStep(windows, {
        devices: N,
        batch: c.batchSize,
        seqLen: c.seqLen,
        layout,
        lr,
        clipNorm: c.clipNorm,
      });
    };
    if (c.memoryBudgetMiB > 0) {
      // NOTE: a window the devices cannot hold fails here, before training (issue 22)
      const peaks = await group.run<FinetuneStepArgs, ProbedPeak>(
        deviceModule,
        'probeFinetune',
        stepArgs(start, 0),
        messageFloats,
      );
      const comm = N > 1 ? group.commBytesPerDevice : 0;
      // NOTE: the budget is on real memory (issue 20); the tensor figure is logged beside it
      const need =
        finetuneRealBytesPerDevice(Math.max(...peaks.map((p) => p.realBytes)), total, comm) / 2 ** 20;
      const tensors =
        finetuneBytesPerDevice(Math.max(...peaks.map((p) => p.tensorBytes)), total, comm) / 2 ** 20;
      ctx.tracker.params({
        'model.probe_mib_per_device': need.toFixed(1),
        'model.probe_tensor_mib_per_device': tensors.toFixed(1),
      });
      ctx.log(
        `memory: ${need.toFixed(1)} MiB per device (real: wasm heap, JS, native; tensors ${tensors.toFixed(1)} MiB) of ${c.memoryBudgetMiB} MiB`,
      );
      if (need > c.memoryBudgetMiB)
        throw new InputError(
          `sharegpt-finetune: a ${c.seqLen}-token window (batch ${c.batchSize}) needs ${need.toFixed(1)} MiB per device (real memory; tensors ${tensors.toFixed(1)} MiB) with ${c.attention}${N > 1 ? ` on ${N} devices` : ''}; the budget is ${c.memoryBudgetMiB} MiB (sharegpt-finetune.memoryBudgetMiB). Use attention: ring with more devices, or a shorter seqLen`,
        );
    }
    const snapshot = async (step: number) => {
      const [state] = (await group.run<{ reply: boolean }, FinetuneState | null>(
        deviceModule,
        'finetuneState',
        Array.from({ length: N }, (_, rank) => ({ reply: rank === 0 })),
        1,
      )) as [FinetuneState];
      const tensors: Record<string, SavedTensor> = {};
      vars.forEach((v, i) => {
        tensors[`w${i}`] = { shape: v.shape, data: state.weights[i] };
        tensors[`m${i}`] = { shape: v.shape, data: state.optimizer.m[i] };
        tensors[`v${i}`] = { shape: v.shape, data: state.optimizer.v[i] };
      });
      await ctx.checkpoints.save({ step, state: { step }, tensors });
      return state;
    };

    const progress = ctx.progress(`sharegpt-finetune ${c.attention}${N > 1 ? ` N=${N}` : ''}`, c.steps);
    const curve: { step: number; loss: number }[] = [];
    let last = start - 1;
    for (let step = start; step <= c.steps; step++) {
      // yield so Ctrl-C and the metric flush timer get their turn between steps
      await new Promise((r) => setImmediate(r));
      if (ctx.signal.aborted) break;
      const started = performance.now();
      const lr = learningRate(step, c);
      const [res] = await group.run<FinetuneStepArgs, FinetuneStepResult>(
        deviceModule,
        'finetuneStep',
        stepArgs(step, lr),
        messageFloats,
      );
      const secs = (performance.now() - started) / 1000;
      ctx.tracker.metrics(
        {
          'train/loss': res.loss,
          'train/lr': lr,
          'perf/tokens_per_sec': (c.gradAccum * c.batchSize * c.seqLen) / secs,
          'train/grad_norm': res.gradNorm,
        },
        step,
      );
      curve.push({ step, loss: res.loss });
      progress.update(step, { loss: res.loss });
      last = step;
      if (ctx.checkpoints.due(step) && step !== c.steps) await snapshot(step);
    }
    progress.finish();
    // the final weights come back from device 0 (every replica holds the same)
    const final = last >= start || !ctx.resume ? await snapshot(last) : undefined;
    if (final)
      vars.forEach((v, i) => {
        v.assign(tf.tensor(final.weights[i], v.shape));
      });

    if (!ctx.signal.aborted) {
      if (curve.length)
        await ctx.tracker.plot(
          'learning_curve',
          linePlotSvg({
            title: `sharegpt-finetune: seed ${ctx.seed}`,
            xLabel: 'step',
            yLabel: 'train/loss',
            series: [{ name: 'train/loss', x: curve.map((p) => p.step), y: curve.map((p) => p.loss) }],
          }),
        );
      if (c.exportHf) {
        const out = join(ctx.workDir, 'hf');
        saveLlama(model, out);
        // the run's artifact hf/, as the README and --schema promise (issue 15: it was only here)
        for (const f of readdirSync(out).sort()) await ctx.tracker.file(join(out, f), `hf/${f}`);
        ctx.log(`HF checkpoint: artifact hf/ of the run (and ${out})`);
        // and an MLflow logged model (issue 15): the same folder with an MLmodel and a signature
        try {
          const logged = await logModel(ctx.tracker, {
            name: 'llama',
            modelType: 'llama',
            files: readdirSync(out)
              .sort()
              .map((f) => ({ local: join(out, f), path: f })),
            inputs: [{ name: 'input_ids', dtype: 'int64', shape: [-1, -1] }],
            outputs: [{ name: 'logits', dtype: 'float32', shape: [-1, -1, model.config.vocabSize] }],
            flavor: {
              format: 'huggingface-llama',
              loader:
                'transformers LlamaForCausalLM.from_pretrained(<this folder>), or lm/ loadLlama(<this folder>)',
            },
            params: {
              vocab_size: model.config.vocabSize,
              hidden_size: model.config.hiddenSize,
              num_hidden_layers: model.config.numLayers,
            },
            step: last,
          });
          ctx.log(`logged model ${logged.modelId} (models:/${logged.modelId})`);
        } catch (err) {
          ctx.log(`logged model not written: ${(err as Error).message}`);
        }
      }
    }
  } finally {
    ds.close();
    await group.dispose();
    model.dispose();
  }
}

const deviceModule = new URL('../../lm/finetune-device.js', import.meta.url);

export const shareGptFinetuneRecipe: Recipe<ShareGptFinetuneConfig> = {
  name: 'sharegpt-finetune',
  describe:
    'Finetune a LLaMA-style model on ShareGPT conversations (Vicuna v1.1, AdamW, cosine, checkpoints), on one device or the ring',
  schema: s.object(fields, { doc: 'ShareGPT finetuning' }),
  deviceCount: (c) => (c.attention === 'ring' ? c.devices : 1),
  runLabel: (c) => `finetune-${c.attention}${c.attention === 'ring' ? `-n${c.devices}` : ''}`,
  run,
};
