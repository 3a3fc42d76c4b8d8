/**
 * lm/'s trainers' options as data (train/option-spec.ts): each field's doc line, its default (the
 * trainer's DEFAULTS) and its rule, written once; experiments/ derives the line-retrieval and
 * sharegpt-finetune recipes' config schemas from them (issue 13: one source of truth).
 */
import { type NumberField, type OptionValues, opt } from '../train/index.js';
import { FINETUNE_DEFAULTS } from './finetune.js';
import { type LlamaShape, SHAREGPT_SOURCE_DEFAULTS } from './finetune-data.js';
import { LINE_RETRIEVAL_DEFAULTS } from './line-retrieval-train.js';

type ShapeKey = Exclude<keyof LlamaShape, 'tieWordEmbeddings'>;

const SHAPE_DOCS: Record<ShapeKey, [doc: string, field: (doc: string, d: number) => NumberField]> = {
  hiddenSize: ['Hidden size', (doc, d) => opt.number(doc, d, 'int1')],
  intermediateSize: ['SwiGLU hidden size', (doc, d) => opt.number(doc, d, 'int1')],
  numLayers: ['Decoder layers', (doc, d) => opt.number(doc, d, 'int1')],
  numHeads: ['Query heads', (doc, d) => opt.number(doc, d, 'int1')],
  numKvHeads: ['Key/value heads (GQA)', (doc, d) => opt.number(doc, d, 'int1')],
  ropeTheta: ['RoPE base', (doc, d) => opt.number(doc, d, 'finite', 1)],
};

/** A model's shape, the fields of the keys `d` has (line retrieval always ties its embeddings). */
function shapeFields<S extends Partial<LlamaShape>>(d: S) {
  const fields = Object.fromEntries(
    Object.entries(d).map(([key, v]) =>
      key === 'tieWordEmbeddings'
        ? [key, opt.flag('Share the embedding and the LM head', v as boolean)]
        : [key, SHAPE_DOCS[key as ShapeKey][1](SHAPE_DOCS[key as ShapeKey][0], v as number)],
    ),
  );
  return fields as { [K in keyof S]: S[K] extends boolean ? ReturnType<typeof opt.flag> : NumberField };
}

/** AdamW and the warmup-cosine schedule (train/optim.ts), as lm/'s trainers take them. */
function optimizerFields(d: {
  lr: number;
  minLrRatio: number;
  warmupSteps: number;
  weightDecay: number;
  clipNorm: number;
}) {
  return {
    lr: opt.number('Peak learning rate', d.lr, 'pos'),
    minLrRatio: opt.number('Final learning rate as a fraction of lr (cosine floor)', d.minLrRatio, 'nonneg'),
    warmupSteps: opt.number('Linear warmup steps', d.warmupSteps, 'int0'),
    weightDecay: opt.number('AdamW decoupled weight decay (matrices only)', d.weightDecay, 'nonneg'),
    clipNorm: opt.number('Global gradient-norm clip; 0 = none', d.clipNorm, 'nonneg'),
  };
}

const ATTENTIONS = ['vanilla', 'memeff', 'blockwise', 'ring'] as const;
const LAYOUTS = ['contiguous', 'striped'] as const;

const L = LINE_RETRIEVAL_DEFAULTS;
const lineCounts = (doc: string, d: number[]) => opt.list(doc, d, 'line count', 'int1', 1);

