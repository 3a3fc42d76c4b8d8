/**
 * Line-retrieval accuracy per context length, one device against the ring (paper Figure 3's
 * claim in miniature: ring attention evaluates the same weights at N× the context one device can
 * hold). The budget `deviceMemoryMB` is on real per-device memory (issue 20): what a worker
 * device holds at the peak of an evaluation forward pass — its wasm heap, JS and native buffers,
 * the resident weights included, and on the ring its receive buffers (native/memory.ts). Peak
 * tensor bytes (the figure before issue 20) are reported beside it (`*_tensor_mb`).
 *
 * 1. One device: the same weights on a one-device `RingGroup` (a worker like the ring's, BPT:
 *    blockwise attention + FFN). For each length in `evalLines`, in ascending context order, the
 *    first batch of `evalBatch` cases runs measured; if the device's real peak is within the
 *    budget the length is evaluated, else it is "over budget". The longest that fits is the
 *    one-device context T₁.
 * 2. Ring: the same weights on N worker-thread devices (lm/ring-device.ts) with attention 'ring';
 *    each device runs its T/N tokens. Every `evalLines` length and the longest line count whose
 *    cases fit in N·T₁ tokens are evaluated, the most any device held measured against the same
 *    budget.
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
import { RingGroup } from '../cluster/index.js';
import { Rng } from '../common/index.js';
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
  /** Real memory (MiB): what the device held at its peak (the budget's figure, issue 20). */
  one_device_peak_mb: number;
  /** Peak tensor bytes of the forward pass (MiB), beside it. */
  one_device_tensor_mb: number;
  ring_accuracy: number | string;
  /** Real memory per ring device (MiB), its receive buffers included. */
  ring_peak_mb_per_device: number | string;
  ring_tensor_mb_per_device: number | string;
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

/**
 * Accuracy of `cases` on this thread, batch by batch, and the first batch's peak tensor bytes:
 * the held-out accuracy during training (no budget) and the reference the worker devices match.
 */
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

const deviceModule = new URL('./ring-device.js', import.meta.url);
const loadTask = ringTask<LoadModelArgs, { parameters: number }>(deviceModule, 'loadModel', () => 1);
const unloadTask = ringTask<null, null>(deviceModule, 'unloadModel', () => 1);

/** The lengths' cases: `T` is the padded context (whole blocks on every ring device). */
interface CaseSet {
  lines: number;
  cases: EncodedLineCase[];
  T: number;
}

/** What evaluating one context length held on the device that held most. */
interface EvalPeak {
  /** What the device really held (wasm heap + JS + native, the weights, + the ring's buffers). */
  realBytes: number;
  /** Peak tensor bytes of the forward pass (the figure before issue 20). */
  tensorBytes: number;
}

/**
 * Accuracy of `cases` (T tokens each, over the group's N devices in `layout` order) and the
 * first batch's peak, the most any device held. With `budget`, a first batch whose real peak is
 * over it ends the evaluation there (accuracy undefined): that length does not fit a device.
 */
async function evaluateOnGroup(
  group: RingGroup,
  set: CaseSet,
  batch: number,
  layout: RingLayout,
  kvFloats: (B: number) => number,
  check: { measure: boolean; budget?: number },
): Promise<{ accuracy?: number; peak: EvalPeak }> {
  const N = group.devices;
  const { cases, T } = set;
  // the largest message: one layer's K/V block of a device's T/N tokens
  const answerTask = ringTask<AnswerShardArgs, AnswerShardResult>(deviceModule, 'answerShard', (args) =>
    kvFloats(args[0].batch),
  );
  let right = 0;
  const peak: EvalPeak = { realBytes: 0, tensorBytes: 0 };
  for (let i = 0; i < cases.length; i += batch) {
    // the first batch is the largest: later ones hold no more
    const measure = check.measure && i === 0;
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
      measure,
    }));
    const res = await answerTask.run(group, args);
    // NOTE: the ring's receive buffers (SharedArrayBuffers from this thread, sized by the run) are
    // outside the device's own readings; a ring device holds them too
    const comm = N > 1 ? group.commBytesPerDevice : 0;
    // each answer token is read by the device holding its position
    const pred = new Map<string, number>();
    for (const r of res) {
      if (measure) {
        peak.realBytes = Math.max(peak.realBytes, r.peak.realBytes + comm);
        peak.tensorBytes = Math.max(peak.tensorBytes, r.peak.tensorBytes);
      }
      for (let k = 0; k < r.hits.length; k += 3) pred.set(`${r.hits[k]},${r.hits[k + 1]}`, r.hits[k + 2]);
    }
    if (i === 0 && check.budget !== undefined && peak.realBytes > check.budget) return { peak };
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
  return { accuracy: right / cases.length, peak };
}

