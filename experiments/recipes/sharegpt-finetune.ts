/**
 * `recipe: sharegpt-finetune` — finetune a LLaMA-style model on ShareGPT conversations (paper
 * Figure 3's setup, in miniature), on one device or split over `devices` ring devices (issue 22).
 * The config is lm/'s options: the source (lm/finetune-data.ts: ShareGPT file → cleaned, Vicuna
 * v1.1, assistant-only loss, packed Arrow token dataset; the model from `init` or random weights
 * of `model`'s shape) and the trainer's (lm/finetune.ts: AdamW, warmup + cosine, gradient
 * accumulation, clipping, checkpointing, the ring); this recipe maps it and logs what a run keeps.
 *
 * Metrics: `train/loss` (mean token cross-entropy of the step's batches), `train/lr`,
 * `perf/tokens_per_sec` (tokens through forward+backward per wall second), `train/grad_norm`
 * (before clipping). Params `data.*` and table `data_report`: the ShareGPT cleaning report; plot
 * `learning_curve`; artifact hf/ (config.json + model.safetensors) and a logged model at the end.
 */
import { join } from 'node:path';
import {
  buildShareGptData,
  checkFinetuneOptions,
  FINETUNE_DEFAULTS as D,
  finetune,
  finetuneModel,
  finetuneRuntime,
  SHAREGPT_SOURCE_DEFAULTS as SRC,
} from '../../lm/index.js';
import { datasetInfoFromFile } from '../dataset-input.js';
import { maxWorkerThreads, WORKER_THREADS_WHY } from '../config/machine.js';
import { type InferFields, s } from '../config/schema.js';
import { linePlotSvg } from '../plot/svg.js';
import { logHfModel } from './hf-export.js';
import { optimizerFields, shapeSchema } from './lm-fields.js';
import { trainContext } from './train-context.js';
import type { Recipe, RecipeContext } from './types.js';

const fields = {
  data: s.string({
    doc: 'ShareGPT JSON/JSONL file (relative paths: the working folder, then the repository)',
    default: SRC.data,
    nonEmpty: true,
  }),
  tokenizer: s.string({
    doc: '"llama" (bundled LLaMA-1/2 vocabulary) or a folder/file with tokenizer.json',
    default: SRC.tokenizer,
    nonEmpty: true,
  }),
  init: s.string({
    doc: 'HF LLaMA checkpoint folder to finetune; empty = random init of `model`',
    default: SRC.init,
  }),
  model: shapeSchema(SRC.model, 'Shape of a randomly initialised model (ignored with `init`)'),
  attention: s.enum(['vanilla', 'memeff', 'blockwise', 'ring'] as const, {
    doc: 'Attention implementation: vanilla, memeff, blockwise (one device) or ring (`devices` devices)',
    default: D.attention,
  }),
  devices: s.integer({
    doc: 'Ring devices N (attention: ring); seqLen must be divisible by N',
    default: D.devices,
    min: 1,
    max: maxWorkerThreads(),
    maxWhy: WORKER_THREADS_WHY,
  }),
  layout: s.enum(['contiguous', 'striped'] as const, {
    doc: 'Ring token layout: contiguous blocks, or striped (token i on device i mod N: causal work balanced)',
    default: D.layout,
  }),
  memoryBudgetMiB: s.number({
    doc: 'Per-device memory budget checked before training, on real memory (wasm heap, JS, native; an idle device holds about 40 MiB); 0 = no check',
    default: D.memoryBudgetMiB,
    min: 0,
  }),
  blockSize: s.integer({
    doc: 'Attention block size and FFN chunk (memeff/blockwise/ring)',
    default: D.blockSize,
    min: 1,
  }),
  checkpointLayers: s.boolean({
    doc: 'Per-layer gradient checkpointing (the paper: full checkpointing)',
    default: D.checkpointLayers,
  }),
  seqLen: s.integer({ doc: 'Tokens per training window (and the pack length)', default: D.seqLen, min: 8 }),
  batchSize: s.integer({ doc: 'Windows per micro-batch', default: D.batchSize, min: 1 }),
  gradAccum: s.integer({ doc: 'Micro-batches accumulated per optimizer step', default: D.gradAccum, min: 1 }),
  steps: s.integer({ doc: 'Optimizer steps', default: D.steps, min: 1 }),
  ...optimizerFields(D),
  beta1: s.number({ doc: 'Adam β1', default: D.beta1, min: 0 }),
  beta2: s.number({ doc: 'Adam β2', default: D.beta2, min: 0 }),
  exportHf: s.boolean({ doc: 'Write the final model as a HF folder (artifact hf/)', default: true }),
};

export type ShareGptFinetuneConfig = InferFields<typeof fields>;

async function run(ctx: RecipeContext<ShareGptFinetuneConfig>): Promise<void> {
  // the config is the trainer's options plus the source (data, tokenizer, model) and the export
  const { data, tokenizer, init, model: shape, exportHf, ...options } = ctx.config;
  const source = { data, tokenizer, init, model: shape };
  checkFinetuneOptions(options, 'sharegpt-finetune'); // before the dataset is built: fail fast
  const arrow = join(ctx.workDir, 'sharegpt.arrow');
  const built = buildShareGptData(source, options.seqLen, arrow);
  ctx.log(`data: ${built.summary}`);
  ctx.tracker.params(built.params);
  await ctx.tracker.table('data_report', built.reasons);
  await ctx.tracker.dataset(await datasetInfoFromFile(arrow, 'sharegpt'), 'training');
  const runtime = finetuneRuntime(options);
  const model = finetuneModel(source, built.tokenizer, options.seqLen, ctx.rng, runtime, 'sharegpt-finetune');
  try {
    ctx.tracker.params({
      'model.parameters': model.variables().reduce((a, v) => a + v.size, 0),
      'model.vocab': model.config.vocabSize,
    });
    const { curve, lastStep } = await finetune(model, arrow, options, trainContext(ctx));
    if (ctx.signal.aborted) return;
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
    if (exportHf) await logHfModel(ctx, model, lastStep);
  } finally {
    model.dispose();
  }
}

export const shareGptFinetuneRecipe: Recipe<ShareGptFinetuneConfig> = {
  name: 'sharegpt-finetune',
  describe:
    'Finetune a LLaMA-style model on ShareGPT conversations (Vicuna v1.1, AdamW, cosine, checkpoints), on one device or the ring',
  schema: s.object(fields, { doc: 'ShareGPT finetuning' }),
  deviceCount: (c) => (c.attention === 'ring' ? c.devices : 1),
  runLabel: (c) => `finetune-${c.attention}${c.attention === 'ring' ? `-n${c.devices}` : ''}`,
  run,
};
