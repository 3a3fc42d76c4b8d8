/**
 * `recipe: line-retrieval` — paper Figure 3 in miniature: train a small LLaMA on LongChat's
 * line-retrieval task (PAPER.md §3) with the word tokenizer, evaluate accuracy per context length,
 * then show ring attention evaluating the same weights at N× the context one device can hold.
 *
 * The training is lm/line-retrieval-train.ts (curriculum, loss on answer and prompt tokens, AdamW
 * with warmup + cosine, held-out accuracy); the evaluation, one device within `deviceMemoryMB`
 * against N ring devices, is lm/line-retrieval-eval.ts. This recipe maps the config onto their
 * options (the config is the options, one to one) and logs the result table and plots (issue 13).
 *
 * Metrics: `train/loss` (answer-token cross-entropy + the prompt's weighted share),
 * `train/answer_loss`, `train/max_lines`, `train/lr`, `train/grad_norm`, `train/heldout_accuracy`
 * (held-out cases like the training ones), `eval/accuracy` (one device, step = context tokens),
 * `eval/ring_accuracy` (N ring devices, step = context tokens), `eval/accuracy_<lines>lines`,
 * `eval/ring_accuracy_<lines>lines`, `eval/peak_mb_one_device` and `eval/peak_mb_ring`
 * (step = context tokens), `eval/max_context_one_device`, `eval/max_context_ring`. Table
 * `line_retrieval` and plot `line_retrieval` (accuracy vs context tokens).
 */
import {
  evaluateLineRetrieval,
  LINE_RETRIEVAL_DEFAULTS as D,
  type LineRetrievalOptions,
  trainLineRetrieval,
  trainLineRetrievalOnDevices,
} from '../../lm/index.js';
import { type InferFields, s } from '../config/schema.js';
import { linePlotSvg } from '../plot/svg.js';
import { trainContext } from './train-context.js';
import type { Recipe, RecipeContext } from './types.js';

const fields = {
  model: s.object(
    {
      hiddenSize: s.integer({ doc: 'Hidden size', default: D.model.hiddenSize, min: 1 }),
      intermediateSize: s.integer({ doc: 'SwiGLU hidden size', default: D.model.intermediateSize, min: 1 }),
      numLayers: s.integer({ doc: 'Decoder layers', default: D.model.numLayers, min: 1 }),
      numHeads: s.integer({ doc: 'Query heads', default: D.model.numHeads, min: 1 }),
      numKvHeads: s.integer({ doc: 'Key/value heads (GQA)', default: D.model.numKvHeads, min: 1 }),
      ropeTheta: s.number({ doc: 'RoPE base', default: D.model.ropeTheta, min: 1 }),
    },
    { doc: 'Shape of the model (random init, tied embeddings)' },
  ),
  maxValue: s.integer({
    doc: 'Register numbers are drawn from 1..maxValue (LongChat: 50000)',
    default: D.maxValue,
    min: 1,
  }),
  trainLines: s.list(s.integer({ doc: 'line count', min: 1 }), {
    doc: 'Line counts of the training cases (each case draws one of those the curriculum allows)',
    default: D.trainLines,
    minLength: 1,
  }),
  curriculum: s.object(
    {
      startLines: s.integer({
        doc: 'Largest line count allowed at the start (the smallest of trainLines is always allowed)',
        default: D.curriculum.startLines,
        min: 1,
      }),
      holdSteps: s.integer({
        doc: 'Steps at startLines before the cap grows',
        default: D.curriculum.holdSteps,
        min: 0,
      }),
      fullSteps: s.integer({
        doc: 'Step from which all of trainLines are allowed (linear growth after holdSteps); 0 = no curriculum',
        default: D.curriculum.fullSteps,
        min: 0,
      }),
    },
    { doc: 'Few lines first, then more' },
  ),
  otherTokenWeight: s.number({
    doc: "Weight of the prompt tokens' mean cross-entropy, added to the answer tokens' mean; 0 = answer only",
    default: D.otherTokenWeight,
    min: 0,
  }),
  steps: s.integer({ doc: 'Optimizer steps', default: D.steps, min: 0 }),
  batchSize: s.integer({ doc: 'Cases per training step', default: D.batchSize, min: 1 }),
  lr: s.number({ doc: 'Peak learning rate', default: D.lr, min: 0, exclusiveMin: true }),
  minLrRatio: s.number({ doc: 'Final learning rate as a fraction of lr', default: D.minLrRatio, min: 0 }),
  warmupSteps: s.integer({ doc: 'Linear warmup steps', default: D.warmupSteps, min: 0 }),
  weightDecay: s.number({
    doc: 'AdamW decoupled weight decay (matrices only)',
    default: D.weightDecay,
    min: 0,
  }),
  clipNorm: s.number({ doc: 'Global gradient-norm clip; 0 = none', default: D.clipNorm, min: 0 }),
  trainAttention: s.enum(['vanilla', 'memeff', 'blockwise', 'ring'] as const, {
    doc: 'Attention while training (ring: on trainDevices ring devices); evaluation is blockwise (BPT) and ring',
    default: D.trainAttention,
  }),
  trainDevices: s.integer({
    doc: 'Where training runs: 0 = the main thread; ≥ 1 = worker devices (one device, or the ring)',
    default: D.trainDevices,
    min: 0,
  }),
  trainMemoryMiB: s.number({
    doc: 'Per-device budget (MiB, real memory) of a training step on devices; 0 = unchecked',
    default: D.trainMemoryMiB,
    min: 0,
  }),
  evalEvery: s.integer({
    doc: 'Held-out accuracy every this many steps; 0 = never',
    default: D.evalEvery,
    min: 0,
  }),
  blockSize: s.integer({
    doc: 'Attention block size and FFN chunk (blockwise on one device, ring inner loop)',
    default: D.blockSize,
    min: 1,
  }),
  evalLines: s.list(s.integer({ doc: 'line count', min: 1 }), {
    doc: 'Line counts evaluated (one device where it fits the budget; the ring always)',
    default: D.evalLines,
    minLength: 1,
  }),
  evalCases: s.integer({ doc: 'Cases per evaluated length', default: D.evalCases, min: 1 }),
  evalBatch: s.integer({
    doc: 'Cases per evaluation forward pass (the measured batch)',
    default: D.evalBatch,
    min: 1,
  }),
  deviceMemoryMB: s.number({
    doc: 'Per-device budget of peak tensor MB (measured) for an evaluation forward pass',
    default: D.deviceMemoryMB,
    min: 0,
    exclusiveMin: true,
  }),
  devices: s.integer({ doc: 'Ring devices N (worker threads)', default: D.devices, min: 1 }),
  layout: s.enum(['contiguous', 'striped'] as const, {
    doc: 'How tokens are split over the ring devices',
    default: D.layout,
  }),
  evalSeed: s.integer({
    doc: 'Seed of the evaluation cases (same cases for every run)',
    default: D.evalSeed,
  }),
};