/** lm/line-retrieval-train.ts's and lm/line-retrieval-eval.ts's options (the `line-retrieval` recipe's config). */
export const LINE_RETRIEVAL_OPTIONS = opt.group('LongChat line retrieval (paper Figure 3 in miniature)', {
  model: opt.group('Shape of the model (random init, tied embeddings)', shapeFields(L.model)),
  maxValue: opt.number('Register numbers are drawn from 1..maxValue (LongChat: 50000)', L.maxValue, 'int1'),
  trainLines: lineCounts(
    'Line counts of the training cases (each case draws one the curriculum allows)',
    L.trainLines,
  ),
  curriculum: opt.group('Few lines first, then more', {
    startLines: opt.number(
      'Largest line count allowed at the start (the smallest of trainLines is always allowed)',
      L.curriculum.startLines,
      'int1',
    ),
    holdSteps: opt.number('Steps at startLines before the cap grows', L.curriculum.holdSteps, 'int0'),
    fullSteps: opt.number(
      'Step from which all of trainLines are allowed (linear growth after holdSteps); 0 = no curriculum',
      L.curriculum.fullSteps,
      'int0',
    ),
  }),
  otherTokenWeight: opt.number(
    "Weight of the prompt tokens' mean cross-entropy, added to the answer tokens' mean; 0 = answer only",
    L.otherTokenWeight,
    'nonneg',
  ),
  steps: opt.number('Optimizer steps', L.steps, 'int0'),
  batchSize: opt.number('Cases per training step', L.batchSize, 'int1'),
  ...optimizerFields(L),
  trainAttention: opt.choice(
    'Attention while training (ring: on trainDevices ring devices); evaluation is blockwise (BPT) and ring',
    ATTENTIONS,
    L.trainAttention,
  ),
  trainDevices: opt.number(
    'Where training runs: 0 = the main thread; ≥ 1 = worker devices (one device, or the ring)',
    L.trainDevices,
    'int0',
  ),
  trainMemoryMiB: opt.number(
    'Per-device budget (MiB, of trainMemoryOn) of a training step on devices; 0 = unchecked',
    L.trainMemoryMiB,
    'nonneg',
  ),
  trainMemoryOn: opt.choice(
    "What trainMemoryMiB bounds: real (what a device holds) or tensors (the step's peak tensor bytes)",
    ['real', 'tensors'] as const,
    L.trainMemoryOn,
  ),
  evalEvery: opt.number(
    'Held-out accuracy every this many steps; 0 = only at the last step',
    L.evalEvery,
    'int0',
  ),
  blockSize: opt.number(
    'Attention block size and FFN chunk (blockwise on one device, ring inner loop)',
    L.blockSize,
    'int1',
  ),
  evalLines: lineCounts(
    'Line counts evaluated (one device where it fits the budget; the ring always)',
    L.evalLines,
  ),
  evalCases: opt.number('Cases per evaluated length', L.evalCases, 'int1'),
  evalBatch: opt.number('Cases per evaluation forward pass (the measured batch)', L.evalBatch, 'int1'),
  deviceMemoryMB: opt.number(
    'Per-device budget (MiB) of real memory (wasm heap + JS + native, measured) for an evaluation forward pass',
    L.deviceMemoryMB,
    'pos',
  ),
  devices: opt.number('Ring devices N (worker threads)', L.devices, 'int1'),
  layout: opt.choice('How tokens are split over the ring devices', LAYOUTS, L.layout),
  evalSeed: opt.number('Seed of the evaluation cases (same cases for every run)', L.evalSeed, 'int'),
});
export type LineRetrievalRunOptions = OptionValues<typeof LINE_RETRIEVAL_OPTIONS>;

const F = FINETUNE_DEFAULTS;
const SRC = SHAREGPT_SOURCE_DEFAULTS;

/**
 * The `sharegpt-finetune` recipe's config: the source (lm/finetune-data.ts), lm/finetune.ts's
 * options and the export at the end.
 */
export const SHAREGPT_FINETUNE_OPTIONS = opt.group('ShareGPT finetuning', {
  data: opt.text(
    'ShareGPT JSON/JSONL file (relative paths: the working folder, then the repository)',
    SRC.data,
    true,
  ),
  tokenizer: opt.text(
    '"llama" (bundled LLaMA-1/2 vocabulary) or a folder/file with tokenizer.json',
    SRC.tokenizer,
    true,
  ),
  init: opt.text('HF LLaMA checkpoint folder to finetune; empty = random init of `model`', SRC.init),
  model: opt.group('Shape of a randomly initialised model (ignored with `init`)', shapeFields(SRC.model)),
  attention: opt.choice(
    'Attention implementation: vanilla, memeff, blockwise (one device) or ring (`devices` devices)',
    ATTENTIONS,
    F.attention,
  ),
  devices: opt.number('Ring devices N (attention: ring); seqLen must be divisible by N', F.devices, 'int1'),
  layout: opt.choice(
    'Ring token layout: contiguous blocks, or striped (token i on device i mod N: causal work balanced)',
    LAYOUTS,
    F.layout,
  ),
  memoryBudgetMiB: opt.number(
    'Per-device memory budget checked before training, on real memory (wasm heap, JS, native; an idle device holds about 40 MiB); 0 = no check',
    F.memoryBudgetMiB,
    'nonneg',
  ),
  blockSize: opt.number('Attention block size and FFN chunk (memeff/blockwise/ring)', F.blockSize, 'int1'),
  checkpointLayers: opt.flag(
    'Per-layer gradient checkpointing (the paper: full checkpointing)',
    F.checkpointLayers,
  ),
  seqLen: opt.number('Tokens per training window (and the pack length)', F.seqLen, 'int1', 8),
  batchSize: opt.number('Windows per micro-batch', F.batchSize, 'int1'),
  gradAccum: opt.number('Micro-batches accumulated per optimizer step', F.gradAccum, 'int1'),
  steps: opt.number('Optimizer steps', F.steps, 'int1'),
  ...optimizerFields(F),
  beta1: opt.number('Adam β1', F.beta1, 'nonneg'),
  beta2: opt.number('Adam β2', F.beta2, 'nonneg'),
  exportHf: opt.flag('Write the final model as a HF folder (artifact hf/)', true),
});
export type ShareGptFinetuneOptions = OptionValues<typeof SHAREGPT_FINETUNE_OPTIONS>;
