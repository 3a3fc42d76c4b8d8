/**
 * Attention benchmark (issue 2): every implementation at L = 512, 1K, 2K, … forward and
 * forward+backward, until its per-device memory (what a device really holds at its peak, ring
 * receive buffers included; issue 20) exceeds a budget; PyTorch CPU scaled_dot_product_attention on the same shapes in the same run
 * as the anchor. Writes bench/results/attention.json and prints a Markdown table.
 *
 *   npm run build && node dist/bench/attention.js [--budget-mib 64] [--max-len 8192] [--no-torch]
 *
 * `--native` runs the fast-path table of issue 7 instead: blockwise and ring N=2 on the native
 * kernels (and the tfjs kernels, RING_NATIVE=0, where they finish in reasonable time) against
 * PyTorch's SDPA at B1 H8 D64, L = 2K, 4K, 16K, causal and not, and writes
 * bench/results/attention-native.json. `--lengths 2048,4096` narrows it.
 *
 * `--memory` runs the memory table of issue 20 instead: `exp bench attention --backward --json`
 * in a process of its own per (method, L), as a user runs it, and tabulates each device's peak
 * tensor bytes, its real peak (wasm heap + JS + native buffers + receive buffers), an idle
 * device's figure (the runtime's fixed cost) and the process's peak RSS; writes
 * bench/results/attention-memory.json. Memory does not depend on the machine's load; the
 * timings in it do. `--lengths 4096,16384` sets the lengths (vanilla and memeff run at 2048).
 */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { RingGroup, RingGroupPool } from '../cluster/index.js';
import { writeFileAtomic } from '../common/index.js';
import { type AttentionBenchResult, benchAttention } from '../experiments/bench/attention.js';
import { configureNative, initBackend } from '../native/index.js';
import type { AttentionImpl } from '../ring/index.js';
import { benchArgs } from './args.js';
import { nativeKernels, type TorchRow, torchSdpa } from './torch-sdpa.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const args = benchArgs({
  script: 'attention',
  usage: [
    'npm run build && node dist/bench/attention.js [--budget-mib 64] [--max-len 8192] [--no-torch]',
    'node dist/bench/attention.js --native [--lengths 2048,4096,16384]   (issue 7: attention-native.json)',
    'node dist/bench/attention.js --memory [--lengths 4096,16384]        (issue 20: attention-memory.json)',
  ],
  options: {
    'budget-mib': {
      kind: 'number',
      default: 64,
      description: 'per-device memory budget in MiB (real peak, receive buffers included)',
    },
    'max-len': { kind: 'number', integer: true, min: 1, default: 8192, description: 'the longest L tried' },
    'no-torch': { kind: 'boolean', description: "skip PyTorch's SDPA anchor (the default table only)" },
    native: {
      kind: 'boolean',
      description: 'run the fast-path table instead (native kernels against PyTorch)',
    },
    memory: {
      kind: 'boolean',
      description: 'run the memory table instead (one `exp bench attention` per method and L)',
    },
    lengths: {
      kind: 'list',
      of: 'number',
      integer: true,
      min: 1,
      defaultText: '2048,4096,16384 with --native, 4096,16384 with --memory',
      description: 'the lengths of the --native or --memory table',
    },
  },
});
const budgetBytes = args['budget-mib'] * 2 ** 20;
const maxLen = args['max-len'];
const withTorch = !args['no-torch'];
const shape = { batch: 1, heads: 8, kvHeads: 8, headDim: 64, blockSize: 512 };
/**
 * Every implementation runs up to this length for the throughput table, whatever the budget;
 * blockwise and ring run one step further, where the ring's per-step costs are amortised
 * (vanilla there needs several GB, past the wasm heap).
 */
const THROUGHPUT_UP_TO: Record<AttentionImpl, number> = {
  vanilla: 2048,
  memeff: 2048,
  blockwise: 4096,
  ring: 4096,
};

interface Config {
  label: string;
  impl: AttentionImpl;
  devices: number;
}
const CONFIGS: Config[] = [
  { label: 'vanilla', impl: 'vanilla', devices: 1 },
  { label: 'memeff', impl: 'memeff', devices: 1 },
  { label: 'blockwise', impl: 'blockwise', devices: 1 },
  { label: 'ring N=2', impl: 'ring', devices: 2 },
  { label: 'ring N=4', impl: 'ring', devices: 4 },
];