/**
 * One worker device holding the model (BPT), for the one-device evaluation: measured like a ring
 * device. The wasm heap never shrinks, so a context measured after a longer one would read the
 * longer one's heap: such a context gets a fresh device (contexts run in ascending order, so
 * only the ring's extra length can need one).
 */
class OneDevice {
  private group: RingGroup | undefined;
  private longest = 0;

  constructor(
    private readonly load: LoadModelArgs,
    private readonly backend: TrainContext['backend'],
  ) {}

  async at(T: number): Promise<RingGroup> {
    if (this.group && T < this.longest) await this.dispose();
    if (!this.group) {
      this.group = await RingGroup.create({ devices: 1, backend: this.backend });
      await loadTask.run(this.group, [this.load]);
    }
    this.longest = Math.max(this.longest, T);
    return this.group;
  }

  async dispose(): Promise<void> {
    const g = this.group;
    this.group = undefined;
    this.longest = 0;
    await g?.dispose();
  }
}

/** A table row before any measurement: over budget until the one-device evaluation fits it. */
function unmeasuredRow(set: { lines: number; T: number }): LineRetrievalRow {
  return {
    lines: set.lines,
    context_tokens: set.T,
    one_device_accuracy: 'over budget',
    one_device_peak_mb: 0,
    one_device_tensor_mb: 0,
    ring_accuracy: '',
    ring_peak_mb_per_device: '',
    ring_tensor_mb_per_device: '',
  };
}

