/**
 * Line-retrieval accuracy per context length, one device against the ring (paper Figure 3's
 * claim in miniature: ring attention evaluates the same weights at N× the context one device can
 * hold):
 *
 * 1. One device: for each length in `evalLines`, the peak tensor bytes of the forward pass
 *    (blockwise attention + FFN, BPT) over a batch of `evalBatch` cases is measured; lengths
 *    within `deviceMemoryMB` are evaluated, the others are "over budget". The longest that fits
 *    is the one-device context T₁.
 * 2. Ring: the same weights are sent to N worker-thread devices (lm/ring-device.ts) with
 *    attention 'ring'; each device runs its T/N tokens. Every `evalLines` length and the longest
 *    line count whose cases fit in N·T₁ tokens are evaluated, each device's peak bytes measured
 *    against the same budget.
 *
 * Scoring (decision): teacher-forced argmax over the answer span. The prompt plus the true answer
 * runs once; a case is right iff the argmax next token at the prompt's last position and at each
 * answer token is the true next token (`lineAnswerCorrect`). Greedy decoding outputs exactly the
 * answer iff that holds, so this is greedy decoding's exact-answer accuracy without a
 * token-by-token loop (which on the ring would need a distributed KV cache).
 *
 * The memory budget is for evaluation; training runs before it without a budget.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../common/index.js';
import { RingGroup } from '../cluster/index.js';
import { withPeakBytes } from '../native/index.js';
import type { RingLayout } from '../ring/index.js';
import { ringTask, shardColumns, type TrainContext } from '../train/index.js';
import {
  answerPositions,
  type EncodedLineCase,
  encodeLineCase,
  lineAnswerCorrect,
  lineBatch,
} from './line-retrieval.js';
import type { LineRetrievalOptions } from './line-retrieval-train.js';
import type { LlamaModel } from './model.js';
import {
  type AnswerShardArgs,
  type AnswerShardResult,
  type LoadModelArgs,
  modelWeights,
} from './ring-device.js';

/** One row of the result table: a line count at its context length, on one device and the ring. */
export interface LineRetrievalRow {
  lines: number;
  context_tokens: number;
  one_device_accuracy: number | string;
  one_device_peak_mb: number;
  ring_accuracy: number | string;
  ring_peak_mb_per_device: number | string;
}

export interface LineRetrievalEvaluation {
  rows: LineRetrievalRow[];
  /** The longest evaluated context (tokens) within the budget: one device, and per ring device. */
  maxContextOneDevice: number;
  maxContextRing: number;
}

function roundUp(n: number, k: number): number {
  return Math.ceil(n / k) * k;
}

function argmaxAt(a: Float32Array, off: number, V: number): number {
  let best = 0;
  for (let v = 1; v < V; v++) if (a[off + v] > a[off + best]) best = v;
  return best;
}

/** Accuracy of `cases` on one device (this thread), batch by batch; the first batch is measured. */
export async function evaluateOnDevice(
  model: LlamaModel,
  cases: EncodedLineCase[],
  T: number,
  batch: number,
): Promise<{ accuracy: number; peakBytes: number }> {
  let right = 0;
  let peak = 0;
  for (let i = 0; i < cases.length; i += batch) {
    const part = cases.slice(i, i + batch);
    const { ids } = lineBatch(part, T);
    const x = tf.tensor2d(ids, [part.length, T], 'int32'); // (B, T)
    const { result: logits, peakBytes } = await withPeakBytes(() => tf.tidy(() => model.forward(x)), i === 0);
    peak = Math.max(peak, peakBytes);
    const V = logits.shape[2] as number; // logits (B, T, V)
    const all = logits.dataSync() as Float32Array;
    tf.dispose([x, logits]);
    part.forEach((e, b) => {
      const pred = answerPositions(e).map((p) => argmaxAt(all, (b * T + p) * V, V));
      if (lineAnswerCorrect(e, pred)) right++;
    });
  }
  return { accuracy: right / cases.length, peakBytes: peak };
}