interface Row extends AttentionBenchResult {
  label: string;
  bytesPerDevice: number;
  withinBudget: boolean;
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

async function main(): Promise<void> {
  const backend = await initBackend({ notice: true });
  const rows: Row[] = [];
  const maxContext: Record<string, number> = {};
  const groups = new RingGroupPool(backend.name);
  const run = async (
    c: Config,
    seqLen: number,
    causal: boolean,
    layout: 'contiguous' | 'striped' = 'contiguous',
  ) => {
    const r = await benchAttention({
      ...shape,
      impl: c.impl,
      devices: c.devices,
      seqLen,
      causal,
      layout,
      backward: true,
      check: false,
      backend: backend.name,
      seed: seqLen,
      // best of 3 where the throughput targets are read, one run beyond
      repeats: seqLen <= THROUGHPUT_UP_TO[c.impl] ? 2 : 0,
      group: await groups.get(c.devices),
    });
    // NOTE: the real figure (issue 20): the ring's receive buffers are already in it
    const bytesPerDevice = r.peakBytesPerDevice;
    const row: Row = {
      ...r,
      label: c.label + (causal ? ` causal ${layout}` : ''),
      bytesPerDevice,
      withinBudget: bytesPerDevice <= budgetBytes,
    };
    rows.push(row);
    log(
      `${row.label.padEnd(28)} L=${String(seqLen).padStart(5)} fwd ${r.fwdGflops.toFixed(2).padStart(6)} GFLOP/s  fwd+bwd ${r.fwdBwdGflops!.toFixed(2).padStart(6)} GFLOP/s  ${(bytesPerDevice / 2 ** 20).toFixed(1).padStart(7)} MiB/device${row.withinBudget ? '' : ' (over budget)'}`,
    );
    return row;
  };

  for (const c of CONFIGS) {
    // warm-up: wasm compiles its kernels on first use
    await benchAttention({
      ...shape,
      impl: c.impl,
      devices: c.devices,
      seqLen: 256,
      causal: false,
      layout: 'contiguous',
      backward: true,
      check: false,
      backend: backend.name,
      seed: 0,
      repeats: 0,
      group: await groups.get(c.devices),
    });
    maxContext[c.label] = 0;
    for (let L = 512; L <= maxLen; L *= 2) {
      const row = await run(c, L, false);
      if (row.withinBudget) maxContext[c.label] = L;
      if (!row.withinBudget && L >= THROUGHPUT_UP_TO[c.impl]) break;
    }
  }
  // causal: contiguous blocks leave device 0 idle most of the time; striped balances it
  const causalRows = [
    await run(CONFIGS[2], 2048, true),
    await run(CONFIGS[3], 2048, true, 'contiguous'),
    await run(CONFIGS[3], 2048, true, 'striped'),
  ];
  await groups.dispose();

  // PyTorch anchor on the same shapes, same run
  const lengths = [...new Set(rows.map((r) => r.seqLen))].sort((a, b) => a - b);
  const torch: TorchRow[] = withTorch
    ? torchSdpa([
        ...lengths.map((L) => ({ ...shape, seqLen: L, causal: false })),
        { ...shape, seqLen: 2048, causal: true },
      ])
    : [];
  const torchFor = (L: number, causal: boolean) => torch.find((t) => t.seqLen === L && t.causal === causal);
  const flops = (L: number, causal: boolean) =>
    4 * shape.batch * shape.heads * L * L * shape.headDim * (causal ? 0.5 : 1);
  const withAnchor = rows.map((r) => {
    const t = torchFor(r.seqLen, r.causal);
    const torchFwd = t ? flops(r.seqLen, r.causal) / (t.fwdMs * 1e6) : undefined;
    const torchFwdBwd = t ? (3.5 * flops(r.seqLen, r.causal)) / (t.fwdBwdMs * 1e6) : undefined;
    return {
      ...r,
      torchFwdGflops: torchFwd,
      torchFwdBwdGflops: torchFwdBwd,
      ratioFwdVsTorch: torchFwd ? r.fwdGflops / torchFwd : undefined,
      ratioFwdBwdVsTorch: torchFwdBwd ? r.fwdBwdGflops! / torchFwdBwd : undefined,
    };
  });

  // throughput targets (issue 2) on the same problem in the same run
  const at = (label: string, L: number) => rows.find((r) => r.label === label && r.seqLen === L && !r.causal);
  const ratio = (a: string, b: string, L: number) => {
    const x = at(a, L);
    const y = at(b, L);
    return x && y ? x.fwdBwdGflops! / y.fwdBwdGflops! : undefined;
  };
  const targets = {
    ringN4MaxContextVsBlockwise: maxContext['ring N=4'] / Math.max(1, maxContext.blockwise),
    ringN2FwdBwdVsBlockwise2K: ratio('ring N=2', 'blockwise', 2048),
    ringN2FwdBwdVsBlockwise4K: ratio('ring N=2', 'blockwise', 4096),
    blockwiseFwdBwdVsVanilla2K: ratio('blockwise', 'vanilla', 2048),
    stripedVsContiguousCausalN2:
      causalRows[1].fwdMs + causalRows[1].bwdMs! > 0
        ? (causalRows[1].fwdMs + causalRows[1].bwdMs!) / (causalRows[2].fwdMs + causalRows[2].bwdMs!)
        : undefined,
  };
  const result = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, backend: backend.name },
    shape,
    budgetBytes,
    maxContext,
    targets,
    rows: withAnchor,
    torch,
  };
  writeFileAtomic(`${root}/bench/results/attention.json`, `${JSON.stringify(result, null, 2)}\n`);

  const g = (x: number | undefined) => (x === undefined ? '–' : x.toFixed(2));
  const lines = [
    `B=${shape.batch} H=${shape.heads} D=${shape.headDim} C=${shape.blockSize}, ${backend.name} backend, budget ${budgetBytes / 2 ** 20} MiB/device, ${result.machine.cpu}`,
    '',
    '| implementation | L | fwd GFLOP/s | fwd+bwd GFLOP/s | MiB/device | PyTorch fwd | PyTorch fwd+bwd | fwd+bwd vs PyTorch |',
    '|---|---|---|---|---|---|---|---|',
    ...withAnchor.map(
      (r) =>
        `| ${r.label} | ${r.seqLen} | ${g(r.fwdGflops)} | ${g(r.fwdBwdGflops)} | ${(r.bytesPerDevice / 2 ** 20).toFixed(1)}${r.withinBudget ? '' : ' (over)'} | ${g(r.torchFwdGflops)} | ${g(r.torchFwdBwdGflops)} | ${g(r.ratioFwdBwdVsTorch)}× |`,
    ),
    '',
    `max context within budget: ${Object.entries(maxContext)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `targets: ${JSON.stringify(targets)}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * The fast-path table (issue 7): per (L, mask), PyTorch first, then native blockwise, native
 * ring N=2 and (up to 4K) the tfjs kernels, back to back, with the load average of each row.
 * Targets: native blockwise fwd+bwd ≥ 1.0× PyTorch; ring N=2 ≥ 0.9× blockwise.
 */
async function nativeTable(): Promise<void> {
  const lengths = args.lengths ?? [2048, 4096, 16384];
  const backend = await initBackend({ notice: true });
  const kernels = nativeKernels(backend, 'bench --native');
  const one = await RingGroup.create({ devices: 1, backend: backend.name });
  const two = await RingGroup.create({ devices: 2, backend: backend.name });
  configureNative({ enabled: false }); // groups take the main thread's settings when they start
  const tfjsOne = await RingGroup.create({ devices: 1, backend: backend.name });
  configureNative({ enabled: undefined });
  const nativeShape = { ...shape, blockSize: 512 };
  type NativeRow = AttentionBenchResult & { label: string; load: number; torchRatio?: number };
  const rows: NativeRow[] = [];
  const torchRows: (TorchRow & { load: number })[] = [];
  const bench = async (label: string, impl: AttentionImpl, group: RingGroup, L: number, causal: boolean) => {
    const r = await benchAttention({
      ...nativeShape,
      impl,
      devices: group.devices,
      seqLen: L,
      causal,
      // NOTE: striped balances causal work over the ring's devices (Striped Attention)
      layout: impl === 'ring' && causal ? 'striped' : 'contiguous',
      backward: true,
      check: false,
      backend: backend.name,
      seed: L,
      repeats: L >= 16384 ? 1 : 2,
      group,
    });
    const row: NativeRow = { ...r, label, load: loadavg()[0] };
    rows.push(row);
    log(
      `${label.padEnd(24)} L=${String(L).padStart(5)}${causal ? ' causal' : '       '} fwd ${r.fwdMs.toFixed(0).padStart(6)} ms  fwd+bwd ${(r.fwdMs + r.bwdMs!).toFixed(0).padStart(6)} ms  ${r.fwdBwdGflops!.toFixed(1).padStart(6)} GFLOP/s  load ${row.load.toFixed(1)}`,
    );
    return row;
  };
  // warm-up of every group (first calls compile wasm kernels, spawn threads)
  for (const [impl, g] of [
    ['blockwise', one],
    ['ring', two],
    ['blockwise', tfjsOne],
  ] as const)
    await benchAttention({
      ...nativeShape,
      impl,
      devices: g.devices,
      seqLen: 512,
      causal: false,
      layout: 'contiguous',
      backward: true,
      check: false,
      backend: backend.name,
      seed: 0,
      repeats: 0,
      group: g,
    });
  for (const L of lengths) {
    for (const causal of [false, true]) {
      const [t] = torchSdpa([{ ...shape, seqLen: L, causal, repeats: L >= 16384 ? 1 : 2 }]);
      torchRows.push({ ...t, load: loadavg()[0] });
      log(
        `${'PyTorch SDPA'.padEnd(24)} L=${String(L).padStart(5)}${causal ? ' causal' : '       '} fwd ${t.fwdMs.toFixed(0).padStart(6)} ms  fwd+bwd ${t.fwdBwdMs.toFixed(0).padStart(6)} ms  (torch ${t.torch}, ${t.threads} threads)`,
      );
      for (const row of [
        await bench('native blockwise', 'blockwise', one, L, causal),
        await bench('native ring N=2', 'ring', two, L, causal),
        ...(L <= 4096 ? [await bench('tfjs blockwise', 'blockwise', tfjsOne, L, causal)] : []),
      ])
        row.torchRatio = t.fwdBwdMs / (row.fwdMs + row.bwdMs!);
    }
  }
  for (const g of [one, two, tfjsOne]) await g.dispose();
  const find = (label: string, L: number, causal: boolean) =>
    rows.find((r) => r.label === label && r.seqLen === L && r.causal === causal);
  const targets: Record<string, number | undefined> = {};
  for (const L of lengths)
    for (const causal of [false, true]) {
      const key = `L${L}${causal ? 'causal' : ''}`;
      const b = find('native blockwise', L, causal);
      const r = find('native ring N=2', L, causal);
      targets[`blockwiseVsTorch_${key}`] = b?.torchRatio;
      targets[`ringN2VsBlockwise_${key}`] = b && r ? (b.fwdMs + b.bwdMs!) / (r.fwdMs + r.bwdMs!) : undefined;
    }
  const result = {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      node: process.version,
      backend: backend.name,
      kernels,
    },
    shape: nativeShape,
    targets,
    rows,
    torch: torchRows,
  };
  writeFileAtomic(`${root}/bench/results/attention-native.json`, `${JSON.stringify(result, null, 2)}\n`);
  const ms = (r: { fwdMs: number; bwdMs?: number } | undefined) =>
    r ? `${r.fwdMs.toFixed(0)} / ${(r.fwdMs + (r.bwdMs ?? 0)).toFixed(0)}` : '—';
  const lines = [
    `B=${shape.batch} H=${shape.heads} D=${shape.headDim}, ms forward / forward+backward, ${backend.name} backend, ${kernels}, ${result.machine.cpu}`,
    '',
    '| L, mask (load) | PyTorch SDPA | native blockwise | native ring N=2 | tfjs blockwise | blockwise vs PyTorch | ring N=2 vs blockwise |',
    '|---|---|---|---|---|---:|---:|',
    ...lengths.flatMap((L) =>
      [false, true].map((causal) => {
        const t = torchRows.find((x) => x.seqLen === L && x.causal === causal);
        const b = find('native blockwise', L, causal);
        const key = `L${L}${causal ? 'causal' : ''}`;
        return `| ${L >= 1024 ? `${L / 1024}K` : L}${causal ? ' causal' : ''} (${b?.load.toFixed(1)}) | ${t ? `${t.fwdMs.toFixed(0)} / ${t.fwdBwdMs.toFixed(0)}` : '—'} | ${ms(b)} | ${ms(find('native ring N=2', L, causal))} | ${ms(find('tfjs blockwise', L, causal))} | ${targets[`blockwiseVsTorch_${key}`]?.toFixed(2) ?? '—'}× | ${targets[`ringN2VsBlockwise_${key}`]?.toFixed(2) ?? '—'}× |`;
      }),
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** The memory table (issue 20): one `exp bench attention` process per (method, L). */
async function memoryTable(): Promise<void> {
  const lengths = args.lengths ?? [4096, 16384];
  const cpu = cpus()[0]?.model;
  const rows: (AttentionBenchResult & { label: string; native: boolean })[] = [];
  const configs = [
    ...CONFIGS.map((c) => ({ ...c, native: true })),
    { label: 'blockwise (RING_NATIVE=0)', impl: 'blockwise' as const, devices: 1, native: false },
  ];
  for (const c of configs) {
    // vanilla's (H, L, L) scores pass the wasm heap's 4 GiB soon after 2K; the tfjs kernels take
    // minutes past 4K on 2 cores
    const only = c.impl === 'vanilla' || c.impl === 'memeff' ? 2048 : c.native ? Infinity : 4096;
    for (const L of [...new Set(lengths.map((x) => Math.min(x, only)))]) {
      // NOTE: no warm-up call (--repeats 0): memory is the point here, and a timed repeat doubles the time
      const args = ['bench', 'attention', '--json', '--backward', '--repeats', '0', '--impl', c.impl];
      args.push('--seq-len', String(L));
      args.push(
        '--heads',
        String(shape.heads),
        '--head-dim',
        String(shape.headDim),
        '--devices',
        String(c.devices),
      );
      const res = spawnSync(process.execPath, [`${root}/bin/exp.js`, ...args], {
        encoding: 'utf8',
        env: { ...process.env, RING_NATIVE: c.native ? '1' : '0' },
        maxBuffer: 1 << 24,
      });
      if (res.status !== 0) throw new Error(`bench --memory: exp ${args.join(' ')} failed: ${res.stderr}`);
      const r = JSON.parse(res.stdout.trim().split('\n').at(-1)!) as AttentionBenchResult;
      rows.push({ ...r, label: c.label, native: c.native });
      const mib = (x: number | undefined) => (x === undefined ? '–' : (x / 2 ** 20).toFixed(0));
      log(
        `${c.label.padEnd(26)} L=${String(L).padStart(5)} tensors ${mib(r.peakTensorBytesPerDevice)} MiB, real ${mib(r.peakBytesPerDevice)} MiB/device, process RSS ${mib(r.processPeakRssBytes)} MiB`,
      );
    }
  }
  const result = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu, node: process.version, load: loadavg()[0] },
    shape,
    rows,
  };
  writeFileAtomic(`${root}/bench/results/attention-memory.json`, `${JSON.stringify(result, null, 2)}\n`);
  const mib = (x: number | undefined) => (x === undefined ? '–' : (x / 2 ** 20).toFixed(0));
  const lines = [
    `B=${shape.batch} H=${shape.heads} D=${shape.headDim}, forward+backward, ${cpu}`,
    '',
    '| method | tokens | tensor bytes (MiB/device) | real peak (MiB/device) | idle device (MiB) | real ÷ (tensors + idle) | process peak RSS (MiB) |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.seqLen} | ${mib(r.peakTensorBytesPerDevice)} | ${mib(r.peakBytesPerDevice)} | ${mib(r.idleBytesPerDevice)} | ${(r.peakBytesPerDevice / (r.peakTensorBytesPerDevice + r.idleBytesPerDevice)).toFixed(2)} | ${mib(r.processPeakRssBytes)} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (args.native) await nativeTable();
else if (args.memory) await memoryTable();
else await main();
