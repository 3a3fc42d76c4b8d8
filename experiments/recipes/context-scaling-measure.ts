/**
 * How the context-scaling recipe measures a cell: training steps of the model on N ring devices
 * (context-scaling-device.ts), their memory compared to the budget, the longest context found by
 * train/'s search; then BPT's and ring's throughput there (Table 4).
 *
 * A device's memory is what it really holds at its peak during the step (issue 20: wasm heap,
 * JS, native buffers; native/memory.ts) plus the ring's receive buffers; the peak tensor bytes
 * are kept beside it. A wasm heap never shrinks, so a cell starts on fresh devices and the
 * devices are replaced after a probe over the budget.
 */
import { availableParallelism } from 'node:os';
import type { RingGroupPool } from '../../cluster/index.js';
import { Rng } from '../../common/index.js';
import { type AttentionImpl, tokenIndices } from '../../ring/index.js';
import { GradientSum, ringTask, searchMaxContext, trainingFlops } from '../../train/index.js';
import type { ContextScalingConfig } from './context-scaling.js';
import { parameterCount, type ScalingStepArgs, type ScalingStepResult } from './context-scaling-device.js';
import { type Cell, cellKey } from './context-scaling-report.js';
import type { RecipeContext } from './types.js';

type Ctx = RecipeContext<ContextScalingConfig>;

const device = new URL('./context-scaling-device.js', import.meta.url);
// the largest message: a K/V block of the ring, or a share of the gradient all-reduce
const stepTask = ringTask<ScalingStepArgs, ScalingStepResult>(device, 'scalingStep', ([a]) => {
  const n = a.seqLen / a.localLen;
  const kvBlock = 2 * a.model.kvHeads * a.localLen * (a.model.dModel / a.model.heads);
  return Math.max(kvBlock, GradientSum.messageFloats(parameterCount(a.model), 1, n));
});
const peakTask = ringTask<{ size: number; repeats: number }, number>(device, 'matmulPeak', () => 1);

/** `steps` training steps of the model at length L on N devices: the largest device's memory, per-step times. */
async function trainSteps(
  ctx: Ctx,
  devices: RingGroupPool,
  method: AttentionImpl,
  n: number,
  L: number,
  steps: number,
) {
  const c = ctx.config;
  const rng = new Rng(ctx.seed + L);
  const tokens = Int32Array.from({ length: L + 1 }, () => rng.int(c.model.vocab));
  const layout = method === 'ring' ? c.layout : 'contiguous';
  const args = Array.from({ length: n }, (_, r): ScalingStepArgs => {
    const idx = tokenIndices(r, n, L, layout);
    const [batch, localLen, seqLen, blockSize] = [1, L / n, L, Math.min(c.blockSize, L / n)];
    const [inputs, targets] = [0, 1].map((shift) => Int32Array.from(idx, (t) => tokens[t + shift]));
    return {
      tokens: inputs,
      targets,
      batch,
      localLen,
      seqLen,
      layout,
      attention: method,
      blockSize,
      model: c.model,
      seed: ctx.seed,
      steps,
    };
  });
  const g = await devices.get(n);
  const res = await stepTask.run(g, args);
  const comm = n > 1 ? g.commBytesPerDevice : 0;
  const most = (f: (r: ScalingStepResult) => number) => Math.max(...res.map(f)) + comm;
  const stepMs = res[0].stepMs.map((_, i) => Math.max(...res.map((r) => r.stepMs[i])));
  // the device with the largest real peak: the log line breaks it down
  const realOf = (r: ScalingStepResult) => r.real?.totalBytes ?? 0;
  const top = res.reduce((a, b) => (realOf(b) > realOf(a) ? b : a));
  return {
    parts: top.real,
    links: comm,
    bytes: realOf(top) + comm,
    tensorBytes: most((r) => r.peakBytes),
    bufferBytes: Math.max(...res.map((r) => r.bufferBytes)),
    stepMs,
  };
}

/** The longest context of one method on N devices under the budget (fresh devices after a miss). */
export async function measureCell(
  ctx: Ctx,
  devices: RingGroupPool,
  method: AttentionImpl,
  n: number,
): Promise<Cell> {
  const c = ctx.config;
  await devices.fresh(n);
  const search = { start: c.startLen, max: c.maxLen, granularity: 64 * n, refineSteps: c.refineSteps };
  const r = await searchMaxContext(search, async (L) => {
    const step = await trainSteps(ctx, devices, method, n, L, 1);
    const over = (c.budgetOn === 'real' ? step.bytes : step.tensorBytes) > c.budgetMiB * 2 ** 20;
    const mib = (b: number) => (b / 2 ** 20).toFixed(1);
    ctx.log(
      `${method} N=${n} L=${L}: ${mib(step.bytes)} MiB/device (heap ${mib(step.parts?.wasmHeapBytes ?? 0)} + JS ${mib(step.parts?.jsBytes ?? 0)} + native ${mib(step.parts?.nativeBytes ?? 0)}${n > 1 ? ` + links ${mib(step.links)}` : ''}; tensors ${mib(step.tensorBytes)}, buffers ${mib(step.bufferBytes)}), step ${(step.stepMs[0] / 1000).toFixed(1)} s${over ? ' (over budget)' : ''}`,
    );
    if (over) await devices.fresh(n);
    return over ? undefined : step;
  });
  const [peakMiB, tensorMiB, bufferMiB] = [r.fit?.bytes, r.fit?.tensorBytes, r.fit?.bufferBytes].map(
    (b) => (b ?? 0) / 2 ** 20,
  );
  return { method, devices: n, maxContext: r.maxContext, peakMiB, tensorMiB, bufferMiB, probes: r.probes };
}

/** Tokens/s and MFU of BPT and ring at their longest context (Table 4), as params. */
export async function measureThroughput(ctx: Ctx, devices: RingGroupPool, done: Cell[]): Promise<void> {
  const c = ctx.config;
  const [gflops] = await peakTask.run(await devices.get(1), [{ size: 1024, repeats: 3 }]);
  ctx.tracker.params({ 'scaling.matmul_peak_gflops_per_device': gflops.toFixed(2) });
  for (const cell of done) {
    if ((cell.method !== 'blockwise' && cell.method !== 'ring') || cell.maxContext === 0 || cell.tokensPerSec)
      continue;
    if (ctx.signal.aborted) break;
    const r = await trainSteps(
      ctx,
      devices,
      cell.method,
      cell.devices,
      cell.maxContext,
      c.throughputSteps + 1,
    );
    const sec = Math.min(...r.stepMs.slice(1)) / 1000; // the first step warms up
    const flops = trainingFlops({ parameters: parameterCount(c.model), ...c.model }, cell.maxContext);
    cell.tokensPerSec = cell.maxContext / sec;
    // NOTE: N devices on C cores share them: the peak is that of min(N, C) devices
    cell.mfu = flops / sec / (gflops * 1e9 * Math.min(cell.devices, availableParallelism()));
    const key = cellKey(cell);
    ctx.tracker.params({
      [`cell.${key}.tokens_per_sec`]: Math.round(cell.tokensPerSec),
      [`cell.${key}.mfu`]: cell.mfu.toFixed(4),
    });
    ctx.log(
      `${key} at L=${cell.maxContext}: ${cell.tokensPerSec.toFixed(0)} tokens/s, MFU ${(100 * cell.mfu).toFixed(1)}%`,
    );
  }
}
