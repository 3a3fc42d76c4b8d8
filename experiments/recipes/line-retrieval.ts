/**
 * `recipe: line-retrieval` — paper Figure 3 in miniature: train a small LLaMA (lm/model.ts) on
 * LongChat's line-retrieval task (PAPER.md §3) with the word tokenizer, evaluate accuracy per
 * context length, then show ring attention evaluating the same weights at N× the context one
 * device can hold.
 *
 * 1. Training (one device, the main thread): each step draws a batch of cases whose line counts
 *    come from `trainLines`, under a curriculum: the largest line count allowed starts at
 *    `curriculum.startLines`, stays there `curriculum.holdSteps` steps, then grows linearly to
 *    the largest of `trainLines` at step `curriculum.fullSteps`. The loss is the mean
 *    cross-entropy of the answer tokens (the number and the closing `>`) plus
 *    `otherTokenWeight` × the mean over the prompt's tokens; AdamW with warmup + cosine,
 *    clipping. Every `evalEvery` steps a held-out set drawn from all of `trainLines` is scored
 *    (`train/heldout_accuracy`: accuracy rises with training).
 *
 *    Why (decision, measured; README "LM finetuning"): on the answer tokens alone, all line
 *    counts from the start, the d=64 model stayed at chance for 300 steps. What made it learn the
 *    lookup: a line index as one token (lm/line-retrieval.ts), 8 heads, lr 1e-2, a few lines
 *    first, and a little loss on the prompt's tokens (predicting the next line's index and the
 *    question's repeated index trains the position and copy heads that the retrieval uses).
 * 2. One device: for each length in `evalLines`, the peak tensor bytes of the forward pass
 *    (blockwise attention + FFN, BPT) over a batch of `evalBatch` cases is measured; lengths
 *    within `deviceMemoryMB` are evaluated, the others are "over budget". The longest that fits
 *    is the one-device context T₁.
 * 3. Ring: the same weights are sent to N worker-thread devices (lm/ring-device.ts) with
 *    attention 'ring'; each device runs its T/N tokens. Every `evalLines` length and the longest
 *    line count whose cases fit in N·T₁ tokens are evaluated, each device's peak bytes measured
 *    against the same budget.
 *
 * Scoring (decision): teacher-forced argmax over the answer span. The prompt plus the true answer
 * runs once; the argmax next token at the prompt's last position and at each answer digit are
 * decoded and LongChat's last-integer rule applied. Greedy decoding outputs exactly the answer
 * iff every one of these argmaxes is the true next token, so this is greedy decoding's accuracy
 * without a token-by-token loop (which on the ring would need a distributed KV cache).
 * Sequences are right-padded (causal attention: padding never reaches earlier positions).
 *
 * The memory budget is for evaluation; training runs before it without a budget (the paper
 * trains with ring attention too; here the point is the evaluation context).
 *
 * Metrics: `train/loss` (answer-token cross-entropy), `train/lr`, `train/heldout_accuracy`
 * (held-out cases like the training ones), `eval/accuracy` (one device, step = context tokens),
 * `eval/ring_accuracy` (N ring devices, step = context tokens), `eval/accuracy_<lines>lines`,
 * `eval/ring_accuracy_<lines>lines`, `eval/peak_mb_one_device` and `eval/peak_mb_ring`
 * (step = context tokens), `eval/max_context_one_device`, `eval/max_context_ring`. Table
 * `line_retrieval` and plot `line_retrieval` (accuracy vs context tokens).
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import {
  IGNORE_INDEX,
  LineTokenizer,
  type LlamaConfig,
  LlamaModel,
  type LlamaRuntime,
  lastInteger,
  makeLineRetrievalCase,
} from '../../lm/index.js';
import {
  type AnswerShardArgs,
  type AnswerShardResult,
  type LoadModelArgs,
  modelWeights,
} from '../../lm/ring-device.js';
import { withPeakBytes } from '../../native/index.js';
import { type RingLayout, tokenIndices } from '../../ring/index.js';
import { RingGroup } from '../../cluster/index.js';
import { AdamW, clipByGlobalNorm } from '../../train/index.js';
import type { SavedTensor } from '../checkpoint.js';
import { type InferFields, s } from '../config/schema.js';
import { linePlotSvg } from '../plot/svg.js';
import { learningRate } from './sharegpt-finetune.js';
import type { Recipe, RecipeContext } from './types.js';

const fields = {
  model: s.object(
    {
      hiddenSize: s.integer({ doc: 'Hidden size', default: 64, min: 1 }),
      intermediateSize: s.integer({ doc: 'SwiGLU hidden size', default: 128, min: 1 }),
      numLayers: s.integer({ doc: 'Decoder layers', default: 2, min: 1 }),
      numHeads: s.integer({ doc: 'Query heads', default: 8, min: 1 }),
      numKvHeads: s.integer({ doc: 'Key/value heads (GQA)', default: 8, min: 1 }),
      ropeTheta: s.number({ doc: 'RoPE base', default: 10000, min: 1 }),
    },
    { doc: 'Shape of the model (random init, tied embeddings)' },
  ),
  maxValue: s.integer({
    doc: 'Register numbers are drawn from 1..maxValue (LongChat: 50000)',
    default: 9,
    min: 1,
  }),
  trainLines: s.list(s.integer({ doc: 'line count', min: 1 }), {
    doc: 'Line counts of the training cases (each case draws one of those the curriculum allows)',
    default: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
    minLength: 1,
  }),
  curriculum: s.object(
    {
      startLines: s.integer({
        doc: 'Largest line count allowed at the start (the smallest of trainLines is always allowed)',
        default: 8,
        min: 1,
      }),
      holdSteps: s.integer({ doc: 'Steps at startLines before the cap grows', default: 400, min: 0 }),
      fullSteps: s.integer({
        doc: 'Step from which all of trainLines are allowed (linear growth after holdSteps); 0 = no curriculum',
        default: 900,
        min: 0,
      }),
    },
    { doc: 'Few lines first, then more' },
  ),
  otherTokenWeight: s.number({
    doc: "Weight of the prompt tokens' mean cross-entropy, added to the answer tokens' mean; 0 = answer only",
    default: 4,
    min: 0,
  }),
  steps: s.integer({ doc: 'Optimizer steps', default: 1000, min: 0 }),
  batchSize: s.integer({ doc: 'Cases per training step', default: 16, min: 1 }),
  lr: s.number({ doc: 'Peak learning rate', default: 1e-2, min: 0, exclusiveMin: true }),
  minLrRatio: s.number({ doc: 'Final learning rate as a fraction of lr', default: 0.1, min: 0 }),
  warmupSteps: s.integer({ doc: 'Linear warmup steps', default: 30, min: 0 }),
  weightDecay: s.number({ doc: 'AdamW decoupled weight decay (matrices only)', default: 0.01, min: 0 }),
  clipNorm: s.number({ doc: 'Global gradient-norm clip; 0 = none', default: 1, min: 0 }),
  trainAttention: s.enum(['vanilla', 'memeff', 'blockwise'] as const, {
    doc: 'Attention while training (one device, no budget); evaluation is blockwise (BPT) and ring',
    default: 'vanilla',
  }),
  evalEvery: s.integer({ doc: 'Held-out accuracy every this many steps; 0 = never', default: 50, min: 0 }),
  blockSize: s.integer({
    doc: 'Attention block size and FFN chunk (blockwise on one device, ring inner loop)',
    default: 32,
    min: 1,
  }),
  evalLines: s.list(s.integer({ doc: 'line count', min: 1 }), {
    doc: 'Line counts evaluated (one device where it fits the budget; the ring always)',
    default: [2, 4, 7, 12, 16],
    minLength: 1,
  }),
  evalCases: s.integer({ doc: 'Cases per evaluated length', default: 32, min: 1 }),
  evalBatch: s.integer({ doc: 'Cases per evaluation forward pass (the measured batch)', default: 8, min: 1 }),
  deviceMemoryMB: s.number({
    doc: 'Per-device budget of peak tensor MB (measured) for an evaluation forward pass',
    default: 20,
    min: 0,
    exclusiveMin: true,
  }),
  devices: s.integer({ doc: 'Ring devices N (worker threads)', default: 2, min: 1 }),
  layout: s.enum(['contiguous', 'striped'] as const, {
    doc: 'How tokens are split over the ring devices',
    default: 'contiguous',
  }),
  evalSeed: s.integer({ doc: 'Seed of the evaluation cases (same cases for every run)', default: 12345 }),
};

export type LineRetrievalConfig = InferFields<typeof fields>;

const tokenizer = new LineTokenizer();

/** One tokenized case: prompt + answer + `>`; `answer` is where the answer's first digit is. */
interface Encoded {
  ids: number[];
  /** Index of the first answer token (the prompt's length). */
  answerAt: number;
  answer: number;
  lines: number;
}

