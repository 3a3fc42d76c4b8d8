/**
 * Table 4 in miniature (issue 17 item 4; paper Table 4): what the ring costs against BPT in
 * throughput and model FLOPs utilisation, at equal tokens per device, on this machine's cores.
 *
 * The step is the one users train: the ShareGPT finetune step (lm/finetune-device.ts) of the
 * sharegpt-finetune default model (bench/lm-config.ts), with the recipe's runtime (block 64,
 * blockwise FFN, checkpointed layers, striped layout), AdamW and clipping.
 * - BPT: blockwise attention, C data-parallel devices (C = --cores), each its own window of c
 *   tokens (c = --tokens-per-device); the gradients are all-reduced over the devices as the
 *   ring's replicas do, with the loss normalised over all C windows.
 * - ring N: one window of N·c tokens split over N devices (ring attention, N = --devices).
 * Every device runs its native kernels on 1 thread, and the group has C compute slots
 * (RingGroup `computeSlots`): at most C devices compute at once, a device waiting on its neighbour
 * gives its core up, so ring N = 4, 8 take turns on the C cores instead of oversubscribing them.
 *
 * MFU = model FLOPs per second (lm/flops.ts: 6·W·tokens + 12·layers·d·T(T+1)/2, causal) over
 * the peak of the cores the row can use, min(devices, C) × the per-core peak: a 1024² matmul on a
 * device at 1 thread, measured in the same run before and after the rows (the higher is used; a
 * drop between them says the machine was not idle). The ring's cost is BPT's MFU − the ring's,
 * in points, as the paper reports it. (`mfuOfAllCores` in the JSON divides by all C cores
 * instead: the same for every row but ring N = 1, which computes on one.) Step times are the
 * median of --steps steps after one warm-up.
 *
 *   npm run build && node dist/bench/ring-cost.js [--tokens-per-device 1024] [--devices 1,2,4,8]
 *     [--steps 3] [--cores 2] [--out bench/results/ring-cost.json]
 *
 * Writes the JSON atomically and prints a Markdown table; the CPU model, the 1-minute load
 * average before and after each row and the share of the cores other processes used during its
 * steps go to stderr and into the table. Run it on an idle machine: those columns show whether
 * it was.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RingGroup } from '../cluster/index.js';
import { errorMessage, Rng, writeFileAtomic } from '../common/index.js';
import {
  type FinetuneInitArgs,
  type FinetuneStepArgs,
  type FinetuneStepResult,
  finetuneMessageFloats,
  shardStep,
} from '../lm/finetune-device.js';
import {
  FINETUNE_DEFAULTS,
  finetuneRuntime,
  LlamaModel,
  type LlamaRuntime,
  llamaTrainingFlops,
} from '../lm/index.js';
import { linePlotSvg } from '../experiments/plot/svg.js';
import { environmentTags, openStore, RunTracker } from '../experiments/tracking/index.js';
import { configureNative, initBackend } from '../native/index.js';
import { BenchArgError, benchArgs } from './args.js';
import { packedWindow, sharegptDefaultModel } from './lm-config.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const block = FINETUNE_DEFAULTS.blockSize;
const machineCores = availableParallelism();
const args = benchArgs(
  {
    script: 'ring-cost',
    usage: [
      'npm run build && node dist/bench/ring-cost.js [--tokens-per-device 1024] [--devices 1,2,4,8]',
      '  [--steps 3] [--cores 2] [--out bench/results/ring-cost.json]',
      '  [--tracking-uri URI [--experiment table4-ring-cost]]',
    ],
    options: {
      'tokens-per-device': {
        kind: 'number',
        integer: true,
        min: 1,
        default: 1024,
        description: `tokens each device holds (c), a multiple of the block size ${block}`,
      },
      devices: {
        kind: 'list',
        of: 'number',
        integer: true,
        min: 1,
        default: [1, 2, 4, 8],
        description: 'the ring sizes N to measure (a window of N·c tokens each)',
      },
      steps: {
        kind: 'number',
        integer: true,
        min: 1,
        default: 3,
        description: 'timed steps per row (median)',
      },
      cores: {
        kind: 'number',
        integer: true,
        min: 1,
        default: machineCores,
        defaultText: `this machine's cores, ${machineCores}`,
        description: "compute slots C: BPT's data-parallel devices, and the cores the ring shares",
      },
      out: {
        kind: 'string',
        placeholder: 'FILE',
        defaultText: 'bench/results/ring-cost.json',
        description: 'where the JSON goes (written atomically)',
      },
      'tracking-uri': {
        kind: 'string',
        placeholder: 'URI',
        description:
          'also log the table as one MLflow run (a server URL or a file-store folder): metrics result/<row>/…, tables/table4.arrow, plots/table4-mfu.svg; notebook section 9 reads it',
      },
      experiment: {
        kind: 'string',
        placeholder: 'NAME',
        default: 'table4-ring-cost',
        description: 'with --tracking-uri: the MLflow experiment',
      },
    },
  },
  (a) => {
    if (a['tokens-per-device'] % block !== 0)
      throw new BenchArgError(
        `--tokens-per-device is not a multiple of the block size ${block}`,
        `a multiple of ${block}`,
        String(a['tokens-per-device']),
      );
    if (a.cores > machineCores)
      throw new BenchArgError(
        `--cores ${a.cores} exceeds this machine's ${machineCores} cores, which would oversubscribe them`,
        `at most ${machineCores}`,
        String(a.cores),
      );
  },
);
const c = args['tokens-per-device'];
const { cores } = args;
const out = resolve(args.out ?? `${root}/bench/results/ring-cost.json`);
const BATCH = 1;
const PEAK = { size: 1024, repeats: 3 };
const config = sharegptDefaultModel(1 << 20);
const deviceModule = new URL('../lm/finetune-device.js', import.meta.url);
const peakModule = new URL('../experiments/recipes/context-scaling-device.js', import.meta.url);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const load = () => Number(loadavg()[0].toFixed(2));

/** Seconds of CPU the whole machine has been busy (Linux /proc/stat; USER_HZ is 100), or null. */
function machineBusySeconds(): number | null {
  try {
    const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
    const [user, nice, system, , , irq, softirq, steal] = fields.map(Number);
    return (user + nice + system + irq + softirq + (steal || 0)) / 100;
  } catch {
    return null;
  }
}

