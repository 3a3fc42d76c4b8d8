/**
 * Config fields the LM recipes share (sharegpt-finetune, line-retrieval): a model's shape and the
 * AdamW + warmup-cosine options of lm/'s trainers, each field's default taken from the trainer's
 * DEFAULTS (issue 13: one source of truth).
 */
import type { LlamaShape } from '../../lm/index.js';
import { type InferFields, type ObjectSchema, s } from '../config/schema.js';

const SHAPE = {
  hiddenSize: (d: number) => s.integer({ doc: 'Hidden size', default: d, min: 1 }),
  intermediateSize: (d: number) => s.integer({ doc: 'SwiGLU hidden size', default: d, min: 1 }),
  numLayers: (d: number) => s.integer({ doc: 'Decoder layers', default: d, min: 1 }),
  numHeads: (d: number) => s.integer({ doc: 'Query heads', default: d, min: 1 }),
  numKvHeads: (d: number) => s.integer({ doc: 'Key/value heads (GQA)', default: d, min: 1 }),
  ropeTheta: (d: number) => s.number({ doc: 'RoPE base', default: d, min: 1 }),
  tieWordEmbeddings: (d: boolean) => s.boolean({ doc: 'Share the embedding and the LM head', default: d }),
};
type ShapeFields<K extends keyof LlamaShape> = { [P in K]: ReturnType<(typeof SHAPE)[P]> };

/** The fields of a model shape, for the keys `defaults` has. */
export function shapeSchema<K extends keyof LlamaShape>(
  defaults: Pick<LlamaShape, K>,
  doc: string,
): ObjectSchema<InferFields<ShapeFields<K>>> {
  const fields = Object.fromEntries(
    Object.entries(defaults).map(([key, d]) => [key, SHAPE[key as K](d as never)]),
  ) as ShapeFields<K>;
  return s.object(fields, { doc });
}

interface OptimizerDefaults {
  lr: number;
  minLrRatio: number;
  warmupSteps: number;
  weightDecay: number;
  clipNorm: number;
}

/** AdamW and the warmup-cosine schedule (lm/finetune.ts `learningRate`). */
export function optimizerFields(d: OptimizerDefaults) {
  return {
    lr: s.number({ doc: 'Peak learning rate', default: d.lr, min: 0, exclusiveMin: true }),
    minLrRatio: s.number({
      doc: 'Final learning rate as a fraction of lr (cosine floor)',
      default: d.minLrRatio,
      min: 0,
    }),
    warmupSteps: s.integer({ doc: 'Linear warmup steps', default: d.warmupSteps, min: 0 }),
    weightDecay: s.number({
      doc: 'AdamW decoupled weight decay (matrices only)',
      default: d.weightDecay,
      min: 0,
    }),
    clipNorm: s.number({ doc: 'Global gradient-norm clip; 0 = none', default: d.clipNorm, min: 0 }),
  };
}
