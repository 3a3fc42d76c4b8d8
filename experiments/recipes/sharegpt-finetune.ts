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
  finetune,
  finetuneModel,
  finetuneRuntime,
  SHAREGPT_FINETUNE_OPTIONS,
  type ShareGptFinetuneOptions,
} from '../../lm/index.js';
import { datasetInfoFromFile } from '../dataset-input.js';
import { maxWorkerThreads, WORKER_THREADS_WHY } from '../config/machine.js';
import { optionSchema } from '../config/option-schema.js';
import { s } from '../config/schema.js';
import { linePlotSvg } from '../plot/svg.js';
import { logHfModel } from './hf-export.js';
import { trainContext } from './train-context.js';
import type { Recipe, RecipeContext } from './types.js';

// the schema is lm/'s documented options (defaults FINETUNE_DEFAULTS, SHAREGPT_SOURCE_DEFAULTS)
export type ShareGptFinetuneConfig = ShareGptFinetuneOptions;

const devices = SHAREGPT_FINETUNE_OPTIONS.fields.devices;
// the ring's devices are worker threads: the machine bounds them (issue 16)
const schema = optionSchema(SHAREGPT_FINETUNE_OPTIONS, {
  devices: s.integer({
    doc: devices.doc,
    default: devices.default,
    min: 1,
    max: maxWorkerThreads(),
    maxWhy: WORKER_THREADS_WHY,
  }),
});

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
  schema,
  deviceCount: (c) => (c.attention === 'ring' ? c.devices : 1),
  runLabel: (c) => `finetune-${c.attention}${c.attention === 'ring' ? `-n${c.devices}` : ''}`,
  run,
};
