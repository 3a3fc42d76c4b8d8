/**
 * ShareGPT finetuning on the ring (issue 22): the longest window one training step fits in a
 * per-device memory budget on 1 device (blockwise) and on ring N = 2, 4, 8 (worker-thread
 * devices), and the training tokens/s at that window. The model is sharegpt-finetune.yaml's
 * default (LLaMA vocabulary 32000, hidden 64, 2 layers, 4/2 heads, tied head, checkpointed
 * layers); memory is the recipe's tensor figure (lm/finetune-device.ts `finetuneBytesPerDevice`:
 * the probe's peak tensor bytes + the replica + the ring's receive slots), not the real memory the
 * recipe's budget checks since issue 20: this search reuses its devices, whose wasm heaps keep the
 * high-water of an earlier, bigger probe. Windows grow in steps
 * of 64 tokens per device (the block size), doubling then bisecting to 1/8 of the window.
 *
 *   npm run build && node dist/bench/finetune-ring.js [--budget-mib 256] [--devices 1,2,4,8] [--steps 3]
 *
 * Writes bench/results/finetune-ring.json and prints a Markdown table.
 */
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Rng, writeFileAtomic } from '../common/index.js';
import {
  type FinetuneInitArgs,
  type FinetuneStepArgs,
  type FinetuneStepResult,
  finetuneBytesPerDevice,
  finetuneMessageFloats,
  shardStep,
  type Window,
} from '../lm/finetune-device.js';
import { LlamaModel, type LlamaRuntime } from '../lm/index.js';
import { sharegptDefaultModel } from './lm-config.js';
import { initBackend, type ProbedPeak, RingGroup } from '../ring/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const argv = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const budgetMiB = Number(arg('--budget-mib', '256'));
const deviceCounts = arg('--devices', '1,2,4,8').split(',').map(Number);
const steps = Number(arg('--steps', '3'));
const maxPerDevice = Number(arg('--max-per-device', '16384'));
const BLOCK = 64;
const BATCH = 1;
const config = sharegptDefaultModel(1 << 20);
const deviceModule = new URL('../lm/finetune-device.js', import.meta.url);

/** A packed window: conversations of 200–1200 tokens, loss on every next token in a segment. */
function window(T: number, rng: Rng): Window {
  const tokens = Int32Array.from({ length: BATCH * T }, () => 3 + rng.int(config.vocabSize - 3));
  const segmentIds = new Int32Array(BATCH * T);
  const targets = new Int32Array(BATCH * T).fill(-100);
  for (let b = 0; b < BATCH; b++) {
    let seg = 0;
    let left = 200 + rng.int(1000);
    for (let t = 0; t < T; t++) {
      if (left-- === 0) {
        seg++;
        left = 200 + rng.int(1000);
      }
      segmentIds[b * T + t] = seg;
    }
    for (let t = 0; t + 1 < T; t++)
      if (segmentIds[b * T + t] === segmentIds[b * T + t + 1]) targets[b * T + t] = tokens[b * T + t + 1];
  }
  return { tokens, targets, segmentIds };
}

