/**
 * `recipe: context-scaling` — the paper's Tables 3 and 4 in miniature. For a small LLaMA-style
 * model and a per-device memory budget, find the longest context that trains one step with
 * vanilla attention, memory-efficient attention, BPT (blockwise attention + blockwise FFN) and
 * ring attention on N devices; then the throughput of BPT and ring at their longest contexts
 * (tokens/s, and model FLOPs utilisation against the measured matmul peak of one device times
 * the devices that can run at once, min(N, cores)).
 *
 * A device's memory is what it really holds at its peak during the step (issue 20: wasm heap,
 * JS, native buffers; native/memory.ts) plus the ring's receive buffers; the peak tensor
 * bytes are kept beside it. A wasm heap never shrinks, so a cell starts on fresh devices and the
 * devices are replaced after a probe over the budget. The search doubles the length while the
 * step fits, then bisects.
 *
 * The result is the table `context_scaling` (also printed at the end) and the plot `max_context`;
 * each cell's values are params `cell.<method>.max_context`, `.peak_mib` (real), `.tensor_mib`,
 * `.tokens_per_sec`, `.mfu`; the run's process peak RSS is `scaling.process_peak_rss_mib`
 * (`<method>` = vanilla, memeff, blockwise, ring_n<N>), so MLflow's runs table and compare view
 * show them. No metrics: one point per cell against "step = devices" made 17 useless charts
 * (issue 15). The state (cells measured) is saved only on Ctrl-C and every `checkpoint.every`
 * cells, not after each cell (7 empty checkpoint folders per run).
 */
import { availableParallelism } from 'node:os';
import { Rng } from '../../common/index.js';
import { processPeakRssBytes } from '../../native/index.js';
import { type AttentionImpl, tokenIndices } from '../../ring/index.js';
import { RingGroup } from '../../cluster/index.js';
import { maxWorkerThreads, WORKER_THREADS_WHY } from '../config/machine.js';
import { type InferFields, s } from '../config/schema.js';
import { linePlotSvg } from '../plot/svg.js';
import { parameterCount, type ScalingStepArgs, type ScalingStepResult } from './context-scaling-device.js';
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

interface Cell {
  method: AttentionImpl;
  devices: number;
  maxContext: number;
  peakMiB: number;
  /** Peak tensor bytes (MiB) at the longest context that fit. */
  tensorMiB?: number;
  probes: number;
  tokensPerSec?: number;
  mfu?: number;
}

/** Model FLOPs of one training step at length L (PaLM's count: 6·P·L + 12·layers·L²·d, halved attention for causal). */
export function trainingFlops(m: ContextScalingConfig['model'], L: number): number {
  return 6 * parameterCount(m) * L + 6 * m.layers * L * L * m.dModel;
}

async function run(ctx: RecipeContext<ContextScalingConfig>): Promise<void> {
  const groups = new Map<number, RingGroup>();
  try {
    await measure(ctx, groups);
  } finally {
    // NOTE: live device workers keep the process alive: a run that failed would hang instead of exiting
    for (const g of groups.values()) await g.dispose();
  }
}

