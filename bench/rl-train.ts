/**
 * Offline-RL training throughput (issue 6): training tokens/s of the ant-medium default config
 * (Agentic Transformer, dModel 64, 2 layers, batch 8, 4 trajectories × 64 steps × 4 tokens) per
 * attention implementation. Each implementation is a real `exp run ant-medium.yaml` in a
 * subprocess with only the attention keys and the step count changed (and a one-episode, 20-step
 * evaluation so the run ends quickly); the figure is the median of the recipe's own
 * `perf/tokens_per_sec` metric over the steps after the first few (warm-up), read back from the
 * run's MLflow file store. Writes bench/results/rl-train.json and prints a Markdown table.
 *
 *   npm run build && node dist/bench/rl-train.js [--steps 30] [--impls vanilla,memeff,blockwise,ring:2,ring:4] [--algo at]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../common/index.js';
import { FileStore } from '../experiments/tracking/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const argv = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const steps = Number(arg('--steps', '30'));
const warmupSteps = 5;
const algo = arg('--algo', 'at');
// NOTE: 'tfjs' runs with RING_NATIVE=0 (the pure-tfjs kernels), 'native' with the native addon when it loads
const paths = arg('--paths', 'tfjs,native').split(',');
const impls = arg('--impls', 'vanilla,memeff,blockwise,ring:2,ring:4')
  .split(',')
  .map((s) => {
    const [attention, devices = '1'] = s.split(':');
    return { attention, devices: Number(devices) };
  });

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

interface Row {
  path: string;
  attention: string;
  devices: number;
  tokensPerSequence: number;
  tokensPerSec: number;
  stepMs: number;
  wallS: number;
}

async function measure(path: string, attention: string, devices: number): Promise<Row> {
  const store = mkdtempSync(join(tmpdir(), 'rl-train-bench-'));
  const started = Date.now();
  const sets = [
    `offline-rl.algo=${algo}`,
    `offline-rl.model.attention=${attention}`,
    `offline-rl.model.devices=${devices}`,
    `offline-rl.train.steps=${steps}`,
    `offline-rl.train.evalEvery=0`,
    'offline-rl.eval.episodes=1',
    'offline-rl.eval.maxEpisodeSteps=20',
    'checkpoint.every=0',
  ];
  const res = spawnSync(
    process.execPath,
    [
      join(root, 'bin/exp.js'),
      'run',
      'ant-medium.yaml',
      '--quiet',
      '--json',
      '--tracking-uri',
      store,
      ...sets.flatMap((s) => ['--set', s]),
    ],
    { cwd: root, encoding: 'utf8', env: { ...process.env, RING_NATIVE: path === 'tfjs' ? '0' : '1' } },
  );
  const wallS = (Date.now() - started) / 1000;
  if (res.status !== 0) {
    rmSync(store, { recursive: true, force: true });
    throw new Error(
      `rl-train bench: ${attention}×${devices} (${path}) failed (exit ${res.status}):\n${res.stderr}`,
    );
  }
  // read back through the project's MLflow file-store reader, as the notebooks' client would
  const { run_id: runId } = JSON.parse(res.stdout.trim().split('\n').at(-1) ?? '{}') as { run_id: string };
  const fileStore = new FileStore(store);
  const history = await fileStore.getMetricHistory(runId, 'perf/tokens_per_sec');
  const perStep = history.filter((m) => m.step > warmupSteps).map((m) => m.value);
  const tokensPerSequence = Number((await fileStore.getRun(runId)).params['model.tokens_per_sequence']);
  const tokensPerSec = median(perStep);
  rmSync(store, { recursive: true, force: true });
  const row: Row = {
    path,
    attention,
    devices,
    tokensPerSequence,
    tokensPerSec,
    // batch 8 of the default config
    stepMs: ((8 * tokensPerSequence) / tokensPerSec) * 1000,
    wallS,
  };
  process.stderr.write(`${JSON.stringify(row)}\n`);
  return row;
}

const ratio = (r: Row, base: Row | undefined) =>
  base ? (r.tokensPerSec / base.tokensPerSec).toFixed(2) : '—';

async function main(): Promise<void> {
  const rows: Row[] = [];
  const loadBefore = loadavg();
  for (const path of paths)
    for (const { attention, devices } of impls) rows.push(await measure(path, attention, devices));
  const loadAfter = loadavg();
  const blockwiseOf = (path: string) =>
    rows.find((r) => r.path === path && r.attention === 'blockwise' && r.devices === 1);
  const tfjsBlockwise = blockwiseOf('tfjs');
  const result = {
    machine: { cpus: cpus().length, model: cpus()[0]?.model.trim(), loadBefore, loadAfter },
    config: 'experiments/configs/ant-medium.yaml',
    algo,
    steps,
    warmupSteps,
    paths,
    rows,
  };
  writeFileAtomic(join(root, 'bench/results/rl-train.json'), `${JSON.stringify(result, null, 2)}\n`);
  const lines = [
    `load average ${loadBefore.map((x) => x.toFixed(1)).join(' ')} → ${loadAfter.map((x) => x.toFixed(1)).join(' ')} on ${cpus().length} cores`,
    '',
    '| kernels | attention | devices | tokens/sequence | training tokens/s | ms/step (batch 8) | ÷ blockwise, same kernels | ÷ blockwise tfjs |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.path} | ${r.attention} | ${r.devices} | ${r.tokensPerSequence} | ${r.tokensPerSec.toFixed(0)} | ${r.stepMs.toFixed(0)} | ${ratio(r, blockwiseOf(r.path))} | ${ratio(r, tfjsBlockwise)} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
