/**
 * `recipe: context-scaling` — the paper's Tables 3 and 4 in miniature. For a small LLaMA-style
 * model and a per-device memory budget, find the longest context that trains one step with
 * vanilla attention, memory-efficient attention, BPT (blockwise attention + blockwise FFN) and
 * ring attention on N devices; then the throughput of BPT and ring at their longest contexts
 * (tokens/s, and model FLOPs utilisation against the measured matmul peak of one device times
 * the devices that can run at once, min(N, cores)).
 *
 * How a cell is measured: context-scaling-measure.ts (the search itself: train/max-context.ts).
 *
 * The result is the table `context_scaling` (also printed at the end) and the plot `max_context`;
 * each cell's values are params `cell.<method>.max_context`, `.peak_mib` (real), `.tensor_mib`,
 * `.tokens_per_sec`, `.mfu`; the run's process peak RSS is `scaling.process_peak_rss_mib`
 * (`<method>` = vanilla, memeff, blockwise, ring_n<N>), so MLflow's runs table and compare view
 * show them. No metrics: one point per cell against "step = devices" made 17 useless charts
 * (issue 15). The state (cells measured) is saved only on Ctrl-C and every `checkpoint.every`
 * cells, not after each cell (7 empty checkpoint folders per run).
 */
import { RingGroupPool } from '../../cluster/index.js';
import { processPeakRssBytes } from '../../native/index.js';
import type { AttentionImpl } from '../../ring/index.js';
import { maxWorkerThreads, WORKER_THREADS_WHY } from '../config/machine.js';
import { type InferFields, s } from '../config/schema.js';
import { measureCell, measureThroughput } from './context-scaling-measure.js';
import { type Cell, cellKey, reportCells } from './context-scaling-report.js';
import type { Recipe, RecipeContext } from './types.js';

const fields = {
  model: s.object(
    {
      vocab: s.integer({ doc: 'Vocabulary size', default: 256, min: 2 }),
      dModel: s.integer({ doc: 'Hidden size', default: 64, min: 1 }),
      heads: s.integer({ doc: 'Query heads', default: 4, min: 1 }),
      kvHeads: s.integer({ doc: 'Key/value heads (grouped-query attention)', default: 2, min: 1 }),
      layers: s.integer({ doc: 'Transformer blocks', default: 2, min: 1 }),
      ffnHidden: s.integer({ doc: 'SwiGLU hidden size', default: 172, min: 1 }),
    },
    { doc: 'The model trained one step at each probed context' },
  ),
  budgetMiB: s.number({
    doc: 'Memory budget per device, MiB (what a device really holds at its peak + ring receive buffers)',
    // NOTE: an idle device already holds ≈ 40 MiB (wasm heap 16, JS ≈ 24): 48 left ~8 for the step
    default: 96,
    min: 0,
    exclusiveMin: true,
  }),
  budgetOn: s.enum(['real', 'tensors'] as const, {
    doc: "What the budget limits: 'real', what a device really holds (wasm heap, JS, native buffers, issue 20); 'tensors', peak tensor bytes (the paper's activation count)",
    default: 'real',
  }),
  methods: s.list(
    s.enum(['vanilla', 'memeff', 'blockwise', 'ring'] as const, { doc: 'An attention implementation' }),
    {
      doc: 'Implementations to measure (blockwise = BPT)',
      default: ['vanilla', 'memeff', 'blockwise', 'ring'],
      minLength: 1,
    },
  ),
  devices: s.list(
    s.integer({ doc: 'A device count', min: 1, max: maxWorkerThreads(), maxWhy: WORKER_THREADS_WHY }),
    {
      doc: 'Ring sizes N to measure',
      default: [1, 2, 4, 8],
      minLength: 1,
    },
  ),
  layout: s.enum(['contiguous', 'striped'] as const, {
    doc: 'Ring token layout (striped balances causal work)',
    default: 'striped',
  }),
  blockSize: s.integer({
    doc: 'Block size of memeff, BPT and ring, and BPT’s FFN chunk',
    default: 128,
    min: 1,
  }),
  startLen: s.integer({ doc: 'First context probed (rounded to a multiple of 64·N)', default: 64, min: 1 }),
  maxLen: s.integer({ doc: 'Longest context probed', default: 32768, min: 1 }),
  refineSteps: s.integer({ doc: 'Bisection steps after the doubling search', default: 2, min: 0 }),
  throughputSteps: s.integer({
    doc: 'Timed training steps at the longest context of BPT and ring (0: skip)',
    default: 2,
    min: 0,
  }),
};

export type ContextScalingConfig = InferFields<typeof fields>;
type Ctx = RecipeContext<ContextScalingConfig>;

async function run(ctx: Ctx): Promise<void> {
  const c = ctx.config;
  const devices = new RingGroupPool(ctx.backend.name);
  try {
    // the cells measured so far: what --resume skips; saved on Ctrl-C and every checkpoint.every cells
    const done: Cell[] = ((ctx.resume?.state as { cells?: Cell[] } | undefined)?.cells ?? []).slice();
    const save = () =>
      ctx.checkpoints.save({ step: done.length, state: { cells: done as unknown as never }, tensors: {} });
    const plan = (c.methods as AttentionImpl[]).flatMap((method) =>
      (method === 'ring' ? c.devices : [1]).map((n) => ({ method, devices: n })),
    );
    const progress = ctx.progress('context-scaling', plan.length);
    for (const p of plan) {
      if (done.some((d) => d.method === p.method && d.devices === p.devices)) continue;
      if (ctx.signal.aborted) break;
      const cell = await measureCell(ctx, devices, p.method, p.devices);
      done.push(cell);
      // the real peak (.peak_mib) is logged at the end: it moves by ~1 MiB from one measurement to
      // the next, and a resumed run re-measures the cell it was killed in (params are immutable)
      const key = cellKey(cell);
      ctx.tracker.params({
        [`cell.${key}.max_context`]: cell.maxContext,
        [`cell.${key}.tensor_mib`]: (cell.tensorMiB ?? 0).toFixed(2),
        [`cell.${key}.buffer_mib`]: (cell.bufferMiB ?? 0).toFixed(2),
      });
      progress.update(done.length, { [key]: cell.maxContext });
      if (ctx.checkpoints.due(done.length)) await save();
    }
    if (ctx.signal.aborted) await save();
    if (!ctx.signal.aborted && c.throughputSteps > 0) await measureThroughput(ctx, devices, done);
    progress.finish();
    await devices.dispose();
    if (ctx.signal.aborted) return;
    ctx.tracker.params(
      Object.fromEntries(done.map((d) => [`cell.${cellKey(d)}.peak_mib`, d.peakMiB.toFixed(2)])),
    );
    // the whole run's resident peak (main thread + every device): what a machine's limit sees
    const rss = processPeakRssBytes();
    if (rss !== undefined) ctx.tracker.params({ 'scaling.process_peak_rss_mib': (rss / 2 ** 20).toFixed(0) });
    await reportCells(ctx, done, rss);
  } finally {
    await devices.dispose();
  }
}

export const contextScalingRecipe: Recipe<ContextScalingConfig> = {
  name: 'context-scaling',
  describe: 'Max context per attention implementation and ring size under a memory budget (paper Tables 3–4)',
  schema: s.object(fields, { doc: 'Context-scaling experiment' }),
  deviceCount: (c) => Math.max(1, ...c.devices),
  run,
};