/**
 * What other processes used of the machine's cores while `fn` ran, as a fraction of all of them:
 * (machine busy − this process's CPU time, its device threads included) / (wall × cores). The
 * bench's own idleness check, beside the load average (which lags by a minute); null off Linux.
 */
async function otherCpuShare<T>(fn: () => Promise<T>): Promise<{ value: T; share: number | null }> {
  const busy0 = machineBusySeconds();
  const ours0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const wall = (performance.now() - t0) / 1000;
  const busy1 = machineBusySeconds();
  const oursUs = process.cpuUsage(ours0);
  if (busy0 === null || busy1 === null || wall <= 0) return { value, share: null };
  const ours = (oursUs.user + oursUs.system) / 1e6;
  return { value, share: Math.max(0, busy1 - busy0 - ours) / (wall * cpus().length) };
}

// NOTE: one core per device (issue 17 item 4): handed on to every device this process starts
configureNative({ threads: 1 });
await initBackend({ backend: 'wasm', notice: false });
const cpuModel = cpus()[0]?.model ?? 'unknown';
console.error(
  `bench ring-cost: ${cpuModel}, ${cpus().length} cores (using ${cores}), load ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}; ${c} tokens per device`,
);
if (loadavg()[0] > 0.5)
  console.error(`bench ring-cost: warning: 1-minute load ${load()} > 0.5: the machine is not idle`);

const init = LlamaModel.init(config, new Rng(0), finetuneRuntime(FINETUNE_DEFAULTS));
const weights = init.variables().map((v) => v.dataSync() as Float32Array);
const parameters = weights.reduce((s, w) => s + w.length, 0);
init.dispose();

/**
 * GFLOP/s of one device at 1 thread (a 1024² matmul): the per-core peak. The device is started
 * once and measures before and after the rows (it idles in between).
 */
const peakDevice = await RingGroup.create({ devices: 1, backend: 'wasm' });
async function perCorePeak(): Promise<number> {
  const [gflops] = await peakDevice.run<typeof PEAK, number>(peakModule, 'matmulPeak', [PEAK], 1);
  return gflops;
}

