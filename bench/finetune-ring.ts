/**
 * ShareGPT finetuning on the ring (issue 22): the longest window one training step fits in a
 * per-device memory budget on 1 device (blockwise) and on ring N = 2, 4, 8 (worker-thread
 * devices), and the training tokens/s at that window. The model is sharegpt-finetune.yaml's
 * default (LLaMA vocabulary 32000, hidden 64, 2 layers, 4/2 heads, tied head, checkpointed
 * layers). Memory is the recipe's own check (issue 20): the probe's real peak (wasm heap, JS,
 * native; replica and AdamW's moments resident) + the step's gradient sum + the ring's receive
 * slots (lm/finetune-device.ts `finetuneRealBytesPerDevice`), each probe on fresh devices (a wasm
 * heap never shrinks); `--budget-on tensors` limits the tensor figure instead (probe's peak tensor
 * bytes + 16 B/parameter replica + slots, `finetuneBytesPerDevice`, the figure before issue 20).
 * Windows grow in steps of 64 tokens per device (the block size), doubling then bisecting to 1/8
 * of the window. `--steps 0` skips the timing.
 *
 *   npm run build && node dist/bench/finetune-ring.js [--budget-mib 256] [--budget-on real|tensors]
 *     [--devices 1,2,4,8] [--steps 3]
 *
 * Writes bench/results/finetune-ring.json (tensors) or finetune-ring-real.json (real) and prints a
 * Markdown table.
 */
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { RingGroup } from '../cluster/index.js';
import { Rng, writeFileAtomic } from '../common/index.js';
import {
  type FinetuneInitArgs,
  type FinetuneStepArgs,
  type FinetuneStepResult,
  finetuneBytesPerDevice,
  finetuneMessageFloats,
  finetuneRealBytesPerDevice,
  shardStep,
  type Window,
} from '../lm/finetune-device.js';
import { LlamaModel, type LlamaRuntime } from '../lm/index.js';
import { initBackend, type ProbedPeak, processPeakRssBytes } from '../native/index.js';
import { benchArgs } from './args.js';
import { packedWindow, sharegptDefaultModel } from './lm-config.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const args = benchArgs({
  script: 'finetune-ring',
  usage: [
    'npm run build && node dist/bench/finetune-ring.js [--budget-mib 256] [--budget-on real|tensors]',
    '  [--devices 1,2,4,8] [--steps 3]',
  ],
  options: {
    'budget-mib': { kind: 'number', default: 256, description: 'the memory budget per device, in MiB' },
    'budget-on': {
      kind: 'string',
      choices: ['real', 'tensors'],
      default: 'real',
      description:
        'what the budget limits: real memory (finetune-ring-real.json) or tensor bytes (finetune-ring.json)',
    },
    devices: {
      kind: 'list',
      of: 'number',
      integer: true,
      min: 1,
      default: [1, 2, 4, 8],
      description: 'device counts (1: blockwise, more: ring)',
    },
    steps: {
      kind: 'number',
      integer: true,
      min: 0,
      default: 3,
      description: 'timed training steps at the longest window (0 skips the timing)',
    },
    'max-per-device': {
      kind: 'number',
      integer: true,
      min: 1,
      default: 16384,
      description: 'the longest window per device tried, in tokens',
    },
  },
});
const budgetMiB = args['budget-mib'];
const deviceCounts = args.devices;
const steps = args.steps;
const budgetOn = args['budget-on'];
const maxPerDevice = args['max-per-device'];
const BLOCK = 64;
const BATCH = 1;
const config = sharegptDefaultModel(1 << 20);
const deviceModule = new URL('../lm/finetune-device.js', import.meta.url);

/** A packed window: conversations of 200–1200 tokens, loss on every next token in a segment. */
const window = (T: number, rng: Rng): Window => packedWindow(T, BATCH, config.vocabSize, rng);

await initBackend({ backend: 'wasm', notice: true });
const cpuModel = cpus()[0]?.model ?? 'unknown';
console.error(
  `bench finetune-ring: budget ${budgetMiB} MiB per device (${budgetOn}), ${cpuModel}, ${cpus().length} cores`,
);
const init = LlamaModel.init(config, new Rng(0), {
  attention: 'blockwise',
  blockSize: BLOCK,
  ffnChunk: BLOCK,
  checkpointLayers: true,
});
const weights = init.variables().map((v) => v.dataSync() as Float32Array);
const parameters = weights.reduce((s, w) => s + w.length, 0);
init.dispose();

interface Row {
  devices: number;
  attention: string;
  maxWindow: number;
  /** The figure the budget limits (real or tensors), and both. */
  mibPerDevice: number;
  realMibPerDevice: number;
  tensorMibPerDevice: number;
  tokensPerSec: number | null;
  stepMs: number | null;
  load: number;
}