async function measure(
  ctx: RecipeContext<ContextScalingConfig>,
  groups: Map<number, RingGroup>,
): Promise<void> {
  const c = ctx.config;
  const done: Cell[] = ((ctx.resume?.state as { cells?: Cell[] } | undefined)?.cells ?? []).slice();
  const plan: { method: AttentionImpl; devices: number }[] = [];
  for (const method of c.methods as AttentionImpl[]) {
    if (method === 'ring') for (const n of c.devices) plan.push({ method, devices: n });
    else plan.push({ method, devices: 1 });
  }
  const progress = ctx.progress('context-scaling', plan.length);
  const group = async (n: number) => {
    let g = groups.get(n);
    if (!g) {
      g = await RingGroup.create({ devices: n, backend: ctx.backend.name });
      groups.set(n, g);
    }
    return g;
  };
  // NOTE: a wasm heap only grows: a device that ran a longer probe would report its heap (issue 20)
  const freshDevices = async (n: number) => {
    await groups.get(n)?.dispose();
    groups.delete(n);
  };
  const budget = c.budgetMiB * 2 ** 20;
  // the cells measured so far: what --resume skips
  const saveCells = () =>
    ctx.checkpoints.save({ step: done.length, state: { cells: done as unknown as never }, tensors: {} });

  const trainStep = async (method: AttentionImpl, n: number, L: number, steps: number) => {
    const g = await group(n);
    const rng = new Rng(ctx.seed + L);
    const tokens = Int32Array.from({ length: L + 1 }, () => rng.int(c.model.vocab));
    const layout = method === 'ring' ? c.layout : 'contiguous';
    const args: ScalingStepArgs[] = Array.from({ length: n }, (_, r) => {
      const idx = tokenIndices(r, n, L, layout);
      return {
        tokens: Int32Array.from(idx, (t) => tokens[t]),
        targets: Int32Array.from(idx, (t) => tokens[t + 1]),
        batch: 1,
        localLen: L / n,
        seqLen: L,
        layout,
        attention: method,
        blockSize: Math.min(c.blockSize, L / n),
        model: c.model,
        seed: ctx.seed,
        steps,
      };
    });
    const Dh = c.model.dModel / c.model.heads;
    const kvMessage = 2 * c.model.kvHeads * (L / n) * Dh;
    const gradMessage = Math.ceil((parameterCount(c.model) + 1) / n);
    const res = await g.run<ScalingStepArgs, ScalingStepResult>(
      new URL('./context-scaling-device.js', import.meta.url),
      'scalingStep',
      args,
      Math.max(kvMessage, gradMessage),
    );
    const comm = n > 1 ? g.commBytesPerDevice : 0;
    const bytes = Math.max(...res.map((r) => r.realPeakBytes)) + comm;
    const tensorBytes = Math.max(...res.map((r) => r.peakBytes)) + comm;
    const stepMs = res[0].stepMs.map((_, i) => Math.max(...res.map((r) => r.stepMs[i])));
    return { bytes, tensorBytes, stepMs, loss: res[0].loss };
  };

  for (const p of plan) {
    if (done.some((d) => d.method === p.method && d.devices === p.devices)) continue;
    if (ctx.signal.aborted) break;
    // lengths are multiples of the granularity: every device holds the same number of tokens
    const gran = 64 * p.devices;
    const round = (L: number) => Math.max(gran, Math.floor(L / gran) * gran);
    let probes = 0;
    let lastFitBytes = 0;
    let lastFitTensorBytes = 0;
    await freshDevices(p.devices);
    const fits = async (L: number) => {
      probes++;
      const step = await trainStep(p.method, p.devices, L, 1);
      const r = { ...step, bytes: c.budgetOn === 'real' ? step.bytes : step.tensorBytes };
      ctx.log(
        `${p.method} N=${p.devices} L=${L}: ${(step.bytes / 2 ** 20).toFixed(1)} MiB/device (tensors ${(step.tensorBytes / 2 ** 20).toFixed(1)})${r.bytes > budget ? ' (over budget)' : ''}`,
      );
      if (r.bytes > budget) {
        await freshDevices(p.devices);
        return false;
      }
      lastFitBytes = step.bytes;
      lastFitTensorBytes = step.tensorBytes;
      return true;
    };
    let lo = 0;
    let hi = 0;
    for (let L = round(c.startLen); L <= c.maxLen; L *= 2) {
      if (await fits(L)) lo = L;
      else {
        hi = L;
        break;
      }
    }
    let bestBytes = lastFitBytes;
    let bestTensorBytes = lastFitTensorBytes;
    for (let i = 0; i < c.refineSteps && lo > 0 && hi > 0 && hi - lo > gran; i++) {
      const mid = round((lo + hi) / 2);
      if (mid <= lo || mid >= hi) break;
      if (await fits(mid)) {
        lo = mid;
        bestBytes = lastFitBytes;
        bestTensorBytes = lastFitTensorBytes;
      } else hi = mid;
    }
    const cell: Cell = {
      method: p.method,
      devices: p.devices,
      maxContext: lo,
      peakMiB: bestBytes / 2 ** 20,
      tensorMiB: bestTensorBytes / 2 ** 20,
      probes,
    };
    done.push(cell);
    const key = p.method === 'ring' ? `ring_n${p.devices}` : p.method;
    ctx.tracker.params({
      [`cell.${key}.max_context`]: lo,
      // the real peak (.peak_mib) is logged at the end: it moves by ~1 MiB from one measurement to
      // the next, and a resumed run re-measures the cell it was killed in (params are immutable)
      [`cell.${key}.tensor_mib`]: (cell.tensorMiB ?? 0).toFixed(2),
    });
    progress.update(done.length, { [key]: lo });
    if (ctx.checkpoints.due(done.length)) await saveCells();
  }
  if (ctx.signal.aborted) await saveCells();

  // throughput at the longest context (Table 4): BPT on one device, ring on N
  if (!ctx.signal.aborted && c.throughputSteps > 0) {
    const peaks = await (await group(1)).run<{ size: number; repeats: number }, number>(
      new URL('./context-scaling-device.js', import.meta.url),
      'matmulPeak',
      [{ size: 1024, repeats: 3 }],
      1,
    );
    const peakPerDevice = peaks[0] * 1e9;
    ctx.tracker.params({ 'scaling.matmul_peak_gflops_per_device': peaks[0].toFixed(2) });
    for (const cell of done) {
      if (
        (cell.method !== 'blockwise' && cell.method !== 'ring') ||
        cell.maxContext === 0 ||
        cell.tokensPerSec
      )
        continue;
      if (ctx.signal.aborted) break;
      const r = await trainStep(cell.method, cell.devices, cell.maxContext, c.throughputSteps + 1);
      const ms = Math.min(...r.stepMs.slice(1)); // the first step warms up
      cell.tokensPerSec = cell.maxContext / (ms / 1000);
      // NOTE: N devices on C cores share them: the peak is that of min(N, C) devices
      cell.mfu =
        trainingFlops(c.model, cell.maxContext) /
        (ms / 1000) /
        (peakPerDevice * Math.min(cell.devices, availableParallelism()));
      const key = cell.method === 'ring' ? `ring_n${cell.devices}` : cell.method;
      ctx.tracker.params({
        [`cell.${key}.tokens_per_sec`]: Math.round(cell.tokensPerSec),
        [`cell.${key}.mfu`]: cell.mfu.toFixed(4),
      });
      ctx.log(
        `${key} at L=${cell.maxContext}: ${cell.tokensPerSec.toFixed(0)} tokens/s, MFU ${(100 * cell.mfu).toFixed(1)}%`,
      );
    }
  }
  progress.finish();
  for (const g of groups.values()) await g.dispose();
  if (ctx.signal.aborted) return;
  ctx.tracker.params(
    Object.fromEntries(
      done.map((d) => [
        `cell.${d.method === 'ring' ? `ring_n${d.devices}` : d.method}.peak_mib`,
        d.peakMiB.toFixed(2),
      ]),
    ),
  );

  const bpt = done.find((d) => d.method === 'blockwise')?.maxContext ?? 0;
  const rows = done.map((d) => ({
    method: d.method === 'blockwise' ? 'BPT' : d.method,
    devices: d.devices,
    max_context: d.maxContext,
    peak_mib: Number(d.peakMiB.toFixed(2)),
    tensor_mib: d.tensorMiB === undefined ? null : Number(d.tensorMiB.toFixed(2)),
    vs_bpt: bpt ? Number((d.maxContext / bpt).toFixed(2)) : null,
    tokens_per_sec: d.tokensPerSec === undefined ? null : Math.round(d.tokensPerSec),
    mfu: d.mfu === undefined ? null : Number(d.mfu.toFixed(4)),
  }));
  await ctx.tracker.table('context_scaling', rows);
  // the result, printed: what the run found, without opening MLflow (issue 15)
  const cols = [
    'method',
    'devices',
    'max_context',
    'peak_mib',
    'tensor_mib',
    'vs_bpt',
    'tokens_per_sec',
    'mfu',
  ] as const;
  const text = rows.map((r) => cols.map((k) => (r[k] === null ? '–' : String(r[k]))));
  const widths = cols.map((k, i) => Math.max(k.length, ...text.map((t) => t[i].length)));
  ctx.log(`context scaling under ${c.budgetMiB} MiB/device:`);
  // the whole run's resident peak (main thread + every device): what a machine's limit sees
  const rss = processPeakRssBytes();
  if (rss !== undefined) ctx.tracker.params({ 'scaling.process_peak_rss_mib': (rss / 2 ** 20).toFixed(0) });
  for (const line of [cols as readonly string[], ...text])
    ctx.log(`  ${line.map((v, i) => v.padStart(widths[i])).join('  ')}`);
  ctx.log(
    `  budget on ${c.budgetOn === 'real' ? 'real memory (peak_mib)' : 'tensor bytes (tensor_mib)'}` +
      (rss === undefined ? '' : `; process peak RSS of the run: ${(rss / 2 ** 20).toFixed(0)} MiB`),
  );
  const ring = done.filter((d) => d.method === 'ring').sort((a, b) => a.devices - b.devices);
  const single = (m: AttentionImpl) => done.find((d) => d.method === m);
  const ns = ring.map((d) => d.devices);
  const flat = (m: AttentionImpl, name: string) => {
    const cell = single(m);
    return cell && ns.length ? [{ name, x: ns, y: ns.map(() => cell.maxContext) }] : [];
  };
  await ctx.tracker.plot(
    'max_context',
    linePlotSvg({
      title: `max context under ${c.budgetMiB} MiB/device (d=${c.model.dModel}, ${c.model.layers} layers)`,
      xLabel: 'devices N',
      yLabel: 'max context (tokens)',
      logX: 2,
      logY: 2,
      // the reference N × BPT dashed and ring drawn last, on top: ring ≈ N × BPT used to hide it
      series: [
        ...(bpt && ns.length ? [{ name: 'N × BPT', x: ns, y: ns.map((n) => n * bpt), dashed: true }] : []),
        ...flat('blockwise', 'BPT'),
        ...flat('memeff', 'memeff'),
        ...flat('vanilla', 'vanilla'),
        ...(ring.length ? [{ name: 'ring', x: ns, y: ring.map((d) => d.maxContext) }] : []),
      ],
    }),
  );
}

export const contextScalingRecipe: Recipe<ContextScalingConfig> = {
  name: 'context-scaling',
  describe: 'Max context per attention implementation and ring size under a memory budget (paper Tables 3–4)',
  schema: s.object(fields, { doc: 'Context-scaling experiment' }),
  deviceCount: (c) => Math.max(1, ...c.devices),
  run,
};
