/**
 * Training a small LLaMA on LongChat's line retrieval (paper Figure 3 in miniature; PAPER.md §3),
 * one device, the main thread, read top to bottom:
 *
 *   model ← random init (tied embeddings), AdamW (β2 0.95, decay on matrices)
 *   for step = start … steps:
 *     cases ← batchSize cases from a per-step RNG, line counts the curriculum allows
 *     loss ← mean CE of the answer tokens + otherTokenWeight × mean CE of the prompt's tokens
 *     clip by global norm, AdamW at learningRate(step)
 *     every evalEvery steps: accuracy on held-out cases (train/heldout_accuracy)
 *
 * Why (decision, measured; README "LM finetuning"): on the answer tokens alone, all line counts
 * from the start, the d=64 model stayed at chance for 300 steps. What made it learn the lookup: a
 * line index as one token (lm/line-retrieval.ts), 8 heads, lr 1e-2, a few lines first, and a
 * little loss on the prompt's tokens (predicting the next line's index and the question's
 * repeated index trains the position and copy heads that the retrieval uses).
 *
 * Evaluation per context length, one device against the ring, is lm/line-retrieval-eval.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError, Rng } from '../common/index.js';
import type { RingLayout } from '../ring/index.js';
import {
  AdamW,
  clipByGlobalNorm,
  decodeTrainingState,
  encodeTrainingState,
  type TrainContext,
} from '../train/index.js';
import { learningRate } from './finetune.js';
import { IGNORE_INDEX } from './head-loss.js';
import { type EncodedLineCase, encodeLineCase, LineTokenizer, lineBatch } from './line-retrieval.js';
import { evaluateOnDevice } from './line-retrieval-eval.js';
import { type LlamaConfig, LlamaModel, type LlamaRuntime } from './model.js';

/**
 * The trainer's options; each field's doc line is in LINE_RETRIEVAL_OPTIONS (lm/options.ts),
 * the comments here say only what it does not.
 */
export interface LineRetrievalOptions {
  model: {
    hiddenSize: number;
    intermediateSize: number;
    numLayers: number;
    numHeads: number;
    numKvHeads: number;
    ropeTheta: number;
  };
  maxValue: number;
  trainLines: number[];
  /** Few lines first: `startLines` for `holdSteps` steps, then linear growth to all at `fullSteps` (0: none). */
  curriculum: { startLines: number; holdSteps: number; fullSteps: number };
  /** Weight of the prompt tokens' mean cross-entropy, added to the answer tokens' mean. */
  otherTokenWeight: number;
  steps: number;
  batchSize: number;
  lr: number;
  minLrRatio: number;
  warmupSteps: number;
  weightDecay: number;
  clipNorm: number;
  /**
   * Attention while training; evaluation is blockwise (BPT) and ring. 'ring' trains on
   * `trainDevices` ring devices (lm/line-retrieval-ring.ts).
   */
  trainAttention: 'vanilla' | 'memeff' | 'blockwise' | 'ring';
  /**
   * Where training runs: 0 = the main thread (fastest for short prompts, no memory check);
   * ≥ 1 = worker devices running the finetune step, one device or the ring (Figure 3: each
   * device holds T/N tokens, so the ring trains on prompts one device cannot hold).
   */
  trainDevices: number;
  trainMemoryMiB: number;
  /**
   * What `trainMemoryMiB` bounds: 'real', what a device holds (wasm heap, JS, native; issue 20),
   * or 'tensors', the step's peak tensor bytes (deterministic; at small models an idle worker's
   * ≈ 45 MiB of real memory, and its ±2 MiB jitter, swamp what a few more lines add).
   */
  trainMemoryOn: 'real' | 'tensors';
  /** Held-out accuracy every this many steps (and at the last); 0 = only at the last. */
  evalEvery: number;
  blockSize: number;
  evalLines: number[];
  /** Cases per evaluated length (and held-out cases). */
  evalCases: number;
  evalBatch: number;
  /** Per-device budget of the evaluation, MiB of real memory (wasm heap + JS + native; issue 20). */
  deviceMemoryMB: number;
  /** Ring devices N. */
  devices: number;
  layout: RingLayout;
  /** Seed of the evaluation cases (the same cases for every run). */
  evalSeed: number;
}