export type LineRetrievalConfig = InferFields<typeof fields>;

async function run(ctx: RecipeContext<LineRetrievalConfig>): Promise<void> {
  const c = ctx.config;
  // the config is the trainer's options, one to one
  const options: LineRetrievalOptions = { ...c, model: { ...c.model }, curriculum: { ...c.curriculum } };
  const train = trainContext(ctx);
  const trainer = options.trainDevices > 0 ? trainLineRetrievalOnDevices : trainLineRetrieval;
  const { model, heldout } = await trainer(options, train);
  const { tracker } = ctx;
  try {
    if (ctx.signal.aborted) return;
    const { rows } = await evaluateLineRetrieval(model, options, train);
    await tracker.table(
      'line_retrieval',
      rows.map((r) => ({ ...r })),
    );
    const series = [
      {
        name: 'one device (BPT)',
        x: rows.filter((r) => typeof r.one_device_accuracy === 'number').map((r) => r.context_tokens),
        y: rows.flatMap((r) => (typeof r.one_device_accuracy === 'number' ? [r.one_device_accuracy] : [])),
      },
      {
        name: `ring N=${c.devices}`,
        x: rows.map((r) => r.context_tokens),
        y: rows.map((r) => Number(r.ring_accuracy)),
      },
    ].filter((x) => x.x.length > 0);
    await tracker.plot(
      'line_retrieval',
      linePlotSvg({
        title: `line retrieval: accuracy per context (budget ${c.deviceMemoryMB} MB per device)`,
        xLabel: 'context tokens',
        yLabel: 'accuracy',
        series,
      }),
    );
    if (heldout.length)
      await tracker.plot(
        'heldout_accuracy',
        linePlotSvg({
          title: 'line retrieval: held-out accuracy during training',
          xLabel: 'step',
          yLabel: 'accuracy',
          series: [{ name: 'held-out', x: heldout.map((h) => h.step), y: heldout.map((h) => h.accuracy) }],
        }),
      );
  } finally {
    model.dispose();
  }
}

export const lineRetrievalRecipe: Recipe<LineRetrievalConfig> = {
  name: 'line-retrieval',
  describe:
    'Train a small LLaMA on LongChat line retrieval; accuracy per context length, one device vs ring at N× the context',
  schema: s.object(fields, { doc: 'LongChat line retrieval (paper Figure 3 in miniature)' }),
  deviceCount: (c) => c.devices,
  run,
};
