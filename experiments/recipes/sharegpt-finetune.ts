/**
 * `recipe: sharegpt-finetune` — finetune a LLaMA-style model on ShareGPT conversations (paper
 * Figure 3's setup, in miniature): ShareGPT → cleaned, Vicuna v1.1, assistant-only loss, packed
 * Arrow token dataset → AdamW with linear warmup and cosine decay, gradient accumulation, global
 * norm clipping, per-layer gradient checkpointing → checkpoints, resume, and a Hugging Face
 * folder (config.json + model.safetensors) at the end.
 *
 * The model starts from `init` (a HF LLaMA folder) or from random weights of `model`'s shape.
 *
 * Metrics: `train/loss` (mean token cross-entropy of the step's batches), `train/lr`,
 * `train/tokens_per_sec` (tokens through forward+backward per wall second), `train/grad_norm`
 * (before clipping). Params `data.*` and table `data_report`: the ShareGPT cleaning report.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../../common/index.js';
import { TokenDataset, TokenWindowSampler } from '../../datasets/index.js';
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
import type { SavedTensor } from '../checkpoint.js';
import { datasetInfoFromFile } from '../dataset-input.js';
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
  attention: s.enum(['vanilla', 'memeff', 'blockwise'] as const, {
    doc: 'Attention implementation (one device)',
    default: 'blockwise',
  }),
  blockSize: s.integer({ doc: 'Attention block size and FFN chunk (memeff/blockwise)', default: 64, min: 1 }),
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
    ffnChunk: c.attention === 'blockwise' ? c.blockSize : 0,
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

  // AdamW moments; restored with the weights on resume
  const m = vars.map((v) => tf.variable(tf.zerosLike(v), false));
  const vv = vars.map((v) => tf.variable(tf.zerosLike(v), false));
  let start = 1;
  if (ctx.resume) {
    const t = ctx.resume.tensors;
    vars.forEach((v, i) => {
      v.assign(tf.tensor(t[`w${i}`].data, t[`w${i}`].shape));
      m[i].assign(tf.tensor(t[`m${i}`].data, t[`m${i}`].shape));
      vv[i].assign(tf.tensor(t[`v${i}`].data, t[`v${i}`].shape));
    });
    start = ctx.resume.step + 1;
    ctx.log(`resuming at step ${start}`);
  }
  const decays = vars.map((v) => v.rank === 2); // no decay on norm gains (LLaMA recipe)

  const ds = new TokenDataset(arrow);
  // the sampler's seed advances with the step, so a resumed run draws the same batches
  const samplerAt = (step: number) =>
    new TokenWindowSampler(ds, { batchSize: c.batchSize, seqLen: c.seqLen, seed: ctx.seed * 100_003 + step });

  const snapshot = async (step: number) => {
    const tensors: Record<string, SavedTensor> = {};
    vars.forEach((v, i) => {
      tensors[`w${i}`] = { shape: v.shape, data: v.dataSync() as Float32Array };
      tensors[`m${i}`] = { shape: v.shape, data: m[i].dataSync() as Float32Array };
      tensors[`v${i}`] = { shape: v.shape, data: vv[i].dataSync() as Float32Array };
    });
    await ctx.checkpoints.save({ step, state: { step }, tensors });
  };

  const progress = ctx.progress('sharegpt-finetune', c.steps);
  const curve: { step: number; loss: number }[] = [];
  let last = start - 1;
  for (let step = start; step <= c.steps; step++) {
    // a step is synchronous compute: yield so Ctrl-C and the metric flush timer get their turn
    await new Promise((r) => setImmediate(r));
    if (ctx.signal.aborted) break;
    const started = performance.now();
    const sampler = samplerAt(step);
    const lr = learningRate(step, c);
    let lossSum = 0;
    let tokens = 0;
    // accumulate gradients over micro-batches; each micro-batch's loss is its mean token loss
    let acc: tf.Tensor[] | undefined;
    for (let k = 0; k < c.gradAccum; k++) {
      const b = sampler.sample();
      const targets = windowTargets(b.tokens, b.lossMask, b.segmentIds, b.mask, c.batchSize, c.seqLen);
      // padding gets its own segment so real tokens never attend to it
      const seg = Int32Array.from(b.segmentIds, (s, i) => (b.mask[i] ? s : -1));
      const ids = tf.tensor2d(b.tokens, [c.batchSize, c.seqLen], 'int32');
      const { value, grads } = tf.variableGrads(() => model.loss(ids, targets, { segmentIds: seg }), vars);
      lossSum += value.dataSync()[0];
      tokens += c.batchSize * c.seqLen;
      const g = vars.map((v) => grads[v.name]);
      if (!acc) acc = g;
      else {
        const sum = acc.map((a, i) => tf.add(a, g[i]));
        tf.dispose([...acc, ...g]);
        acc = sum;
      }
      tf.dispose([ids, value]);
    }
    const gradList = acc as tf.Tensor[];
    const gradNorm =
      tf.tidy(() =>
        Math.sqrt(gradList.reduce((a, g) => a + (tf.sum(tf.square(g)).dataSync()[0] as number), 0)),
      ) / c.gradAccum;
    const scale = (1 / c.gradAccum) * (c.clipNorm > 0 && gradNorm > c.clipNorm ? c.clipNorm / gradNorm : 1);
    tf.tidy(() => {
      const bc1 = 1 - c.beta1 ** step;
      const bc2 = 1 - c.beta2 ** step;
      vars.forEach((v, i) => {
        const g = tf.mul(gradList[i], scale);
        m[i].assign(tf.add(tf.mul(m[i], c.beta1), tf.mul(g, 1 - c.beta1)));
        vv[i].assign(tf.add(tf.mul(vv[i], c.beta2), tf.mul(tf.square(g), 1 - c.beta2)));
        const update = tf.div(tf.div(m[i], bc1), tf.add(tf.sqrt(tf.div(vv[i], bc2)), 1e-8));
        // AdamW: decoupled weight decay (Loshchilov & Hutter)
        const decayed = decays[i] && c.weightDecay > 0 ? tf.mul(v, 1 - lr * c.weightDecay) : v;
        v.assign(tf.sub(decayed, tf.mul(update, lr)));
      });
    });
    tf.dispose(gradList);
    const loss = lossSum / c.gradAccum;
    const secs = (performance.now() - started) / 1000;
    ctx.tracker.metrics(
      {
        'train/loss': loss,
        'train/lr': lr,
        'train/tokens_per_sec': tokens / secs,
        'train/grad_norm': gradNorm,
      },
      step,
    );
    curve.push({ step, loss });
    progress.update(step, { loss });
    last = step;
    if (ctx.checkpoints.due(step) && step !== c.steps) await snapshot(step);
  }
  progress.finish();
  if (last >= start || !ctx.resume) await snapshot(last);
  ds.close();

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
      ctx.log(`HF checkpoint: ${out}`);
    }
  }
  tf.dispose([...m, ...vv]);
  model.dispose();
}

export const shareGptFinetuneRecipe: Recipe<ShareGptFinetuneConfig> = {
  name: 'sharegpt-finetune',
  describe:
    'Finetune a LLaMA-style model on ShareGPT conversations (Vicuna v1.1, AdamW, cosine, checkpoints)',
  schema: s.object(fields, { doc: 'ShareGPT finetuning' }),
  run,
};