export const LINE_RETRIEVAL_DEFAULTS: LineRetrievalOptions = {
  model: {
    hiddenSize: 64,
    intermediateSize: 128,
    numLayers: 2,
    numHeads: 8,
    numKvHeads: 8,
    ropeTheta: 10000,
  },
  maxValue: 9,
  trainLines: Array.from({ length: 20 }, (_, i) => i + 1),
  curriculum: { startLines: 8, holdSteps: 400, fullSteps: 900 },
  otherTokenWeight: 4,
  steps: 1000,
  batchSize: 16,
  lr: 1e-2,
  minLrRatio: 0.1,
  warmupSteps: 30,
  weightDecay: 0.01,
  clipNorm: 1,
  trainAttention: 'vanilla',
  trainDevices: 0,
  trainMemoryMiB: 0,
  trainMemoryOn: 'real',
  evalEvery: 50,
  blockSize: 32,
  evalLines: [2, 4, 7, 12, 16],
  evalCases: 32,
  evalBatch: 8,
  deviceMemoryMB: 64,
  devices: 2,
  layout: 'contiguous',
  evalSeed: 12345,
};

export interface LineRetrievalTrained {
  /** The trained model, running BPT (blockwise attention and FFN); the caller disposes it. */
  model: LlamaModel;
  /** train/heldout_accuracy at each evaluation (restored on resume). */
  heldout: { step: number; accuracy: number }[];
}

/** The model's config: the LineTokenizer's vocabulary, tied embeddings, long positions. */
export function lineRetrievalConfig(o: Pick<LineRetrievalOptions, 'model'>): LlamaConfig {
  const tokenizer = new LineTokenizer();
  return {
    vocabSize: tokenizer.vocabSize,
    ...o.model,
    rmsNormEps: 1e-5,
    ropeScalingFactor: 1,
    tieWordEmbeddings: true,
    maxPositionEmbeddings: 1 << 16,
    bosTokenId: tokenizer.bosId,
    eosTokenId: tokenizer.eosId,
  };
}

/** BPT on one device: blockwise attention and FFN (the paper's baseline for ring = N × BPT). */
export function lineRetrievalRuntime(o: Pick<LineRetrievalOptions, 'blockSize'>): LlamaRuntime {
  return { attention: 'blockwise', blockSize: o.blockSize, ffnChunk: o.blockSize, checkpointLayers: false };
}

/** The largest line count the curriculum allows at `step` (1-based; see the header). */
export function curriculumCap(
  step: number,
  o: Pick<LineRetrievalOptions, 'trainLines' | 'curriculum'>,
): number {
  const top = Math.max(...o.trainLines);
  const { startLines, holdSteps, fullSteps } = o.curriculum;
  if (fullSteps <= 0) return top;
  const begin = Math.min(startLines, top);
  const growth =
    fullSteps > holdSteps ? (step - holdSteps) / (fullSteps - holdSteps) : step >= fullSteps ? 1 : 0;
  return begin + (top - begin) * Math.min(1, Math.max(0, growth));
}

/** The line counts a training case may draw at `step`: trainLines up to the cap (never none). */
export function allowedLines(step: number, o: LineRetrievalOptions): number[] {
  const cap = curriculumCap(step, o);
  const allowed = o.trainLines.filter((n) => n <= cap);
  return allowed.length ? allowed : [Math.min(...o.trainLines)];
}

/** n rounded up to a whole number of k (rows padded to whole blocks). */
export function roundUp(n: number, k: number): number {
  return Math.ceil(n / k) * k;
}

/**
 * The held-out cases of train/heldout_accuracy, drawn like the training ones and fixed for the
 * run (both trainers, main thread and devices, score the same cases), and their padded length.
 */
export function heldoutSet(
  o: Pick<LineRetrievalOptions, 'evalSeed' | 'evalCases' | 'trainLines' | 'maxValue' | 'blockSize'>,
): { cases: EncodedLineCase[]; T: number } {
  const rng = new Rng(o.evalSeed + 1);
  const cases = Array.from({ length: o.evalCases }, () =>
    encodeLineCase(rng, o.trainLines[rng.int(o.trainLines.length)], o.maxValue),
  );
  return { cases, T: roundUp(Math.max(...cases.map((e) => e.ids.length)), o.blockSize) };
}