/** What one probe measured, in MiB per device. */
interface Probe {
  realMib: number;
  tensorMib: number;
}
const rows: Row[] = [];
for (const N of deviceCounts) {
  const attention: LlamaRuntime['attention'] = N === 1 ? 'blockwise' : 'ring';
  const runtime: LlamaRuntime = { attention, blockSize: BLOCK, ffnChunk: BLOCK, checkpointLayers: true };
  const floatsFor = (T: number) => finetuneMessageFloats(config, BATCH, T, N, parameters);
  const initArgs: FinetuneInitArgs = { config, runtime, weights, beta1: 0.9, beta2: 0.95, weightDecay: 0.01 };
  const rng = new Rng(7);
  const argsFor = (T: number, lr: number): FinetuneStepArgs[] =>
    shardStep([window(T, rng)], { devices: N, batch: BATCH, seqLen: T, layout: 'striped', lr, clipNorm: 1 });
  /** N fresh devices holding the replica, sized for windows of T tokens. */
  const devicesFor = async (T: number) => {
    const group = await RingGroup.create({ devices: N, backend: 'wasm' });
    await group.run(deviceModule, 'initFinetune', Array(N).fill(initArgs), floatsFor(T));
    return group;
  };
  /** What a window of T tokens needs per device (the recipe's memory check), on fresh devices. */
  const need = async (T: number): Promise<Probe> => {
    const group = await devicesFor(T);
    try {
      const peaks = await group.run<FinetuneStepArgs, ProbedPeak>(
        deviceModule,
        'probeFinetune',
        argsFor(T, 0),
        floatsFor(T),
      );
      const comm = N > 1 ? group.commBytesPerDevice : 0;
      const real = finetuneRealBytesPerDevice(Math.max(...peaks.map((p) => p.realBytes)), parameters, comm);
      const tensors = finetuneBytesPerDevice(Math.max(...peaks.map((p) => p.tensorBytes)), parameters, comm);
      const probe = { realMib: real / 2 ** 20, tensorMib: tensors / 2 ** 20 };
      console.error(
        `  N=${N} T=${T}: ${probe.realMib.toFixed(1)} MiB per device real, ${probe.tensorMib.toFixed(1)} tensors`,
      );
      return probe;
    } finally {
      await group.dispose();
    }
  };
  const mibOf = (p: Probe) => (budgetOn === 'real' ? p.realMib : p.tensorMib);
  // c: tokens per device, in blocks; double while it fits, then bisect
  let fits = 0;
  let fitsProbe: Probe = { realMib: 0, tensorMib: 0 };
  let over = 0;
  for (let c = BLOCK; c <= maxPerDevice; c *= 2) {
    const p = await need(N * c);
    if (mibOf(p) > budgetMiB) {
      over = c;
      break;
    }
    fits = c;
    fitsProbe = p;
  }
  if (over === 0) over = fits * 2; // the cap was reached
  // NOTE: bisect to 1/8 of the window (or one block): each probe is a whole forward+backward
  while (fits > 0 && over - fits > Math.max(BLOCK, fits / 8)) {
    const mid = fits + Math.floor((over - fits) / 2 / BLOCK) * BLOCK;
    const p = await need(N * mid);
    if (mibOf(p) > budgetMiB) over = mid;
    else {
      fits = mid;
      fitsProbe = p;
    }
  }
  const T = N * fits;
  let ms: number | null = null;
  if (steps > 0 && T > 0) {
    const group = await devicesFor(T);
    try {
      const times: number[] = [];
      for (let s = 0; s <= steps; s++) {
        const args = argsFor(T, 1e-3);
        const t0 = performance.now();
        await group.run<FinetuneStepArgs, FinetuneStepResult>(
          deviceModule,
          'finetuneStep',
          args,
          floatsFor(T),
        );
        if (s > 0) times.push(performance.now() - t0); // the first step warms up
      }
      ms = Math.min(...times);
    } finally {
      await group.dispose();
    }
  }
  const row: Row = {
    devices: N,
    attention,
    maxWindow: T,
    mibPerDevice: Number(mibOf(fitsProbe).toFixed(1)),
    realMibPerDevice: Number(fitsProbe.realMib.toFixed(1)),
    tensorMibPerDevice: Number(fitsProbe.tensorMib.toFixed(1)),
    tokensPerSec: ms === null ? null : Math.round((BATCH * T) / (ms / 1000)),
    stepMs: ms === null ? null : Math.round(ms),
    load: Number(loadavg()[0].toFixed(2)),
  };
  rows.push(row);
  console.error(
    `N=${N}: max window ${T} tokens (${row.realMibPerDevice} MiB/device real, ${row.tensorMibPerDevice} tensors), ${row.tokensPerSec ?? '–'} tokens/s`,
  );
}

const result = {
  benchmark: 'sharegpt-finetune: longest window per device budget and training tokens/s (one step, B=1)',
  budgetMiBPerDevice: budgetMiB,
  budgetOn,
  memory:
    budgetOn === 'real'
      ? 'real: probe real peak (wasm heap, JS, native) of one forward+backward on fresh devices + 4 B/parameter gradient sum + ring receive slots'
      : 'tensor bytes: probe peak of one forward+backward + 16 B/parameter replica + ring receive slots',
  processPeakRssMib: Math.round((processPeakRssBytes() ?? 0) / 2 ** 20),
  machine: { cpus: cpus().length, model: cpuModel },
  model: { ...config, parameters },
  blockSize: BLOCK,
  steps,
  rows,
  date: new Date().toISOString(),
};
const out = budgetOn === 'real' ? 'finetune-ring-real.json' : 'finetune-ring.json';
writeFileAtomic(`${root}/bench/results/${out}`, `${JSON.stringify(result, null, 2)}\n`);
console.log(
  `| devices | attention | longest window (tokens) | real MiB/device | tensor MiB/device | tokens/s | step ms | load |`,
);
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows)
  console.log(
    `| ${r.devices} | ${r.attention} | ${r.maxWindow} | ${r.realMibPerDevice} | ${r.tensorMibPerDevice} | ${r.tokensPerSec ?? '–'} | ${r.stepMs ?? '–'} | ${r.load} |`,
  );
