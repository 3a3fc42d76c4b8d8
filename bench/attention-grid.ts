/**
 * Issue 14's attention grid: native blockwise attention on one device (both cores) and ring
 * attention on N = 2 devices (one core each) against PyTorch's CPU scaled_dot_product_attention,
 * forward and forward+backward, over head dims 64 and 128, causal and not, grouped-query
 * attention, L 2K–16K and batch 1–2. Per shape, back to back: PyTorch, then ours, with the load
 * average. Targets: blockwise forward and forward+backward ≥ 1.0× PyTorch; one device ≥ 0.9× the
 * ring's throughput at N = 2. Writes bench/results/attention-grid.json and prints a Markdown table
 * (with the kernels line: which ISA's tiles ran).
 *
 *   npm run build && node dist/bench/attention-grid.js [--only 0,3,5] [--repeats 2] [--out FILE]
 */
import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RingGroup } from '../cluster/index.js';
import { writeFileAtomic } from '../common/index.js';
import { type AttentionBenchResult, benchAttention } from '../experiments/bench/attention.js';
import { initBackend } from '../native/index.js';
import { BenchArgError, benchArgs } from './args.js';
import { nativeKernels, torchSdpa } from './torch-sdpa.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
interface Shape {
  batch: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  seqLen: number;
  causal: boolean;
}
const shape = (
  batch: number,
  heads: number,
  kvHeads: number,
  headDim: number,
  seqLen: number,
  causal: boolean,
) => ({
  batch,
  heads,
  kvHeads,
  headDim,
  seqLen,
  causal,
});
/** The grid: every axis the issue names, in 10 shapes rather than their 64 combinations. */
const GRID: Shape[] = [
  shape(1, 8, 8, 64, 2048, false),
  shape(1, 8, 8, 64, 2048, true),
  shape(1, 8, 8, 64, 16384, false),
  shape(1, 8, 8, 64, 16384, true),
  shape(1, 16, 16, 128, 4096, false),
  shape(1, 16, 16, 128, 4096, true),
  shape(1, 32, 8, 128, 2048, true), // GQA 4:1
  shape(2, 8, 2, 64, 8192, true), // GQA 4:1, batch 2
  shape(2, 8, 8, 128, 2048, false),
  shape(2, 16, 4, 128, 4096, false), // GQA, batch 2, D 128
];
const BLOCK = 512;

const args = benchArgs(
  {
    script: 'attention-grid',
    usage: ['npm run build && node dist/bench/attention-grid.js [--only 0,3,5] [--repeats 2] [--out FILE]'],
    options: {
      only: {
        kind: 'list',
        of: 'number',
        integer: true,
        min: 0,
        defaultText: 'every shape',
        description: `run only these shapes of the grid (0–${GRID.length - 1}), and write no JSON`,
      },
      repeats: {
        kind: 'number',
        integer: true,
        min: 0,
        default: 2,
        description: 'timed repeats per shape (1 at L 16K)',
      },
      out: {
        kind: 'string',
        default: 'bench/results/attention-grid.json',
        placeholder: 'FILE',
        description: "where the JSON goes (relative to the repository), e.g. an AVX2 build's own file",
      },
    },
  },
  (a) => {
    const outside = a.only?.find((i) => i >= GRID.length);
    if (outside !== undefined)
      throw new BenchArgError(
        `no shape ${outside} in --only`,
        `shape numbers 0–${GRID.length - 1}`,
        `'${a.only?.join(',')}'`,
      );
  },
);

const label = (s: Shape) =>
  `B${s.batch} H${s.heads}${s.kvHeads !== s.heads ? `/${s.kvHeads}` : ''} D${s.headDim} L${s.seqLen / 1024}K${s.causal ? ' causal' : ''}`;