/**
 * The training objective: mean cross-entropy of the answer targets + `otherWeight` × mean over
 * the other (prompt) targets; also returns the answer part alone (kept, for the metric).
 * The picked log-probabilities come from a one-hot product (wasm has no gather gradient).
 */
function taskLoss(
  logits: tf.Tensor,
  targets: Int32Array,
  isAnswer: Uint8Array,
  otherWeight: number,
): { loss: tf.Scalar; answerLoss: tf.Scalar } {
  const V = logits.shape[logits.rank - 1] as number;
  const N = targets.length;
  const safe = new Int32Array(N);
  const wAnswer = new Float32Array(N);
  const wOther = new Float32Array(N);
  let answers = 0;
  let others = 0;
  for (let i = 0; i < N; i++) {
    if (targets[i] === IGNORE_INDEX) continue;
    safe[i] = targets[i];
    if (isAnswer[i]) answers++;
    else others++;
  }
  for (let i = 0; i < N; i++) {
    if (targets[i] === IGNORE_INDEX) continue;
    if (isAnswer[i]) wAnswer[i] = 1 / Math.max(1, answers);
    else wOther[i] = otherWeight / Math.max(1, others);
  }
  const logp = tf.logSoftmax(tf.reshape(logits, [N, V])); // (N, V)
  const nll = tf.neg(tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d(safe, 'int32'), V)), 1)); // (N)
  const answerLoss = tf.keep(tf.sum(tf.mul(nll, tf.tensor1d(wAnswer)))) as tf.Scalar;
  const loss = tf.add(answerLoss, tf.sum(tf.mul(nll, tf.tensor1d(wOther)))) as tf.Scalar;
  return { loss, answerLoss };
}

/**
 * Throws an InputError naming `<path>.<option>` for options a script could get wrong (a recipe's
 * schema has checked them already): counts, line lists, the learning rate.
 */
export function checkLineRetrievalOptions(o: LineRetrievalOptions, path = 'line-retrieval trainer'): void {
  const bad = (key: string, want: string, got: unknown) =>
    new InputError(`${path}.${key}: expected ${want}; got ${JSON.stringify(got)}`);
  const counts = {
    batchSize: 1,
    blockSize: 1,
    evalCases: 1,
    evalBatch: 1,
    devices: 1,
    steps: 0,
    trainDevices: 0,
  } as const;
  for (const [key, min] of Object.entries(counts)) {
    const v = o[key as keyof typeof counts];
    if (!Number.isInteger(v) || v < min) throw bad(key, `an integer ≥ ${min}`, v);
  }
  for (const key of ['trainLines', 'evalLines'] as const)
    if (o[key].length === 0 || !o[key].every((n) => Number.isInteger(n) && n >= 1))
      throw bad(key, 'a non-empty list of line counts ≥ 1', o[key]);
  if (!(o.lr > 0)) throw bad('lr', 'a number > 0', o.lr);
  if (o.trainAttention === 'ring' && o.trainDevices < 1)
    throw bad('trainDevices', 'ring devices ≥ 1 for trainAttention ring', o.trainDevices);
}

/**
 * Trains the model (resuming from `ctx.resume`), logging train/loss, train/answer_loss,
 * train/max_lines, train/lr, train/grad_norm and train/heldout_accuracy. The final step's state is
 * checkpointed; after an abort the model is still returned (the caller skips evaluation).
 */
