/**
 * The context-scaling result as a user reads it: the table `context_scaling` (also printed at the
 * end of the run) and the plot `max_context` (ring against N × BPT, with the one-device methods
 * flat).
 */
import type { AttentionImpl } from '../../ring/index.js';
import { linePlotSvg } from '../plot/svg.js';
import type { RecipeContext } from './types.js';

/** One measured cell: a method on N devices. */
export interface Cell {
  method: AttentionImpl;
  devices: number;
  maxContext: number;
  peakMiB: number;
  /** Peak tensor bytes (MiB) at the longest context that fit. */
  tensorMiB?: number;
  /** Peak bytes (MiB) of distinct tensor buffers there (views and saved copies counted once). */
  bufferMiB?: number;
  probes: number;
  tokensPerSec?: number;
  mfu?: number;
}

/** `vanilla`, `memeff`, `blockwise`, `ring_n4`: the cell's name in params. */
export const cellKey = (c: { method: AttentionImpl; devices: number }) =>
  c.method === 'ring' ? `ring_n${c.devices}` : c.method;

const COLUMNS = [
  'method',
  'devices',
  'max_context',
  'peak_mib',
  'tensor_mib',
  'buffer_mib',
  'vs_bpt',
  'tokens_per_sec',
  'mfu',
] as const;

/** Logs the table, prints it (what the run found, without opening MLflow, issue 15) and plots it. */
export async function reportCells(
  ctx: RecipeContext<{
    budgetMiB: number;
    budgetOn: 'real' | 'tensors';
    model: { dModel: number; layers: number };
  }>,
  done: Cell[],
  rssBytes: number | undefined,
): Promise<void> {
  const c = ctx.config;
  const bpt = done.find((d) => d.method === 'blockwise')?.maxContext ?? 0;
  const rows = done.map((d) => ({
    method: d.method === 'blockwise' ? 'BPT' : d.method,
    devices: d.devices,
    max_context: d.maxContext,
    peak_mib: Number(d.peakMiB.toFixed(2)),
    tensor_mib: d.tensorMiB === undefined ? null : Number(d.tensorMiB.toFixed(2)),
    buffer_mib: d.bufferMiB === undefined ? null : Number(d.bufferMiB.toFixed(2)),
    vs_bpt: bpt ? Number((d.maxContext / bpt).toFixed(2)) : null,
    tokens_per_sec: d.tokensPerSec === undefined ? null : Math.round(d.tokensPerSec),
    mfu: d.mfu === undefined ? null : Number(d.mfu.toFixed(4)),
  }));
  await ctx.tracker.table('context_scaling', rows);
  const text = rows.map((r) => COLUMNS.map((k) => (r[k] === null ? '–' : String(r[k]))));
  const widths = COLUMNS.map((k, i) => Math.max(k.length, ...text.map((t) => t[i].length)));
  ctx.log(`context scaling under ${c.budgetMiB} MiB/device:`);
  for (const line of [COLUMNS as readonly string[], ...text])
    ctx.log(`  ${line.map((v, i) => v.padStart(widths[i])).join('  ')}`);
  ctx.log(
    `  budget on ${c.budgetOn === 'real' ? 'real memory (peak_mib)' : 'tensor bytes (tensor_mib)'}` +
      (rssBytes === undefined ? '' : `; process peak RSS of the run: ${(rssBytes / 2 ** 20).toFixed(0)} MiB`),
  );
  const ring = done.filter((d) => d.method === 'ring').sort((a, b) => a.devices - b.devices);
  const ns = ring.map((d) => d.devices);
  const flat = (m: AttentionImpl, name: string) => {
    const cell = done.find((d) => d.method === m);
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
