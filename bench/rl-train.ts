/**
 * Offline-RL training throughput (issue 6): training tokens/s of the ant-medium default config
 * (Agentic Transformer, dModel 64, 2 layers, batch 8, 4 trajectories × 64 steps × 4 tokens) per
 * attention implementation. Each implementation is a real `exp run ant-medium.yaml` in a
 * subprocess with only the attention keys and the step count changed (and a one-episode, 20-step
 * evaluation so the run ends quickly); the figure is the median of the recipe's own
 * `perf/tokens_per_sec` metric over the steps after the first few (warm-up), read back from the
 * run's MLflow file store. Writes bench/results/rl-train.json and prints a Markdown table.
 *
 * Issue 14: the PyTorch twin (bench/rl_train_torch.py: same architecture, parameter count checked,
 * batch, context, AdamW and clip) runs in the same bench, before and after our rows so load
 * falls on both, at 1 and 2 threads; `vsTorch` is our tokens/s ÷ torch's best thread count.
 * `--model large` is issue 14's larger policy (dModel 256, 4 layers, 8 heads, 1,024 tokens,
 * batch 4; bench/results/rl-train-large.json). `--profile` breaks a native blockwise step down
 * by phase, tfjs kernel and addon call instead (bench/rl-train-profile.ts;
 * bench/results/rl-train-profile[-large].json).
 *
 *   npm run build && node dist/bench/rl-train.js [--model medium|large] [--steps 20]
 *     [--paths native] [--impls blockwise,ring:2] [--no-torch] [--algo at] [--set KEY=VALUE,…]
 *   node dist/bench/rl-train.js --profile [--model medium|large] [--steps 5] [--optimiser fused|tfjs]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, writeFileAtomic } from '../common/index.js';
import { FileStore } from '../experiments/tracking/index.js';
import { BenchArgError, benchArgs } from './args.js';
import { ANT, ANT_TRAIN, presetOf, presetParameters, presetSets } from './rl-train-models.js';
import { profileTable, profileTraining } from './rl-train-profile.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const IMPL = /^(vanilla|memeff|blockwise|ring)(:[1-9][0-9]*)?$/;
const args = benchArgs(
  {
    script: 'rl-train',
    usage: [
      'npm run build && node dist/bench/rl-train.js [--model medium|large] [--steps 20]',
      '  [--paths native] [--impls blockwise,ring:2] [--no-torch] [--algo at] [--set KEY=VALUE,…]',
      'node dist/bench/rl-train.js --profile [--model medium|large] [--steps 5] [--optimiser fused|tfjs]',
    ],
    options: {
      model: {
        kind: 'string',
        choices: ['medium', 'large'],
        default: 'medium',
        description:
          "the policy: ant-medium.yaml as it ships, or issue 14's larger one (rl-train-large.json)",
      },
      steps: {
        kind: 'number',
        integer: true,
        min: 1,
        defaultText: '20, or 5 with --profile',
        description: 'training steps per run',
      },
      profile: {
        kind: 'boolean',
        description: 'break a native blockwise step down by phase, kernel and addon call instead',
      },
      'no-torch': { kind: 'boolean', description: 'skip the PyTorch twin (bench/rl_train_torch.py)' },
      algo: {
        kind: 'string',
        choices: ['at', 'dt', 'bc'],
        default: 'at',
        description: 'the offline-rl algorithm',
      },
      paths: {
        kind: 'list',
        of: 'string',
        choices: ['tfjs', 'native'],
        default: ['native'],
        description: 'kernels: tfjs runs with RING_NATIVE=0, native with the addon where it loads',
      },
      impls: {
        kind: 'list',
        of: 'string',
        placeholder: 'ATTENTION[:DEVICES],…',
        default: ['blockwise', 'ring:2'],
        description: 'attention implementations (vanilla, memeff, blockwise, ring) and device counts',
      },
      set: {
        kind: 'list',
        of: 'string',
        placeholder: 'KEY=VALUE,…',
        default: [],
        description:
          'extra config overrides for every run, as exp run --set takes them (an A/B of one setting: offline-rl.model.keepFfn=false)',
      },
      optimiser: {
        kind: 'string',
        choices: ['fused', 'tfjs'],
        default: 'fused',
        description: "with --profile: the native fused AdamW or tfjs's",
      },
    },
  },
  (a) => {
    const noValue = a.set.find((s) => !/^[\w.-]+=./.test(s));
    if (noValue !== undefined)
      throw new BenchArgError(`bad item '${noValue}' in --set`, 'KEY=VALUE', `'${a.set.join(',')}'`);
    const bad = a.impls.find((s) => !IMPL.test(s));
    if (bad !== undefined)
      throw new BenchArgError(
        `bad item '${bad}' in --impls`,
        'ATTENTION[:DEVICES] with ATTENTION one of vanilla, memeff, blockwise, ring and DEVICES ≥ 1',
        `'${a.impls.join(',')}'`,
      );
  },
);
const preset = presetOf(args.model);
const profile = args.profile;
const withTorch = !args['no-torch'];
const steps = args.steps ?? (profile ? 5 : 20);
const warmupSteps = 5;
const algo = args.algo;
// NOTE: 'tfjs' runs with RING_NATIVE=0 (the pure-tfjs kernels), 'native' with the native addon when it loads.
// The default is the fast path only, so a run takes a couple of minutes (issue 14); the full
// matrix is --paths tfjs,native --impls vanilla,memeff,blockwise,ring:2,ring:4
const paths = args.paths;
const impls = args.impls.map((s) => {
  const [attention, devices = '1'] = s.split(':');
  return { attention, devices: Number(devices) };
});

interface Row {
  path: string;
  parameters: number;
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
    ...presetSets(preset),
    ...args.set,
  ];
  const res = spawnSync(
    process.execPath,
    [
      // node's own flags reach the run (e.g. V8's GC options for an A/B)
      ...process.execArgv,
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
  const params = (await fileStore.getRun(runId)).params;
  const tokensPerSequence = Number(params['model.tokens_per_sequence']);
  const parameters = Number(params['model.parameters']);
  const tokensPerSec = median(perStep);
  rmSync(store, { recursive: true, force: true });
  const row: Row = {
    path,
    parameters,
    attention,
    devices,
    tokensPerSequence,
    tokensPerSec,
    stepMs: ((preset.batch * tokensPerSequence) / tokensPerSec) * 1000,
    wallS,
  };
  process.stderr.write(`${JSON.stringify(row)}\n`);
  return row;
}

interface TorchRow {
  threads: number;
  /** OpenMP's wait policy: 'default' (spin, then sleep) or 'passive' (sleep at once). */
  wait: string;
  stepMs: number;
  tokensPerSec: number;
  steps: number;
}
interface TorchRun {
  torch: string;
  parameters: number;
  adamw: string;
  rows: (TorchRow & { times: number[] })[];
}