/**
 * Evaluates `model` (running BPT) per context length on one device within the budget and on the
 * ring, logging eval/accuracy, eval/accuracy_<lines>lines, eval/peak_mb_one_device and
 * eval/tensor_mb_one_device, eval/ring_accuracy, eval/ring_accuracy_<lines>lines,
 * eval/peak_mb_ring and eval/tensor_mb_ring (step = context tokens), eval/max_context_one_device
 * and eval/max_context_ring (step 0). The peak_mb figures are real memory (the budget's), the
 * tensor_mb ones peak tensor bytes.
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
  const sets: CaseSet[] = o.evalLines.map((lines) => {
    const cases = Array.from({ length: o.evalCases }, () => encodeLineCase(evalRng, lines, o.maxValue));
    return { lines, cases, T: roundUp(Math.max(...cases.map((e) => e.ids.length)), o.blockSize * o.devices) };
  });
  const config = model.config;
  const weights = modelWeights(model);
  const Dh = config.hiddenSize / config.numHeads;

  // 1. one device under the budget, contexts in ascending order; one measurement per context
  const rows: LineRetrievalRow[] = sets.map(unmeasuredRow);
  const ascending = (idx: number[]) => [...idx].sort((a, b) => sets[a].T - sets[b].T);
  const one = new OneDevice({ config, runtime: model.runtime, weights }, ctx.backend);
  const measured = new Map<number, EvalPeak>();
  let maxOne = 0;
  const evaluateOne = async (i: number) => {
    const set = sets[i];
    const row = rows[i];
    const known = measured.get(set.T);
    const r =
      known && known.realBytes > budget
        ? { peak: known }
        : await evaluateOnGroup(await one.at(set.T), set, o.evalBatch, 'contiguous', () => 1, {
            measure: !known,
            budget,
          });
    const peak = known ?? r.peak;
    measured.set(set.T, peak);
    row.one_device_peak_mb = MB(peak.realBytes);
    row.one_device_tensor_mb = MB(peak.tensorBytes);
    const mb = `${MB(peak.realBytes)} MiB (tensors ${MB(peak.tensorBytes)} MiB)`;
    if (r.accuracy !== undefined) {
      row.one_device_accuracy = r.accuracy;
      maxOne = Math.max(maxOne, set.T);
      ctx.logger.metrics({ 'eval/accuracy': r.accuracy }, set.T);
      ctx.logger.metrics({ [`eval/accuracy_${set.lines}lines`]: r.accuracy }, set.T);
      log(`one device: ${set.lines} lines, ${set.T} tokens: accuracy ${r.accuracy}, peak ${mb}`);
    } else log(`one device: ${set.lines} lines, ${set.T} tokens: peak ${mb} over the budget`);
    ctx.logger.metrics(
      { 'eval/peak_mb_one_device': MB(peak.realBytes), 'eval/tensor_mb_one_device': MB(peak.tensorBytes) },
      set.T,
    );
  };
  const N = o.devices;
  try {
    for (const i of ascending(sets.map((_, k) => k))) await evaluateOne(i);
    if (maxOne === 0)
      log(`no evaluated length fits ${o.deviceMemoryMB} MiB on one device; the ring still runs them`);

    // 2. the ring at N× the one-device context: the longest line count whose cases fit N·T₁
    const target = N * maxOne;
    if (maxOne > 0) {
      let lines = Math.max(...o.evalLines);
      let best: CaseSet | undefined;
      for (;;) {
        const probeRng = new Rng(o.evalSeed + lines);
        const cases = Array.from({ length: o.evalCases }, () => encodeLineCase(probeRng, lines, o.maxValue));
        if (Math.max(...cases.map((e) => e.ids.length)) > target) break;
        best = { lines, cases, T: target };
        lines++;
      }
      if (best && !sets.some((x) => x.lines === best.lines)) {
        sets.push(best);
        rows.push(unmeasuredRow(best));
        await evaluateOne(sets.length - 1);
      }
    }
  } finally {
    await one.dispose();
  }
  ctx.logger.metrics({ 'eval/max_context_one_device': maxOne }, 0);

  const group = await RingGroup.create({ devices: N, backend: ctx.backend });
  let maxRing = 0;
  try {
    const load: LoadModelArgs = { config, runtime: { ...model.runtime, attention: 'ring' }, weights };
    await loadTask.run(group, Array(N).fill(load));
    // ascending contexts, as on one device: a device's heap then reads each context's own need
    for (const i of ascending(sets.map((_, k) => k))) {
      const set = sets[i];
      const kvFloats = (B: number) => 2 * B * config.numKvHeads * (set.T / N) * Dh;
      const r = await evaluateOnGroup(group, set, o.evalBatch, o.layout, kvFloats, { measure: true });
      const accuracy = r.accuracy ?? 0; // no budget: every batch runs
      rows[i].ring_accuracy = accuracy;
      rows[i].ring_peak_mb_per_device = MB(r.peak.realBytes);
      rows[i].ring_tensor_mb_per_device = MB(r.peak.tensorBytes);
      if (r.peak.realBytes <= budget) maxRing = Math.max(maxRing, set.T);
      ctx.logger.metrics(
        {
          'eval/ring_accuracy': accuracy,
          'eval/peak_mb_ring': MB(r.peak.realBytes),
          'eval/tensor_mb_ring': MB(r.peak.tensorBytes),
        },
        set.T,
      );
      ctx.logger.metrics({ [`eval/ring_accuracy_${set.lines}lines`]: accuracy }, set.T);
      log(
        `ring N=${N}: ${set.lines} lines, ${set.T} tokens: accuracy ${accuracy}, peak ${MB(r.peak.realBytes)} MiB per device (tensors ${MB(r.peak.tensorBytes)} MiB)`,
      );
    }
    await unloadTask.run(group, Array(N).fill(null));
  } finally {
    await group.dispose();
  }
  ctx.logger.metrics({ 'eval/max_context_ring': maxRing }, 0);
  log(
    `max context within ${o.deviceMemoryMB} MiB per device (real memory): one device ${maxOne}, ring N=${N} ${maxRing}`,
  );
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