async function main(): Promise<void> {
  const backend = await initBackend({ notice: true });
  const kernels = nativeKernels(backend, 'bench attention-grid');
  const { only, repeats } = args;
  const shapes = GRID.filter((_, i) => !only || only.includes(i));
  const one = await RingGroup.create({ devices: 1, backend: backend.name });
  const two = await RingGroup.create({ devices: 2, backend: backend.name });
  const ours = (s: Shape, group: RingGroup, reps: number) =>
    benchAttention({
      ...s,
      impl: group.devices === 1 ? 'blockwise' : 'ring',
      devices: group.devices,
      blockSize: BLOCK,
      // NOTE: striped balances causal work over the ring's devices (Striped Attention)
      layout: group.devices > 1 && s.causal ? 'striped' : 'contiguous',
      backward: true,
      check: false,
      backend: backend.name,
      seed: s.seqLen,
      repeats: reps,
      group,
    });
  // warm-up: threads, wasm kernels
  for (const g of [one, two]) await ours(shape(1, 2, 2, 64, 1024, false), g, 0);
  const rows = [];
  for (const s of shapes) {
    const reps = s.seqLen >= 16384 ? 1 : repeats;
    const load = loadavg()[0];
    const [t] = torchSdpa([{ ...s, repeats: reps }]);
    const b: AttentionBenchResult = await ours(s, one, reps);
    const r: AttentionBenchResult = await ours(s, two, reps);
    const bMs = b.fwdMs + (b.bwdMs ?? 0);
    const rMs = r.fwdMs + (r.bwdMs ?? 0);
    const row = {
      shape: s,
      label: label(s),
      load,
      torch: t,
      blockwise: { fwdMs: b.fwdMs, fwdBwdMs: bMs, fwdGflops: b.fwdGflops, fwdBwdGflops: b.fwdBwdGflops },
      ringN2: { fwdMs: r.fwdMs, fwdBwdMs: rMs, fwdBwdGflops: r.fwdBwdGflops },
      fwdVsTorch: t.fwdMs / b.fwdMs,
      fwdBwdVsTorch: t.fwdBwdMs / bMs,
      oneDeviceVsRingN2: rMs / bMs,
    };
    rows.push(row);
    process.stderr.write(
      `${row.label.padEnd(26)} torch ${t.fwdMs.toFixed(0)} / ${t.fwdBwdMs.toFixed(0)} ms  blockwise ${b.fwdMs.toFixed(0)} / ${bMs.toFixed(0)} ms  ring N=2 ${r.fwdMs.toFixed(0)} / ${rMs.toFixed(0)} ms  (load ${load.toFixed(1)})\n`,
    );
  }
  for (const g of [one, two]) await g.dispose();
  const min = (xs: number[]) => Math.min(...xs);
  const result = {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      node: process.version,
      backend: backend.name,
      kernels,
    },
    blockSize: BLOCK,
    targets: {
      minFwdVsTorch: min(rows.map((r) => r.fwdVsTorch)),
      minFwdBwdVsTorch: min(rows.map((r) => r.fwdBwdVsTorch)),
      minOneDeviceVsRingN2: min(rows.map((r) => r.oneDeviceVsRingN2)),
    },
    rows,
  };
  if (!only) writeFileAtomic(resolve(root, args.out), `${JSON.stringify(result, null, 2)}\n`);
  const f = (x: number) => x.toFixed(2);
  const ms = (a: number, b: number) => `${a.toFixed(0)} / ${b.toFixed(0)}`;
  const lines = [
    `ms forward / forward+backward; ${backend.name} backend, ${kernels}; ${result.machine.cpu}; torch ${rows[0]?.torch.torch} (${rows[0]?.torch.threads} threads, ${rows[0]?.torch.cpuCapability ?? '?'} kernels)`,
    '',
    '| shape (load) | PyTorch SDPA | blockwise, 1 device | ring N=2 | fwd ÷ torch | fwd+bwd ÷ torch | 1 device ÷ ring N=2 |',
    '|---|---|---|---|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.label} (${r.load.toFixed(1)}) | ${ms(r.torch.fwdMs, r.torch.fwdBwdMs)} | ${ms(r.blockwise.fwdMs, r.blockwise.fwdBwdMs)} | ${ms(r.ringN2.fwdMs, r.ringN2.fwdBwdMs)} | ${f(r.fwdVsTorch)}× | ${f(r.fwdBwdVsTorch)}× | ${f(r.oneDeviceVsRingN2)}× |`,
    ),
    '',
    `lowest: forward ${f(result.targets.minFwdVsTorch)}×, forward+backward ${f(result.targets.minFwdBwdVsTorch)}×, one device vs ring N=2 ${f(result.targets.minOneDeviceVsRingN2)}× (goals 1.0, 1.0, 0.9)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