/**
 * One round of the PyTorch twin (bench/rl_train_torch.py in the project's .venv): 1 and 2
 * threads alternated in one process, then 2 threads with OMP_WAIT_POLICY=passive in another.
 * NOTE: on a shared machine (another job on a core) OpenMP's spinning barriers made 2 threads
 * up to 25× slower than 1 (measured); passive waiting is torch at its best there, and its
 * best row over all three is the anchor. Fails if the twin's parameter count is not ours.
 */
function torchRound(expectParameters: number): TorchRun {
  const setup = spawnSync('bash', ['scripts/python-env.sh'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (setup.status !== 0) throw new Error('rl-train bench: could not set up .venv (scripts/python-env.sh)');
  const input = {
    ...ANT,
    dModel: preset.dModel,
    layers: preset.layers,
    heads: preset.heads,
    tokens: 4 * preset.contextSteps,
    batch: preset.batch,
    lr: ANT_TRAIN.lr,
    weightDecay: ANT_TRAIN.weightDecay,
    clip: ANT_TRAIN.clip,
    warmup: 3,
    steps: Math.max(5, Math.round(steps / 2)),
    rounds: 1,
    expectParameters,
  };
  const runs = [
    { wait: 'default', threads: [1, 2] },
    { wait: 'passive', threads: [2] },
  ].map(({ wait, threads }) => {
    const env = { ...process.env };
    if (wait === 'passive') env.OMP_WAIT_POLICY = 'PASSIVE';
    else delete env.OMP_WAIT_POLICY;
    const res = spawnSync(join(root, '.venv/bin/python'), [join(root, 'bench/rl_train_torch.py')], {
      input: JSON.stringify({ ...input, threads }),
      encoding: 'utf8',
      maxBuffer: 1 << 24,
      env,
    });
    if (res.status !== 0)
      throw new Error(`rl-train bench: rl_train_torch.py failed (exit ${res.status}): ${res.stderr}`);
    const run = JSON.parse(res.stdout) as TorchRun;
    return { ...run, rows: run.rows.map((r) => ({ ...r, wait })) };
  });
  const run = { ...runs[0], rows: runs.flatMap((r) => r.rows) };
  process.stderr.write(`torch ${JSON.stringify(run.rows.map(({ times: _, ...r }) => r))}\n`);
  return run;
}

/** The rounds' step times pooled per (threads, wait policy): median ms and tokens/s. */
function poolTorch(runs: TorchRun[]): TorchRow[] {
  const tokens = preset.batch * 4 * preset.contextSteps;
  return runs[0].rows.map(({ threads, wait }) => {
    const times = runs.flatMap(
      (r) => r.rows.find((x) => x.threads === threads && x.wait === wait)?.times ?? [],
    );
    const ms = median(times);
    return { threads, wait, stepMs: ms, tokensPerSec: tokens / (ms / 1000), steps: times.length };
  });
}

const ratio = (r: Row, base: Row | undefined) =>
  base ? (r.tokensPerSec / base.tokensPerSec).toFixed(2) : '—';

async function runProfile(): Promise<void> {
  const fusedOptimiser = args.optimiser !== 'tfjs';
  const result = await profileTraining(preset, { steps, warmup: 3, fusedOptimiser });
  const machine = { cpus: cpus().length, model: cpus()[0]?.model.trim(), load: loadavg() };
  const suffix = `${preset.name === 'medium' ? '' : `-${preset.name}`}${fusedOptimiser ? '' : '-tfjs-optimiser'}`;
  const file = `bench/results/rl-train-profile${suffix}.json`;
  writeFileAtomic(join(root, file), `${JSON.stringify({ machine, ...result }, null, 2)}\n`);
  process.stdout.write(`${profileTable(result)}\n`);
}

async function main(): Promise<void> {
  if (profile) return runProfile();
  const rows: Row[] = [];
  const loadBefore = loadavg();
  // torch before and after our rows, so the machine's load (shared) falls on both sides
  const expect = presetParameters(preset);
  const torchRuns: TorchRun[] = withTorch ? [torchRound(expect)] : [];
  for (const path of paths)
    for (const { attention, devices } of impls) rows.push(await measure(path, attention, devices));
  if (withTorch) torchRuns.push(torchRound(expect));
  const loadAfter = loadavg();
  for (const r of rows)
    if (r.parameters !== expect)
      throw new Error(`rl-train bench: ${r.attention} has ${r.parameters} parameters; the twin ${expect}`);
  const torch = withTorch ? poolTorch(torchRuns) : [];
  const torchBest = torch.reduce<TorchRow | undefined>(
    (a, t) => (a && a.tokensPerSec >= t.tokensPerSec ? a : t),
    undefined,
  );
  const blockwiseOf = (path: string) =>
    rows.find((r) => r.path === path && r.attention === 'blockwise' && r.devices === 1);
  const tfjsBlockwise = blockwiseOf('tfjs');
  const result = {
    machine: { cpus: cpus().length, model: cpus()[0]?.model.trim(), loadBefore, loadAfter },
    config: 'experiments/configs/ant-medium.yaml',
    model: preset,
    algo,
    steps,
    warmupSteps,
    paths,
    sets: args.set,
    parameters: { ours: rows[0]?.parameters, torch: torchRuns[0]?.parameters },
    rows: rows.map((r) => ({
      ...r,
      vsTorch: torchBest ? r.tokensPerSec / torchBest.tokensPerSec : undefined,
    })),
    torch: torchRuns[0] ? { version: torchRuns[0].torch, adamw: torchRuns[0].adamw, rows: torch } : undefined,
  };
  const file = `bench/results/rl-train${preset.name === 'medium' ? '' : `-${preset.name}`}.json`;
  writeFileAtomic(join(root, file), `${JSON.stringify(result, null, 2)}\n`);
  const lines = [
    `load average ${loadBefore.map((x) => x.toFixed(1)).join(' ')} → ${loadAfter.map((x) => x.toFixed(1)).join(' ')} on ${cpus().length} cores (${cpus()[0]?.model.trim()})`,
    `${preset.name}: dModel ${preset.dModel}, ${preset.layers} layers, ${preset.heads} heads, batch ${preset.batch}; ${expect} parameters (ours ${rows[0]?.parameters}, twin ${torchRuns[0]?.parameters ?? '—'})`,
    '',
    `| kernels | attention | devices | tokens/sequence | training tokens/s | ms/step (batch ${preset.batch}) | ÷ blockwise, same kernels | ÷ blockwise tfjs | ÷ torch best |`,
    '|---|---|---|---|---|---|---|---|---|',
    ...torch.map(
      (t) =>
        `| torch ${torchRuns[0].torch}, ${t.threads} thread${t.threads > 1 ? 's' : ''}${t.wait === 'passive' ? ', passive wait' : ''} | SDPA | 1 | ${4 * preset.contextSteps} | ${t.tokensPerSec.toFixed(0)} | ${t.stepMs.toFixed(0)} | — | — | ${torchBest ? (t.tokensPerSec / torchBest.tokensPerSec).toFixed(2) : '—'} |`,
    ),
    ...rows.map(
      (r) =>
        `| ${r.path} | ${r.attention} | ${r.devices} | ${r.tokensPerSequence} | ${r.tokensPerSec.toFixed(0)} | ${r.stepMs.toFixed(0)} | ${ratio(r, blockwiseOf(r.path))} | ${ratio(r, tfjsBlockwise)} | ${torchBest ? (r.tokensPerSec / torchBest.tokensPerSec).toFixed(2) : '—'} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