function encodeCase(rng: Rng, lines: number, maxValue: number): Encoded {
  const c = makeLineRetrievalCase(rng, lines, maxValue);
  const prompt = tokenizer.encode(c.prompt, { bos: true });
  return {
    ids: [...prompt, ...tokenizer.encode(`${c.answer}>`)],
    answerAt: prompt.length,
    answer: c.answer,
    lines,
  };
}

/** The positions whose next token is an answer token: the prompt's last one and the digits. */
function answerPositions(e: Encoded): number[] {
  return Array.from({ length: e.ids.length - e.answerAt }, (_, i) => e.answerAt - 1 + i);
}

function roundUp(n: number, k: number): number {
  return Math.ceil(n / k) * k;
}

/**
 * Rows right-padded with <pad> (0) to `T`: ids (B·T); next-token targets (B·T, −100 on padding)
 * and whether each target is an answer token (B·T).
 */
function batchOf(
  cases: Encoded[],
  T: number,
): { ids: Int32Array; targets: Int32Array; isAnswer: Uint8Array } {
  const ids = new Int32Array(cases.length * T);
  const targets = new Int32Array(cases.length * T).fill(IGNORE_INDEX);
  const isAnswer = new Uint8Array(cases.length * T);
  cases.forEach((e, b) => {
    ids.set(e.ids, b * T);
    for (let p = 0; p + 1 < e.ids.length; p++) targets[b * T + p] = e.ids[p + 1];
    for (const p of answerPositions(e)) isAnswer[b * T + p] = 1;
  });
  return { ids, targets, isAnswer };
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

/** The largest line count the curriculum allows at `step` (1-based; see the header). */
export function curriculumCap(
  step: number,
  c: Pick<LineRetrievalConfig, 'trainLines' | 'curriculum'>,
): number {
  const top = Math.max(...c.trainLines);
  const { startLines, holdSteps, fullSteps } = c.curriculum;
  if (fullSteps <= 0) return top;
  const begin = Math.min(startLines, top);
  const growth =
    fullSteps > holdSteps ? (step - holdSteps) / (fullSteps - holdSteps) : step >= fullSteps ? 1 : 0;
  return begin + (top - begin) * Math.min(1, Math.max(0, growth));
}

/** The line counts a training case may draw at `step`: trainLines up to the cap (never none). */
function allowedLines(step: number, c: LineRetrievalConfig): number[] {
  const cap = curriculumCap(step, c);
  const allowed = c.trainLines.filter((n) => n <= cap);
  return allowed.length ? allowed : [Math.min(...c.trainLines)];
}

/** LongChat scoring of the predicted answer span (teacher-forced argmax; see the header). */
function correct(e: Encoded, predicted: number[]): boolean {
  return lastInteger(tokenizer.decode(predicted)) === e.answer;
}

/** Accuracy of `cases` on one device (main thread), batch by batch; the first batch is measured. */
async function evaluateOne(
  model: LlamaModel,
  cases: Encoded[],
  T: number,
  batch: number,
): Promise<{ accuracy: number; peakBytes: number }> {
  let right = 0;
  let peak = 0;
  for (let i = 0; i < cases.length; i += batch) {
    const part = cases.slice(i, i + batch);
    const { ids } = batchOf(part, T);
    const x = tf.tensor2d(ids, [part.length, T], 'int32');
    const { result: logits, peakBytes } = await withPeakBytes(() => tf.tidy(() => model.forward(x)), i === 0);
    peak = Math.max(peak, peakBytes);
    const V = logits.shape[2] as number;
    const all = logits.dataSync() as Float32Array;
    tf.dispose([x, logits]);
    part.forEach((e, b) => {
      const pred = answerPositions(e).map((p) => argmaxAt(all, (b * T + p) * V, V));
      if (correct(e, pred)) right++;
    });
  }
  return { accuracy: right / cases.length, peakBytes: peak };
}

function argmaxAt(a: Float32Array, off: number, V: number): number {
  let best = 0;
  for (let v = 1; v < V; v++) if (a[off + v] > a[off + best]) best = v;
  return best;
}

/** Peak tensor bytes of one evaluation forward pass of `batch` rows of T tokens (one device). */
async function probeOne(model: LlamaModel, batch: number, T: number): Promise<number> {
  const x = tf.zeros([batch, T], 'int32');
  const { result, peakBytes } = await withPeakBytes(() => tf.tidy(() => model.forward(x)), true);
  tf.dispose([x, result]);
  return peakBytes;
}

const deviceModule = new URL('../../lm/ring-device.js', import.meta.url);

/** Accuracy of `cases` on the ring (T tokens over N devices); max per-device peak bytes. */
async function evaluateRing(
  group: RingGroup,
  cases: Encoded[],
  T: number,
  batch: number,
  layout: RingLayout,
  messageFloats: (b: number) => number,
): Promise<{ accuracy: number; peakBytes: number }> {
  const N = group.devices;
  const idx = Array.from({ length: N }, (_, r) => tokenIndices(r, N, T, layout));
  let right = 0;
  let peak = 0;
  for (let i = 0; i < cases.length; i += batch) {
    const part = cases.slice(i, i + batch);
    const B = part.length;
    const { ids } = batchOf(part, T);
    const positions = part.map(answerPositions);
    const args: AnswerShardArgs[] = idx.map((ix) => {
      const mine = new Int32Array(B * ix.length);
      for (let b = 0; b < B; b++)
        for (let t = 0; t < ix.length; t++) mine[b * ix.length + t] = ids[b * T + ix[t]];
      return { ids: mine, batch: B, seqLen: T, layout, positions, measure: i === 0 };
    });
    const res = await group.run<AnswerShardArgs, AnswerShardResult>(
      deviceModule,
      'answerShard',
      args,
      messageFloats(B),
    );
    // each answer token is read by the device holding its position
    const pred = new Map<string, number>();
    for (const r of res) {
      peak = Math.max(peak, r.peakBytes);
      for (let k = 0; k < r.hits.length; k += 3) pred.set(`${r.hits[k]},${r.hits[k + 1]}`, r.hits[k + 2]);
    }
    part.forEach((e, b) => {
      if (
        correct(
          e,
          positions[b].map((p) => pred.get(`${b},${p}`) ?? -1),
        )
      )
        right++;
    });
  }
  return { accuracy: right / cases.length, peakBytes: peak };
}

interface ResultRow {
  lines: number;
  context_tokens: number;
  one_device_accuracy: number | string;
  one_device_peak_mb: number;
  ring_accuracy: number | string;
  ring_peak_mb_per_device: number | string;
}

async function run(ctx: RecipeContext<LineRetrievalConfig>): Promise<void> {
  const c = ctx.config;
  const config: LlamaConfig = {
    vocabSize: tokenizer.vocabSize,
    ...c.model,
    rmsNormEps: 1e-5,
    ropeScalingFactor: 1,
    tieWordEmbeddings: true,
    maxPositionEmbeddings: 1 << 16,
    bosTokenId: tokenizer.bosId,
    eosTokenId: tokenizer.eosId,
  };
  // BPT on one device: blockwise attention and FFN (the paper's baseline for ring = N × BPT)
  const runtime: LlamaRuntime = {
    attention: 'blockwise',
    blockSize: c.blockSize,
    ffnChunk: c.blockSize,
    checkpointLayers: false,
  };
  // training at these short lengths is fastest with vanilla attention (fewer, larger kernels)
  const model = LlamaModel.init(config, ctx.rng, { ...runtime, attention: c.trainAttention });
  const vars = model.variables();
  ctx.tracker.params({
    'model.parameters': vars.reduce((a, v) => a + v.size, 0),
    'model.vocab': config.vocabSize,
  });
  const optimizer = new AdamW(vars, { lr: c.lr, beta2: 0.95, weightDecay: c.weightDecay });

  let start = 1;
  let heldout: { step: number; accuracy: number }[] = [];
  if (ctx.resume) {
    const t = ctx.resume.tensors;
    vars.forEach((v, i) => {
      v.assign(tf.tensor(t[`w${i}`].data, v.shape));
    });
    const st = ctx.resume.state as { optStep: number; heldout?: { step: number; accuracy: number }[] };
    optimizer.load({
      step: st.optStep,
      m: vars.map((_, i) => t[`m${i}`].data as Float32Array),
      v: vars.map((_, i) => t[`v${i}`].data as Float32Array),
    });
    heldout = st.heldout ?? [];
    start = ctx.resume.step + 1;
  }
  const snapshot = async (step: number) => {
    const tensors: Record<string, SavedTensor> = {};
    const o = optimizer.state();
    vars.forEach((v, i) => {
      tensors[`w${i}`] = { shape: v.shape, data: v.dataSync() as Float32Array };
      tensors[`m${i}`] = { shape: v.shape, data: o.m[i] };
      tensors[`v${i}`] = { shape: v.shape, data: o.v[i] };
    });
    await ctx.checkpoints.save({
      step,
      state: { optStep: o.step, heldout: heldout as unknown as never },
      tensors,
    });
  };

  // held-out cases drawn like the training ones, fixed for the run
  const heldRng = new Rng(c.evalSeed + 1);
  const heldCases = Array.from({ length: c.evalCases }, () =>
    encodeCase(heldRng, c.trainLines[heldRng.int(c.trainLines.length)], c.maxValue),
  );
  const heldT = roundUp(Math.max(...heldCases.map((e) => e.ids.length)), c.blockSize);

  // 1. training
  const progress = ctx.progress('line-retrieval train', c.steps);
  let last = start - 1;
  for (let step = start; step <= c.steps; step++) {
    // a step is synchronous compute: yield so Ctrl-C and the metric flush timer get their turn
    await new Promise((r) => setImmediate(r));
    if (ctx.signal.aborted) break;
    // the batch's cases come from a per-step RNG, so a resumed run draws the same batches
    const rng = new Rng(ctx.seed * 100_003 + step);
    const lines = allowedLines(step, c);
    const cases = Array.from({ length: c.batchSize }, () =>
      encodeCase(rng, lines[rng.int(lines.length)], c.maxValue),
    );
    // vanilla attention takes any length; the blockwise ones want whole blocks
    const T = roundUp(
      Math.max(...cases.map((e) => e.ids.length)),
      c.trainAttention === 'vanilla' ? 1 : c.blockSize,
    );
    const { ids, targets, isAnswer } = batchOf(cases, T);
    const x = tf.tensor2d(ids, [c.batchSize, T], 'int32');
    let answerPart: tf.Scalar | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const { loss, answerLoss } = taskLoss(model.forward(x), targets, isAnswer, c.otherTokenWeight);
      answerPart = answerLoss;
      return loss;
    }, vars);
    const loss = value.dataSync()[0];
    const answerLoss = answerPart?.dataSync()[0] ?? Number.NaN;
    answerPart?.dispose();
    const { grads: clipped, norm } = clipByGlobalNorm(
      vars.map((v) => grads[v.name]),
      c.clipNorm > 0 ? c.clipNorm : Number.POSITIVE_INFINITY,
    );
    const lr = learningRate(step, c);
    optimizer.apply(clipped, lr);
    tf.dispose([x, value, ...Object.values(grads), ...clipped]);
    ctx.tracker.metrics(
      {
        'train/loss': loss,
        'train/answer_loss': answerLoss,
        'train/max_lines': Math.max(...lines),
        'train/lr': lr,
        'train/grad_norm': norm,
      },
      step,
    );
    if ((c.evalEvery > 0 && step % c.evalEvery === 0) || step === c.steps) {
      const { accuracy } = await evaluateOne(model, heldCases, heldT, c.evalBatch);
      heldout.push({ step, accuracy });
      ctx.tracker.metrics({ 'train/heldout_accuracy': accuracy }, step);
    }
    progress.update(step, { loss, answer_loss: answerLoss });
    last = step;
    if (ctx.checkpoints.due(step) && step !== c.steps) await snapshot(step);
  }
  progress.finish();
  if (last >= start || !ctx.resume) await snapshot(last);
  if (ctx.signal.aborted) {
    optimizer.dispose();
    model.dispose();
    return;
  }

  // 2. one device under the budget (the same weights, BPT)
  const bpt = model.withRuntime(runtime);
  const budget = c.deviceMemoryMB * 2 ** 20;
  const MB = (b: number) => Math.round((b / 2 ** 20) * 1000) / 1000;
  const evalRng = new Rng(c.evalSeed);
  const sets = c.evalLines.map((lines) => {
    const cases = Array.from({ length: c.evalCases }, () => encodeCase(evalRng, lines, c.maxValue));
    return { lines, cases, T: roundUp(Math.max(...cases.map((e) => e.ids.length)), c.blockSize * c.devices) };
  });
  const rows: ResultRow[] = [];
  let maxOne = 0;
  for (const set of sets) {
    const peak = await probeOne(bpt, c.evalBatch, set.T);
    const row: ResultRow = {
      lines: set.lines,
      context_tokens: set.T,
      one_device_accuracy: 'over budget',
      one_device_peak_mb: MB(peak),
      ring_accuracy: '',
      ring_peak_mb_per_device: '',
    };
    if (peak <= budget) {
      const r = await evaluateOne(bpt, set.cases, set.T, c.evalBatch);
      row.one_device_accuracy = r.accuracy;
      maxOne = Math.max(maxOne, set.T);
      ctx.tracker.metrics({ 'eval/accuracy': r.accuracy }, set.T);
      ctx.tracker.metrics({ [`eval/accuracy_${set.lines}lines`]: r.accuracy }, set.T);
      ctx.log(`one device: ${set.lines} lines, ${set.T} tokens: accuracy ${r.accuracy}, peak ${MB(peak)} MB`);
    } else ctx.log(`one device: ${set.lines} lines, ${set.T} tokens: peak ${MB(peak)} MB over the budget`);
    ctx.tracker.metrics({ 'eval/peak_mb_one_device': MB(peak) }, set.T);
    rows.push(row);
  }
  if (maxOne === 0)
    ctx.log(`no evaluated length fits ${c.deviceMemoryMB} MB on one device; the ring still runs them`);
  ctx.tracker.metrics({ 'eval/max_context_one_device': maxOne }, 0);

  // 3. the ring at N× the one-device context: the longest line count whose cases fit N·T₁
  const N = c.devices;
  const target = N * maxOne;
  if (maxOne > 0) {
    let lines = Math.max(...c.evalLines);
    let best: (typeof sets)[number] | undefined;
    for (;;) {
      const probeRng = new Rng(c.evalSeed + lines);
      const cases = Array.from({ length: c.evalCases }, () => encodeCase(probeRng, lines, c.maxValue));
      if (Math.max(...cases.map((e) => e.ids.length)) > target) break;
      best = { lines, cases, T: target };
      lines++;
    }
    if (best && !sets.some((x) => x.lines === best.lines)) {
      sets.push(best);
      rows.push({
        lines: best.lines,
        context_tokens: best.T,
        one_device_accuracy: 'over budget',
        one_device_peak_mb: MB(await probeOne(bpt, c.evalBatch, best.T)),
        ring_accuracy: '',
        ring_peak_mb_per_device: '',
      });
    }
  }
  const group = await RingGroup.create({ devices: N, backend: ctx.backend.name });
  let maxRing = 0;
  try {
    const load: LoadModelArgs = {
      config,
      runtime: { ...runtime, attention: 'ring' },
      weights: modelWeights(model),
    };
    const Dh = config.hiddenSize / config.numHeads;
    const floats = (B: number, T: number) => 2 * B * config.numKvHeads * (T / N) * Dh;
    await group.run(deviceModule, 'loadModel', Array(N).fill(load), 1);
    for (const [i, set] of sets.entries()) {
      const r = await evaluateRing(group, set.cases, set.T, c.evalBatch, c.layout, (B) => floats(B, set.T));
      rows[i].ring_accuracy = r.accuracy;
      rows[i].ring_peak_mb_per_device = MB(r.peakBytes);
      if (r.peakBytes <= budget) maxRing = Math.max(maxRing, set.T);
      ctx.tracker.metrics({ 'eval/ring_accuracy': r.accuracy, 'eval/peak_mb_ring': MB(r.peakBytes) }, set.T);
      ctx.tracker.metrics({ [`eval/ring_accuracy_${set.lines}lines`]: r.accuracy }, set.T);
      ctx.log(
        `ring N=${N}: ${set.lines} lines, ${set.T} tokens: accuracy ${r.accuracy}, peak ${MB(r.peakBytes)} MB per device`,
      );
    }
    await group.run(deviceModule, 'unloadModel', Array(N).fill(null), 1);
  } finally {
    await group.dispose();
  }
  ctx.tracker.metrics({ 'eval/max_context_ring': maxRing }, 0);
  ctx.log(
    `max context within ${c.deviceMemoryMB} MB per device: one device ${maxOne}, ring N=${N} ${maxRing}`,
  );

  await ctx.tracker.table(
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
      name: `ring N=${N}`,
      x: rows.map((r) => r.context_tokens),
      y: rows.map((r) => Number(r.ring_accuracy)),
    },
  ].filter((x) => x.x.length > 0);
  await ctx.tracker.plot(
    'line_retrieval',
    linePlotSvg({
      title: `line retrieval: accuracy per context (budget ${c.deviceMemoryMB} MB per device)`,
      xLabel: 'context tokens',
      yLabel: 'accuracy',
      series,
    }),
  );
  if (heldout.length)
    await ctx.tracker.plot(
      'heldout_accuracy',
      linePlotSvg({
        title: 'line retrieval: held-out accuracy during training',
        xLabel: 'step',
        yLabel: 'accuracy',
        series: [{ name: 'held-out', x: heldout.map((h) => h.step), y: heldout.map((h) => h.accuracy) }],
      }),
    );
  optimizer.dispose();
  model.dispose();
}

export const lineRetrievalRecipe: Recipe<LineRetrievalConfig> = {
  name: 'line-retrieval',
  describe:
    'Train a small LLaMA on LongChat line retrieval; accuracy per context length, one device vs ring at N× the context',
  schema: s.object(fields, { doc: 'LongChat line retrieval (paper Figure 3 in miniature)' }),
  deviceCount: (c) => c.devices,
  run,
};
