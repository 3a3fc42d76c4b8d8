/**
 * `recipe: line-retrieval` — paper Figure 3 in miniature: train a small LLaMA on LongChat's
 * line-retrieval task (PAPER.md §3) with the word tokenizer, evaluate accuracy per context length,
 * then show ring attention evaluating the same weights at N× the context one device can hold.
 * The config is the options of lm/line-retrieval-train.ts (curriculum, loss on answer and prompt
 * tokens, AdamW with warmup + cosine, held-out accuracy) and lm/line-retrieval-eval.ts (one device
 * within `deviceMemoryMB` of real memory against N ring devices), one to one; this recipe logs the table and plots.
 *
 * Metrics: `train/loss` (answer-token cross-entropy + the prompt's weighted share),
 * `train/answer_loss`, `train/max_lines`, `train/lr`, `train/grad_norm`, `train/heldout_accuracy`
 * (held-out cases like the training ones), `eval/accuracy` (one device, step = context tokens),
 * `eval/ring_accuracy` (N ring devices, step = context tokens), `eval/accuracy_<lines>lines`,
 * `eval/ring_accuracy_<lines>lines`, `eval/peak_mb_one_device` and `eval/peak_mb_ring` (real
 * memory, the budget's figure), `eval/tensor_mb_one_device` and `eval/tensor_mb_ring` (peak tensor
 * bytes) (step = context tokens), `eval/max_context_one_device`, `eval/max_context_ring`. Table
 * `line_retrieval` and plot `line_retrieval` (accuracy vs context tokens).
 */
import {
  accuracyCurves,
  evaluateLineRetrieval,
  LINE_RETRIEVAL_OPTIONS,
  type LineRetrievalRunOptions,
  trainLineRetrieval,
  trainLineRetrievalOnDevices,
} from '../../lm/index.js';
import { optionSchema } from '../config/option-schema.js';
import { linePlotSvg } from '../plot/svg.js';
import { trainContext } from './train-context.js';
import type { Recipe, RecipeContext } from './types.js';

// the schema is lm/'s documented options, their defaults LINE_RETRIEVAL_DEFAULTS (issue 13)
export type LineRetrievalConfig = LineRetrievalRunOptions;

async function run(ctx: RecipeContext<LineRetrievalConfig>): Promise<void> {
  const c = ctx.config;
  // the config is the trainer's options, one to one
  const options = { ...c, model: { ...c.model }, curriculum: { ...c.curriculum } };
  const train = trainContext(ctx);
  const trainer = options.trainDevices > 0 ? trainLineRetrievalOnDevices : trainLineRetrieval;
  const { model, heldout } = await trainer(options, train);
  try {
    if (ctx.signal.aborted) return;
    const { rows } = await evaluateLineRetrieval(model, options, train);
    await ctx.tracker.table(
      'line_retrieval',
      rows.map((r) => ({ ...r })),
    );
    const title = `line retrieval: accuracy per context (budget ${c.deviceMemoryMB} MiB real memory per device)`;
    const series = accuracyCurves(rows, c.devices);
    await ctx.tracker.plot(
      'line_retrieval',
      linePlotSvg({ title, xLabel: 'context tokens', yLabel: 'accuracy', series }),
    );
    if (heldout.length) {
      const curve = { name: 'held-out', x: heldout.map((h) => h.step), y: heldout.map((h) => h.accuracy) };
      const title = 'line retrieval: held-out accuracy during training';
      await ctx.tracker.plot(
        'heldout_accuracy',
        linePlotSvg({ title, xLabel: 'step', yLabel: 'accuracy', series: [curve] }),
      );
    }
  } finally {
    model.dispose();
  }
}

export const lineRetrievalRecipe: Recipe<LineRetrievalConfig> = {
  name: 'line-retrieval',
  describe:
    'Train a small LLaMA on LongChat line retrieval; accuracy per context length, one device vs ring at N× the context',
  schema: optionSchema(LINE_RETRIEVAL_OPTIONS),
  deviceCount: (c) => c.devices,
  run,
};