await initBackend({ backend: 'wasm', notice: true });
const cpuModel = cpus()[0]?.model ?? 'unknown';
console.error(`bench finetune-ring: budget ${budgetMiB} MiB per device, ${cpuModel}, ${cpus().length} cores`);
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
  mibPerDevice: number;
  tokensPerSec: number;
  stepMs: number;
  load: number;
}
const rows: Row[] = [];
for (const N of deviceCounts) {
  const attention: LlamaRuntime['attention'] = N === 1 ? 'blockwise' : 'ring';
  const runtime: LlamaRuntime = { attention, blockSize: BLOCK, ffnChunk: BLOCK, checkpointLayers: true };
  const group = await RingGroup.create({ devices: N, backend: 'wasm' });
  const floatsFor = (T: number) => finetuneMessageFloats(config, BATCH, T, N, parameters);
  const initArgs: FinetuneInitArgs = { config, runtime, weights, beta1: 0.9, beta2: 0.95, weightDecay: 0.01 };
  const rng = new Rng(7);
  const argsFor = (T: number, lr: number): FinetuneStepArgs[] =>
    shardStep([window(T, rng)], { devices: N, batch: BATCH, seqLen: T, layout: 'striped', lr, clipNorm: 1 });
  try {
    await group.run(deviceModule, 'initFinetune', Array(N).fill(initArgs), floatsFor(N * BLOCK));
    /** MiB of tensors per device that a window of T tokens needs. */
    const need = async (T: number) => {
      const peaks = await group.run<FinetuneStepArgs, ProbedPeak>(
        deviceModule,
        'probeFinetune',
        argsFor(T, 0),
        floatsFor(T),
      );
      const tensorBytes = Math.max(...peaks.map((p) => p.tensorBytes));
      return finetuneBytesPerDevice(tensorBytes, parameters, N > 1 ? group.commBytesPerDevice : 0) / 2 ** 20;
    };
    // c: tokens per device, in blocks; double while it fits, then bisect
    let fits = 0;
    let fitsMiB = 0;
    let over = 0;
    for (let c = BLOCK; c <= maxPerDevice; c *= 2) {
      const mib = await need(N * c);
      console.error(`  N=${N} T=${N * c}: ${mib.toFixed(1)} MiB per device`);
      if (mib > budgetMiB) {
        over = c;
        break;
      }
      fits = c;
      fitsMiB = mib;
    }
    if (over === 0) over = fits * 2; // the cap was reached
    // NOTE: bisect to 1/8 of the window (or one block): each probe is a whole forward+backward
    while (over - fits > Math.max(BLOCK, fits / 8)) {
      const mid = fits + Math.floor((over - fits) / 2 / BLOCK) * BLOCK;
      const mib = await need(N * mid);
      console.error(`  N=${N} T=${N * mid}: ${mib.toFixed(1)} MiB per device`);
      if (mib > budgetMiB) over = mid;
      else {
        fits = mid;
        fitsMiB = mib;
      }
    }
    const T = N * fits;
    const times: number[] = [];
    for (let s = 0; s <= steps; s++) {
      const args = argsFor(T, 1e-3);
      const t0 = performance.now();
      await group.run<FinetuneStepArgs, FinetuneStepResult>(deviceModule, 'finetuneStep', args, floatsFor(T));
      if (s > 0) times.push(performance.now() - t0); // the first step warms up
    }
    const ms = Math.min(...times);
    const row: Row = {
      devices: N,
      attention,
      maxWindow: T,
      mibPerDevice: Number(fitsMiB.toFixed(1)),
      tokensPerSec: Math.round((BATCH * T) / (ms / 1000)),
      stepMs: Math.round(ms),
      load: Number(loadavg()[0].toFixed(2)),
    };
    rows.push(row);
    console.error(
      `N=${N}: max window ${T} tokens (${row.mibPerDevice} MiB/device), ${row.tokensPerSec} tokens/s`,
    );
  } finally {
    await group.dispose();
  }
}

const result = {
  benchmark: 'sharegpt-finetune: longest window per device budget and training tokens/s (one step, B=1)',
  budgetMiBPerDevice: budgetMiB,
  memory: 'tensor bytes: probe peak of one forward+backward + 16 B/parameter replica + ring receive slots',
  machine: { cpus: cpus().length, model: cpuModel },
  model: { ...config, parameters },
  blockSize: BLOCK,
  steps,
  rows,
  date: new Date().toISOString(),
};
writeFileAtomic(`${root}/bench/results/finetune-ring.json`, `${JSON.stringify(result, null, 2)}\n`);
console.log(`| devices | attention | longest window (tokens) | MiB/device | tokens/s | step ms | load |`);
console.log('|---|---|---|---|---|---|---|');
for (const r of rows)
  console.log(
    `| ${r.devices} | ${r.attention} | ${r.maxWindow} | ${r.mibPerDevice} | ${r.tokensPerSec} | ${r.stepMs} | ${r.load} |`,
  );