/** Peak tensor bytes of one evaluation forward pass of `batch` rows of T tokens (one device). */
async function probeOnDevice(model: LlamaModel, batch: number, T: number): Promise<number> {
  const x = tf.zeros([batch, T], 'int32');
  const { result, peakBytes } = await withPeakBytes(() => tf.tidy(() => model.forward(x)), true);
  tf.dispose([x, result]);
  return peakBytes;
}

const deviceModule = new URL('./ring-device.js', import.meta.url);
const loadTask = ringTask<LoadModelArgs, { parameters: number }>(deviceModule, 'loadModel', () => 1);
const unloadTask = ringTask<null, null>(deviceModule, 'unloadModel', () => 1);

/** Accuracy of `cases` on the ring (T tokens over N devices); max per-device peak bytes. */
async function evaluateRing(
  group: RingGroup,
  cases: EncodedLineCase[],
  T: number,
  batch: number,
  layout: RingLayout,
  kvFloats: (B: number) => number,
): Promise<{ accuracy: number; peakBytes: number }> {
  const N = group.devices;
  // the largest message: one layer's K/V block of a device's T/N tokens
  const answerTask = ringTask<AnswerShardArgs, AnswerShardResult>(deviceModule, 'answerShard', (args) =>
    kvFloats(args[0].batch),
  );
  let right = 0;
  let peak = 0;
  for (let i = 0; i < cases.length; i += batch) {
    const part = cases.slice(i, i + batch);
    const B = part.length;
    const { ids } = lineBatch(part, T);
    const positions = part.map(answerPositions);
    const args: AnswerShardArgs[] = Array.from({ length: N }, (_, rank) => ({
      ids: shardColumns(ids, B, T, rank, N, layout),
      batch: B,
      seqLen: T,
      layout,
      positions,
      measure: i === 0,
    }));
    const res = await answerTask.run(group, args);
    // each answer token is read by the device holding its position
    const pred = new Map<string, number>();
    for (const r of res) {
      peak = Math.max(peak, r.peakBytes);
      for (let k = 0; k < r.hits.length; k += 3) pred.set(`${r.hits[k]},${r.hits[k + 1]}`, r.hits[k + 2]);
    }
    part.forEach((e, b) => {
      if (
        lineAnswerCorrect(
          e,
          positions[b].map((p) => pred.get(`${b},${p}`) ?? -1),
        )
      )
        right++;
    });
  }
  return { accuracy: right / cases.length, peakBytes: peak };
}

/**
 * Evaluates `model` (running BPT) per context length on one device within the budget and on the
 * ring, logging eval/accuracy, eval/accuracy_<lines>lines, eval/peak_mb_one_device,
 * eval/ring_accuracy, eval/ring_accuracy_<lines>lines, eval/peak_mb_ring (step = context tokens),
 * eval/max_context_one_device and eval/max_context_ring (step 0).
 */