interface Row {
  method: 'bpt' | 'ring';
  devices: number;
  /** Cores the row computes on: min(devices, cores); its MFU is against their peak. */
  cores: number;
  /** Tokens of one window: c for BPT (one per device), N·c for the ring. */
  seqLen: number;
  tokensPerStep: number;
  stepMs: number;
  stepMsAll: number[];
  tokensPerSec: number;
  modelGflopPerStep: number;
  modelGflops: number;
  /** Model FLOPs per second / the peak of the cores it computes on; filled once the peak is known. */
  mfu: number;
  /** The same against all `cores` (differs for rows on fewer devices than cores: ring N=1). */
  mfuOfAllCores: number;
  /** BPT's MFU − this row's, in points (ring rows). */
  costMfuPoints: number | null;
  loss: number;
  loadBefore: number;
  loadAfter: number;
  /** Other processes' share of the machine's cores during the timed steps (null off Linux). */
  otherCpuShare: number | null;
}

/** Times `steps` finetune steps (after one warm-up) on a fresh group; one row of the table. */
async function measure(method: Row['method'], devices: number): Promise<Row> {
  const attention: LlamaRuntime['attention'] = method === 'bpt' ? 'blockwise' : 'ring';
  const runtime = finetuneRuntime({ ...FINETUNE_DEFAULTS, attention, devices });
  const seqLen = method === 'bpt' ? c : devices * c;
  const D = FINETUNE_DEFAULTS;
  const initArgs: FinetuneInitArgs = {
    config,
    runtime,
    weights,
    beta1: D.beta1,
    beta2: D.beta2,
    weightDecay: D.weightDecay,
  };
  const rng = new Rng(7);
  const shard = { batch: BATCH, seqLen, layout: D.layout, lr: D.lr, clipNorm: D.clipNorm };
  const argsForStep = (): FinetuneStepArgs[] => {
    if (method === 'ring')
      return shardStep([packedWindow(seqLen, BATCH, config.vocabSize, rng)], { ...shard, devices });
    // BPT, data-parallel: a window per device; the loss shares over all windows sum to their mean
    const perDevice = Array.from(
      { length: devices },
      () => shardStep([packedWindow(seqLen, BATCH, config.vocabSize, rng)], { ...shard, devices: 1 })[0],
    );
    const denominator = perDevice.reduce((s, a) => s + a.microBatches[0].denominator, 0);
    for (const a of perDevice) a.microBatches[0].denominator = denominator;
    return perDevice;
  };
  const floats = finetuneMessageFloats(
    config,
    BATCH,
    method === 'bpt' ? devices * c : seqLen,
    devices,
    parameters,
  );
  const loadBefore = load();
  console.error(`  ${method} N=${devices} T=${seqLen}: load before ${loadBefore}`);
  const group = await RingGroup.create({ devices, backend: 'wasm', computeSlots: cores });
  const times: number[] = [];
  let loss = Number.NaN;
  let otherShare: number | null = null;
  try {
    await group.run(deviceModule, 'initFinetune', Array(devices).fill(initArgs), floats);
    const steps = await otherCpuShare(async () => {
      for (let s = 0; s <= args.steps; s++) {
        const stepArgs = argsForStep();
        const t0 = performance.now();
        const r = await group.run<FinetuneStepArgs, FinetuneStepResult>(
          deviceModule,
          'finetuneStep',
          stepArgs,
          floats,
        );
        if (s > 0) times.push(performance.now() - t0); // the first step warms up
        loss = r[0].loss;
      }
    });
    otherShare = steps.share;
  } finally {
    await group.dispose();
  }
  const stepMs = median(times);
  const tokensPerStep = BATCH * devices * c;
  const flops = llamaTrainingFlops(config, seqLen, method === 'bpt' ? BATCH * devices : BATCH);
  const row: Row = {
    method,
    devices,
    cores: Math.min(devices, cores),
    seqLen,
    tokensPerStep,
    stepMs: Number(stepMs.toFixed(1)),
    stepMsAll: times.map((t) => Number(t.toFixed(1))),
    tokensPerSec: Math.round(tokensPerStep / (stepMs / 1000)),
    modelGflopPerStep: Number((flops / 1e9).toFixed(4)),
    modelGflops: flops / 1e6 / stepMs,
    mfu: 0,
    mfuOfAllCores: 0,
    costMfuPoints: null,
    loss: Number(loss.toFixed(4)),
    loadBefore,
    loadAfter: load(),
    otherCpuShare: otherShare === null ? null : Number(otherShare.toFixed(3)),
  };
  console.error(
    `  ${method} N=${devices} T=${seqLen}: ${row.tokensPerSec} tokens/s, step ${row.stepMs} ms, ${row.modelGflops.toFixed(2)} GFLOP/s; load after ${row.loadAfter}, other processes ${row.otherCpuShare === null ? '–' : `${(100 * row.otherCpuShare).toFixed(0)}%`} of the cores`,
  );
  return row;
}