export async function trainLineRetrieval(
  o: LineRetrievalOptions,
  ctx: TrainContext,
): Promise<LineRetrievalTrained> {
  checkLineRetrievalOptions(o, ctx.optionsPath);
  if (o.trainDevices > 0)
    throw new InputError(
      `${ctx.optionsPath ?? 'line-retrieval trainer'}.trainDevices: ${o.trainDevices} trains on devices (trainLineRetrievalOnDevices); this trainer is the main thread's (0)`,
    );
  if (o.trainAttention === 'ring') throw new Error('unreachable: ring is checked above');
  const config = lineRetrievalConfig(o);
  const runtime = lineRetrievalRuntime(o);
  // training at these short lengths is fastest with vanilla attention (fewer, larger kernels)
  const model = LlamaModel.init(config, ctx.rng, { ...runtime, attention: o.trainAttention });
  const vars = model.variables();
  ctx.params?.({ 'model.parameters': vars.reduce((a, v) => a + v.size, 0), 'model.vocab': config.vocabSize });
  const optimizer = new AdamW(vars, { lr: o.lr, beta2: 0.95, weightDecay: o.weightDecay });
  try {
    let start = 1;
    let heldout: LineRetrievalTrained['heldout'] = [];
    if (ctx.resume) {
      const saved = ctx.resume.state as { optStep: number; heldout?: LineRetrievalTrained['heldout'] };
      const restored = decodeTrainingState(ctx.resume.tensors, saved.optStep);
      vars.forEach((v, i) => {
        v.assign(tf.tensor(restored.weights[i], v.shape));
      });
      optimizer.load(restored.optimizer);
      heldout = saved.heldout ?? [];
      start = ctx.resume.step + 1;
    }
    const snapshot = async (step: number) => {
      const tensors = encodeTrainingState({
        weights: vars.map((v) => v.dataSync() as Float32Array),
        optimizer: optimizer.state(),
      });
      const state = { optStep: optimizer.step, heldout: heldout.map((h) => ({ ...h })) };
      await ctx.checkpoints?.save({ step, state, tensors });
    };

    // held-out cases drawn like the training ones, fixed for the run
    const { cases: heldCases, T: heldT } = heldoutSet(o);

    const progress = ctx.progress?.('line-retrieval train', o.steps);
    let last = start - 1;
    for (let step = start; step <= o.steps; step++) {
      // a step is synchronous compute: yield so Ctrl-C and the metric flush timer get their turn
      await new Promise((r) => setImmediate(r));
      if (ctx.signal?.aborted) break;
      // the batch's cases come from a per-step RNG, so a resumed run draws the same batches
      const rng = new Rng(ctx.seed * 100_003 + step);
      const lines = allowedLines(step, o);
      const cases = Array.from({ length: o.batchSize }, () =>
        encodeLineCase(rng, lines[rng.int(lines.length)], o.maxValue),
      );
      // vanilla attention takes any length; the blockwise ones want whole blocks
      const T = roundUp(
        Math.max(...cases.map((e) => e.ids.length)),
        o.trainAttention === 'vanilla' ? 1 : o.blockSize,
      );
      const { ids, targets, isAnswer } = lineBatch(cases, T);
      const x = tf.tensor2d(ids, [o.batchSize, T], 'int32'); // (B, T)
      let answerPart: tf.Scalar | undefined;
      const { value, grads } = tf.variableGrads(() => {
        const { loss, answerLoss } = taskLoss(model.forward(x), targets, isAnswer, o.otherTokenWeight);
        answerPart = answerLoss;
        return loss;
      }, vars);
      const loss = value.dataSync()[0];
      const answerLoss = answerPart?.dataSync()[0] ?? Number.NaN;
      answerPart?.dispose();
      const { grads: clipped, norm } = clipByGlobalNorm(
        vars.map((v) => grads[v.name]),
        o.clipNorm > 0 ? o.clipNorm : Number.POSITIVE_INFINITY,
      );
      const lr = learningRate(step, o);
      optimizer.apply(clipped, lr);
      tf.dispose([x, value, ...Object.values(grads), ...clipped]);
      ctx.logger.metrics(
        {
          'train/loss': loss,
          'train/answer_loss': answerLoss,
          'train/max_lines': Math.max(...lines),
          'train/lr': lr,
          'train/grad_norm': norm,
        },
        step,
      );
      if ((o.evalEvery > 0 && step % o.evalEvery === 0) || step === o.steps) {
        const { accuracy } = await evaluateOnDevice(model, heldCases, heldT, o.evalBatch);
        heldout.push({ step, accuracy });
        ctx.logger.metrics({ 'train/heldout_accuracy': accuracy }, step);
      }
      progress?.update(step, { loss, answer_loss: answerLoss });
      last = step;
      if (ctx.checkpoints?.due(step) && step !== o.steps) await snapshot(step);
    }
    progress?.finish();
    if (last >= start || !ctx.resume) await snapshot(last);
    return { model: model.withRuntime(runtime), heldout };
  } finally {
    optimizer.dispose();
  }
}