export async function evaluateLineRetrieval(
  model: LlamaModel,
  o: LineRetrievalOptions,
  ctx: Pick<TrainContext, 'logger' | 'log' | 'backend'>,
): Promise<LineRetrievalEvaluation> {
  const log = (line: string) => ctx.log?.(line);
  const budget = o.deviceMemoryMB * 2 ** 20;
  const MB = (b: number) => Math.round((b / 2 ** 20) * 1000) / 1000;
  const evalRng = new Rng(o.evalSeed);
  const sets = o.evalLines.map((lines) => {
    const cases = Array.from({ length: o.evalCases }, () => encodeLineCase(evalRng, lines, o.maxValue));
    return { lines, cases, T: roundUp(Math.max(...cases.map((e) => e.ids.length)), o.blockSize * o.devices) };
  });

  // 1. one device under the budget
  const rows: LineRetrievalRow[] = [];
  let maxOne = 0;
  for (const set of sets) {
    const peak = await probeOnDevice(model, o.evalBatch, set.T);
    const row: LineRetrievalRow = {
      lines: set.lines,
      context_tokens: set.T,
      one_device_accuracy: 'over budget',
      one_device_peak_mb: MB(peak),
      ring_accuracy: '',
      ring_peak_mb_per_device: '',
    };
    if (peak <= budget) {
      const r = await evaluateOnDevice(model, set.cases, set.T, o.evalBatch);
      row.one_device_accuracy = r.accuracy;
      maxOne = Math.max(maxOne, set.T);
      ctx.logger.metrics({ 'eval/accuracy': r.accuracy }, set.T);
      ctx.logger.metrics({ [`eval/accuracy_${set.lines}lines`]: r.accuracy }, set.T);
      log(`one device: ${set.lines} lines, ${set.T} tokens: accuracy ${r.accuracy}, peak ${MB(peak)} MB`);
    } else log(`one device: ${set.lines} lines, ${set.T} tokens: peak ${MB(peak)} MB over the budget`);
    ctx.logger.metrics({ 'eval/peak_mb_one_device': MB(peak) }, set.T);
    rows.push(row);
  }
  if (maxOne === 0)
    log(`no evaluated length fits ${o.deviceMemoryMB} MB on one device; the ring still runs them`);
  ctx.logger.metrics({ 'eval/max_context_one_device': maxOne }, 0);

  // 2. the ring at N× the one-device context: the longest line count whose cases fit N·T₁
  const N = o.devices;
  const target = N * maxOne;
  if (maxOne > 0) {
    let lines = Math.max(...o.evalLines);
    let best: (typeof sets)[number] | undefined;
    for (;;) {
      const probeRng = new Rng(o.evalSeed + lines);
      const cases = Array.from({ length: o.evalCases }, () => encodeLineCase(probeRng, lines, o.maxValue));
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
        one_device_peak_mb: MB(await probeOnDevice(model, o.evalBatch, best.T)),
        ring_accuracy: '',
        ring_peak_mb_per_device: '',
      });
    }
  }
  const group = await RingGroup.create({ devices: N, backend: ctx.backend });
  let maxRing = 0;
  try {
    const config = model.config;
    const load: LoadModelArgs = {
      config,
      runtime: { ...model.runtime, attention: 'ring' },
      weights: modelWeights(model),
    };
    const Dh = config.hiddenSize / config.numHeads;
    await loadTask.run(group, Array(N).fill(load));
    for (const [i, set] of sets.entries()) {
      const kvFloats = (B: number) => 2 * B * config.numKvHeads * (set.T / N) * Dh;
      const r = await evaluateRing(group, set.cases, set.T, o.evalBatch, o.layout, kvFloats);
      rows[i].ring_accuracy = r.accuracy;
      rows[i].ring_peak_mb_per_device = MB(r.peakBytes);
      if (r.peakBytes <= budget) maxRing = Math.max(maxRing, set.T);
      ctx.logger.metrics({ 'eval/ring_accuracy': r.accuracy, 'eval/peak_mb_ring': MB(r.peakBytes) }, set.T);
      ctx.logger.metrics({ [`eval/ring_accuracy_${set.lines}lines`]: r.accuracy }, set.T);
      log(
        `ring N=${N}: ${set.lines} lines, ${set.T} tokens: accuracy ${r.accuracy}, peak ${MB(r.peakBytes)} MB per device`,
      );
    }
    await unloadTask.run(group, Array(N).fill(null));
  } finally {
    await group.dispose();
  }
  ctx.logger.metrics({ 'eval/max_context_ring': maxRing }, 0);
  log(`max context within ${o.deviceMemoryMB} MB per device: one device ${maxOne}, ring N=${N} ${maxRing}`);
  return { rows, maxContextOneDevice: maxOne, maxContextRing: maxRing };
}

/** Accuracy against context tokens: one device (BPT, where it fit the budget) and the N-device ring. */
export function accuracyCurves(
  rows: LineRetrievalRow[],
  devices: number,
): { name: string; x: number[]; y: number[] }[] {
  const fit = rows.filter((r) => typeof r.one_device_accuracy === 'number');
  return [
    {
      name: 'one device (BPT)',
      x: fit.map((r) => r.context_tokens),
      y: fit.map((r) => Number(r.one_device_accuracy)),
    },
    {
      name: `ring N=${devices}`,
      x: rows.map((r) => r.context_tokens),
      y: rows.map((r) => Number(r.ring_accuracy)),
    },
  ].filter((curve) => curve.x.length > 0);
}