const peakBefore = await perCorePeak();
console.error(`  per-core peak (1024² matmul, 1 thread): ${peakBefore.toFixed(2)} GFLOP/s`);
const rows: Row[] = [await measure('bpt', cores)];
for (const N of args.devices) rows.push(await measure('ring', N));
const peakAfter = await perCorePeak();
await peakDevice.dispose();
console.error(`  per-core peak after the rows: ${peakAfter.toFixed(2)} GFLOP/s`);
const peak = Math.max(peakBefore, peakAfter);
for (const r of rows) {
  r.mfu = r.modelGflops / (r.cores * peak);
  r.mfuOfAllCores = r.modelGflops / (cores * peak);
}
const bpt = rows[0];
for (const r of rows.slice(1)) r.costMfuPoints = Number((100 * (bpt.mfu - r.mfu)).toFixed(2));

const result = {
  benchmark:
    'Table 4 in miniature: sharegpt-finetune step, BPT (data-parallel) vs ring N at equal tokens per device, tokens/s and MFU',
  machine: {
    model: cpuModel,
    cpus: cpus().length,
    coresUsed: cores,
    threadsPerDevice: 1,
    computeSlots: cores,
  },
  model: { ...config, parameters },
  runtime: finetuneRuntime({ ...FINETUNE_DEFAULTS, attention: 'ring' }),
  layout: FINETUNE_DEFAULTS.layout,
  tokensPerDevice: c,
  batch: BATCH,
  steps: args.steps,
  flops: 'lm/flops.ts llamaTrainingFlops: 6·W·tokens + 12·layers·d·T(T+1)/2 per causal window',
  peakGflopsPerCore: {
    before: Number(peakBefore.toFixed(3)),
    after: Number(peakAfter.toFixed(3)),
    used: Number(peak.toFixed(3)),
  },
  mfu: 'model GFLOP/s / (min(devices, cores) × per-core peak); mfuOfAllCores: / (cores × per-core peak)',
  rows: rows.map((r) => ({
    ...r,
    modelGflops: Number(r.modelGflops.toFixed(3)),
    mfu: Number(r.mfu.toFixed(5)),
    mfuOfAllCores: Number(r.mfuOfAllCores.toFixed(5)),
  })),
  date: new Date().toISOString(),
};
writeFileAtomic(out, `${JSON.stringify(result, null, 2)}\n`);

