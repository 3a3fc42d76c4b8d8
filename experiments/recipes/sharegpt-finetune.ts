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
 *
 * The training loop is lm/finetune.ts (`finetune`); this recipe maps the config onto its options,
 * builds the dataset and the model, and logs what a run keeps (issue 13).
 */
import { existsSync, readdirSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../../common/index.js';
import {
  buildShareGptDataset,
  checkFinetuneOptions,
  FINETUNE_DEFAULTS as D,
  finetune,
  finetuneRuntime,
  type LlamaConfig,
  LlamaModel,
  loadLlama,
  loadTokenizer,
  saveLlama,
} from '../../lm/index.js';
import { datasetInfoFromFile } from '../dataset-input.js';
import { logModel } from '../logged-model.js';
import { maxWorkerThreads, WORKER_THREADS_WHY } from '../config/machine.js';
import { type InferFields, s } from '../config/schema.js';
import { linePlotSvg } from '../plot/svg.js';
import { trainContext } from './train-context.js';
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
  lr: s.number({ doc: 'Peak learning rate', default: D.lr, min: 0, exclusiveMin: true }),
  minLrRatio: s.number({
    doc: 'Final learning rate as a fraction of lr (cosine floor)',
    default: D.minLrRatio,
    min: 0,
  }),
  warmupSteps: s.integer({ doc: 'Linear warmup steps', default: D.warmupSteps, min: 0 }),
  weightDecay: s.number({
    doc: 'AdamW decoupled weight decay (not on norms)',
    default: D.weightDecay,
    min: 0,
  }),
  beta1: s.number({ doc: 'Adam β1', default: D.beta1, min: 0 }),
  beta2: s.number({ doc: 'Adam β2', default: D.beta2, min: 0 }),
  clipNorm: s.number({ doc: 'Global gradient-norm clip; 0 = none', default: D.clipNorm, min: 0 }),
  exportHf: s.boolean({ doc: 'Write the final model as a HF folder (artifact hf/)', default: true }),
};

export type ShareGptFinetuneConfig = InferFields<typeof fields>;

/** A data, tokenizer or init path: as given, else under the working folder, else the repository. */
export function resolveDataPath(p: string): string {
  if (isAbsolute(p)) return p;
  const here = resolve(p);
  return existsSync(here) ? here : join(REPO, p);
}

async function run(ctx: RecipeContext<ShareGptFinetuneConfig>): Promise<void> {
  const c = ctx.config;
  // the config is the trainer's options plus what this recipe builds: data, tokenizer, model
  const { data, tokenizer: vocabulary, init, model: shape, exportHf, ...options } = c;

  checkFinetuneOptions(options, 'sharegpt-finetune'); // before the dataset is built: fail fast
  const tokenizer = loadTokenizer(vocabulary === 'llama' ? 'llama' : resolveDataPath(vocabulary));
  const arrow = join(ctx.workDir, 'sharegpt.arrow');
  const report = buildShareGptDataset(resolveDataPath(data), arrow, {
    tokenizer,
    maxLen: c.seqLen,
    packLen: c.seqLen,
  });
  ctx.log(
    `data: ${report.kept}/${report.records} conversations kept, dropped ${JSON.stringify(report.dropped)}, ${report.sequences} packed sequences, ${report.tokens} tokens`,
  );
  // the cleaning report: params data.* and a table of drop reasons
  const { records, kept, sequences, tokens, loss_tokens, split_conversations, pairs_too_long } = report;
  const dataReport = { records, kept, sequences, tokens, loss_tokens, split_conversations, pairs_too_long };
  ctx.tracker.params(Object.fromEntries(Object.entries(dataReport).map(([k, v]) => [`data.${k}`, v])));
  await ctx.tracker.table('data_report', [
    ...Object.entries(report.dropped).map(([reason, count]) => ({
      kind: 'dropped',
      reason,
      count: count ?? 0,
    })),
    ...Object.entries(report.trimmed).map(([reason, count]) => ({ kind: 'trimmed', reason, count })),
  ]);
  await ctx.tracker.dataset(await datasetInfoFromFile(arrow, 'sharegpt'), 'training');

  const runtime = finetuneRuntime(options);
  let model: LlamaModel;
  if (init) model = loadLlama(resolveDataPath(init), runtime);
  else {
    const cfg: LlamaConfig = {
      vocabSize: tokenizer.vocabSize,
      ...shape,
      rmsNormEps: 1e-5,
      ropeScalingFactor: 1,
      maxPositionEmbeddings: c.seqLen,
      bosTokenId: tokenizer.bosId,
      eosTokenId: tokenizer.eosId,
    };
    model = LlamaModel.init(cfg, ctx.rng, runtime);
  }
  try {
    if (model.config.vocabSize < tokenizer.vocabSize)
      throw new InputError(
        `sharegpt-finetune: model vocab ${model.config.vocabSize} < tokenizer vocab ${tokenizer.vocabSize}`,
      );
    ctx.tracker.params({
      'model.parameters': model.variables().reduce((a, v) => a + v.size, 0),
      'model.vocab': model.config.vocabSize,
    });
    const train = trainContext(ctx);
    const { curve, lastStep } = await finetune(model, arrow, options, train);
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
    if (exportHf) await saveHfModel(ctx, model, lastStep);
  } finally {
    model.dispose();
  }
}

/** The final model as the run's artifact hf/ and an MLflow logged model (issue 15). */
async function saveHfModel(ctx: RecipeContext<ShareGptFinetuneConfig>, model: LlamaModel, step: number) {
  const out = join(ctx.workDir, 'hf');
  saveLlama(model, out);
  const files = readdirSync(out).sort();
  for (const f of files) await ctx.tracker.file(join(out, f), `hf/${f}`);
  ctx.log(`HF checkpoint: artifact hf/ of the run (and ${out})`);
  try {
    const logged = await logModel(ctx.tracker, {
      name: 'llama',
      modelType: 'llama',
      files: files.map((f) => ({ local: join(out, f), path: f })),
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
      step,
    });
    ctx.log(`logged model ${logged.modelId} (models:/${logged.modelId})`);
  } catch (err) {
    ctx.log(`logged model not written: ${(err as Error).message}`);
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