console.log(
  `${cpuModel}; ${cores} cores, 1 thread per device, ${cores} compute slots; ${c} tokens per device; per-core peak ${peak.toFixed(2)} GFLOP/s`,
);
console.log('');
console.log(
  '| method | devices | cores | sequence | tokens/s | step ms | model GFLOP/s | MFU | ring cost (MFU points) | load before → after | CPU of other processes |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows)
  console.log(
    `| ${r.method === 'bpt' ? 'BPT (data-parallel)' : 'ring'} | ${r.devices} | ${r.cores} | ${r.seqLen} | ${r.tokensPerSec} | ${r.stepMs.toFixed(0)} | ${r.modelGflops.toFixed(2)} | ${(100 * r.mfu).toFixed(2)}% | ${r.costMfuPoints ?? '–'} | ${r.loadBefore} → ${r.loadAfter} | ${r.otherCpuShare === null ? '–' : `${(100 * r.otherCpuShare).toFixed(0)}%`} |`,
  );
console.error(`bench ring-cost: wrote ${out}`);
if (args['tracking-uri']) {
  try {
    const runId = await logToMlflow(args['tracking-uri'], args.experiment);
    console.error(
      `bench ring-cost: logged run ${runId} (experiment ${args.experiment}, ${args['tracking-uri']})`,
    );
  } catch (err) {
    // the JSON above is written either way
    console.error(
      `bench ring-cost: logging to --tracking-uri ${args['tracking-uri']} failed: ${errorMessage(err)}`,
    );
    process.exitCode = 1;
  }
}

/** Row name in metric keys and the logged table: bpt, ring_n1, ring_n2 … */
function rowKey(r: Row): string {
  return r.method === 'bpt' ? 'bpt' : `ring_n${r.devices}`;
}

/**
 * The result as one finished MLflow run (issue 17 item 5: the notebook reads Table 4 back from
 * MLflow as it does Tables 5 and Figure 3): params of the machine and setup, one `result/` metric
 * per cell, the table (JSON for `load_table`, Arrow) and an SVG of MFU against N beside BPT's.
 */
async function logToMlflow(uri: string, experiment: string): Promise<string> {
  const store = openStore(uri);
  const experimentId = await store.ensureExperiment(experiment);
  const runName = `ring-cost-c${c}`;
  const { runId } = await store.createRun({
    experimentId,
    runName,
    startTime: Date.now(),
    tags: [{ key: 'mlflow.runName', value: runName }],
  });
  const staging = mkdtempSync(join(tmpdir(), 'ring-cost-run-'));
  const tracker = new RunTracker(store, runId, { flushEverySec: 60, stagingDir: staging });
  try {
    tracker.tags({
      ...environmentTags(),
      'mlflow.source.type': 'LOCAL',
      'mlflow.source.name': `bench ring-cost ${process.argv.slice(2).join(' ')}`.trim(),
      'exp.recipe': 'ring-cost',
    });
    tracker.params({
      'machine.cpu': cpuModel,
      'machine.cores_used': cores,
      tokens_per_device: c,
      devices: args.devices.join(','),
      steps: args.steps,
      'model.parameters': parameters,
      peak_gflops_per_core: peak.toFixed(3),
    });
    for (const r of rows) {
      const k = rowKey(r);
      tracker.metrics(
        {
          [`result/${k}/tokens_per_sec`]: r.tokensPerSec,
          [`result/${k}/mfu`]: r.mfu,
          [`result/${k}/model_gflops`]: r.modelGflops,
          [`result/${k}/step_ms`]: r.stepMs,
        },
        0,
      );
      if (r.costMfuPoints !== null) tracker.metric(`result/${k}/ring_cost_mfu_points`, r.costMfuPoints, 0);
    }
    await tracker.table(
      'table4',
      rows.map((r) => ({
        row: rowKey(r),
        method: r.method,
        devices: r.devices,
        cores: r.cores,
        seq_len: r.seqLen,
        tokens_per_sec: r.tokensPerSec,
        step_ms: r.stepMs,
        model_gflops: Number(r.modelGflops.toFixed(3)),
        mfu: Number(r.mfu.toFixed(5)),
        ring_cost_mfu_points: r.costMfuPoints,
        load_before: r.loadBefore,
        load_after: r.loadAfter,
        other_cpu_share: r.otherCpuShare,
      })),
    );
    const ring = rows.filter((r) => r.method === 'ring');
    const ns = ring.map((r) => r.devices);
    const flat = (y: number) => ns.map(() => y);
    await tracker.plot(
      'table4-mfu',
      linePlotSvg({
        title: `Table 4 in miniature: MFU at ${c} tokens per device (${cpuModel}, ${cores} cores)`,
        xLabel: 'ring devices N',
        yLabel: 'MFU (%)',
        logX: 2,
        series: [
          { name: 'ring', x: ns, y: ring.map((r) => 100 * r.mfu) },
          { name: `BPT, ${cores} data-parallel devices`, x: ns, y: flat(100 * bpt.mfu), dashed: true },
        ],
      }),
    );
    await tracker.close();
    await store.updateRun(runId, 'FINISHED', Date.now());
    const { pending } = await store.close(60_000);
    if (pending > 0)
      console.error(
        `bench ring-cost: ${pending} requests to ${uri} still pending (spooled; exp runs sync sends them)`,
      );
  } catch (err) {
    await store.updateRun(runId, 'FAILED', Date.now()).catch(() => {});
    throw err;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return runId;
}
