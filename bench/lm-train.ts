/**
 * LM training tokens/s against Hugging Face (issue 14: "sharegpt-finetune.yaml tokens/s ≥ 1.0×
 * HF LlamaForCausalLM training on CPU at the same config and at hidden 256 / 4 layers").
 *
 * One full training step on each side, for the same LLaMA shape and the same (batch, T) of random
 * token ids: forward, backward, global-norm clip and AdamW.
 * - ours: lm/ `LlamaModel` with the recipe's runtime (blockwise attention, block 64, FFN chunk 64,
 *   checkpointed layers; the native block op where the addon runs), `tf.variableGrads` over
 *   `model.loss`, then `AdamW.clipAndApply` (decay on matrices, as lm/finetune-device.ts);
 * - theirs: bench/lm_train_hf.py, `transformers.LlamaForCausalLM` in float32 with SDPA attention,
 *   torch's AdamW (fused where it runs) and `clip_grad_norm_`.
 * Configs: (a) experiments/configs/sharegpt-finetune.yaml's model, batch and window, read from the
 * file; (b) `--config large`: hidden 256, SwiGLU 688 (≈ 8/3 · 256 rounded up to a multiple of 16,
 * the rule that gives the yaml's 176 for 64), 4 layers, 8 query / 4 key-value heads (the yaml's
 * 2:1 grouping), the same tied 32000 vocabulary, batch 2 × 1,024 tokens.
 *
 * HF runs before and after ours (so a shared machine's load falls on both sides) at each thread
 * count, plus its largest thread count with OMP_WAIT_POLICY=passive (OpenMP's spinning barriers
 * lose badly when another job holds a core; see bench/rl-train.ts); its best row is the anchor.
 * Ours runs at the same counts of native-addon threads (the wasm backend itself is single-threaded).
 * `vsHf` = our best tokens/s ÷ HF's best. Fails if the parameter counts differ, or if our
 * blockwise path never ran the native block op. Writes bench/results/lm-train.json and prints a
 * Markdown table.
 *
 *   npm run build && node dist/bench/lm-train.js [--configs sharegpt,large] [--threads 1,2]
 *     [--steps N] [--warmup N] [--no-hf]   (default 5 and 2 for sharegpt, 3 and 1 for large)
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { parse } from 'yaml';
import { nativeBlockCount } from '../block/index.js';
import { median, Rng, writeFileAtomic } from '../common/index.js';
import {
  type LlamaConfig,
  LlamaModel,
  type LlamaRuntime,
  llamaParameterCount,
  shiftLabels,
} from '../lm/index.js';
import { configureNative, initBackend, nativeAddon, nativeStatus } from '../native/index.js';
import { AdamW } from '../train/index.js';
import { benchArgs } from './args.js';
import { sharegptDefaultModel } from './lm-config.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
// per config by default (--steps, --warmup): the larger one's step takes seconds on each side, and a
// run stays a few minutes
const args = benchArgs({
  script: 'lm-train',
  usage: [
    'npm run build && node dist/bench/lm-train.js [--configs sharegpt,large] [--threads 1,2]',
    '  [--steps N] [--warmup N] [--no-hf]   (default 5 and 2 for sharegpt, 3 and 1 for large)',
  ],
  options: {
    configs: {
      kind: 'list',
      of: 'string',
      choices: ['sharegpt', 'large'],
      default: ['sharegpt', 'large'],
      description: 'sharegpt-finetune.yaml as it ships, and/or hidden 256 / 4 layers',
    },
    threads: {
      kind: 'list',
      of: 'number',
      integer: true,
      min: 1,
      default: [1, 2],
      description: 'thread counts, each side (native-addon threads for ours)',
    },
    steps: {
      kind: 'number',
      integer: true,
      min: 1,
      defaultText: '5 for sharegpt, 3 for large',
      description: 'timed steps (median), per side and thread count',
    },
    warmup: {
      kind: 'number',
      integer: true,
      min: 0,
      defaultText: '2 for sharegpt, 1 for large',
      description: 'untimed steps before them',
    },
    'no-hf': { kind: 'boolean', description: 'skip Hugging Face (bench/lm_train_hf.py)' },
  },
});
const configNames = args.configs;
const threadCounts = args.threads;
const stepsArg = args.steps;
const warmupArg = args.warmup;
const withHf = !args['no-hf'];
// the same optimiser settings on both sides (the lr does not change a step's cost)
const lr = 1e-4;

interface Case {
  name: string;
  source: string;
  model: LlamaConfig;
  runtime: LlamaRuntime;
  batch: number;
  seqLen: number;
  weightDecay: number;
  clip: number;
  /** Micro-batches per optimizer step in the recipe (we time one micro-batch and one update). */
  gradAccum: number;
  /** Timed steps (median) after `warmup` untimed ones, per side and thread count (and HF round). */
  steps: number;
  warmup: number;
}

/** (a) sharegpt-finetune.yaml as the recipe reads it: its model shape, batch, window and runtime. */
function sharegptCase(): Case {
  const file = 'experiments/configs/sharegpt-finetune.yaml';
  const doc = parse(readFileSync(join(root, file), 'utf8')) as Record<string, unknown>;
  const o = doc['sharegpt-finetune'] as {
    model: Pick<
      LlamaConfig,
      | 'hiddenSize'
      | 'intermediateSize'
      | 'numLayers'
      | 'numHeads'
      | 'numKvHeads'
      | 'ropeTheta'
      | 'tieWordEmbeddings'
    >;
    attention: LlamaRuntime['attention'];
    blockSize: number;
    checkpointLayers: boolean;
    seqLen: number;
    batchSize: number;
    gradAccum: number;
    weightDecay: number;
    clipNorm: number;
  };
  return {
    name: 'sharegpt-finetune',
    source: file,
    // lm/finetune-data.ts finetuneModel: the tokenizer's vocabulary (llama: 32000), the window as max positions
    model: { ...sharegptDefaultModel(o.seqLen), ...o.model },
    // lm/finetune.ts finetuneRuntime: the FFN in chunks of the attention block
    runtime: {
      attention: o.attention,
      blockSize: o.blockSize,
      ffnChunk: o.attention === 'blockwise' || o.attention === 'ring' ? o.blockSize : 0,
      checkpointLayers: o.checkpointLayers,
    },
    batch: o.batchSize,
    seqLen: o.seqLen,
    weightDecay: o.weightDecay,
    clip: o.clipNorm,
    gradAccum: o.gradAccum,
    steps: stepsArg ?? 5,
    warmup: warmupArg ?? 2,
  };
}

/** (b) issue 14's larger model: hidden 256, 4 layers, at a 1,024-token window. */
function largeCase(): Case {
  const a = sharegptCase();
  const seqLen = 1024;
  return {
    ...a,
    name: 'hidden 256 / 4 layers',
    source: 'bench/lm-train.ts',
    model: {
      ...sharegptDefaultModel(seqLen),
      hiddenSize: 256,
      intermediateSize: 688,
      numLayers: 4,
      numHeads: 8,
      numKvHeads: 4,
    },
    batch: 2,
    seqLen,
    gradAccum: 1,
    steps: stepsArg ?? 3,
    warmup: warmupArg ?? 1,
  };
}

interface OursRow {
  threads: number;
  stepMs: number;
  tokensPerSec: number;
  steps: number;
  times: number[];
  parameters: number;
  /** Native block ops run during this row's steps (0: the tfjs block ran instead). */
  nativeBlocks: number;
}

/** Our full training step at `threads` native-addon threads; the median of `steps` after `warmup`. */
function measureOurs(c: Case, threads: number): OursRow {
  configureNative({ threads });
  const model = LlamaModel.init(c.model, new Rng(0), c.runtime);
  const vars = model.variables();
  const optimizer = new AdamW(vars, { lr, weightDecay: c.weightDecay, decays: (v) => v.rank === 2 });
  const rng = new Rng(1);
  const ids = Array.from({ length: c.batch * c.seqLen }, () => 3 + rng.int(c.model.vocabSize - 3));
  const targets = shiftLabels(ids, c.batch, c.seqLen);
  const x = tf.tensor2d(ids, [c.batch, c.seqLen], 'int32');
  const blocksBefore = nativeBlockCount();
  const times: number[] = [];
  for (let s = 0; s < c.warmup + c.steps; s++) {
    const t0 = performance.now();
    const { value, grads } = tf.variableGrads(() => model.loss(x, targets), vars);
    value.dataSync();
    value.dispose();
    // consumes the gradients; its norm is read back, so the step has finished when it returns
    optimizer.clipAndApply(
      vars.map((v) => grads[v.name]),
      c.clip,
      lr,
    );
    if (s >= c.warmup) times.push(performance.now() - t0);
  }
  const nativeBlocks = nativeBlockCount() - blocksBefore;
  const parameters = vars.reduce((n, v) => n + v.size, 0);
  x.dispose();
  optimizer.dispose();
  model.dispose();
  configureNative({ threads: undefined });
  const ms = median(times);
  const row = {
    threads,
    stepMs: ms,
    tokensPerSec: (c.batch * c.seqLen) / (ms / 1000),
    steps: times.length,
    times,
    parameters,
    nativeBlocks,
  };
  process.stderr.write(
    `ours ${c.name} ${threads} thread(s): ${row.tokensPerSec.toFixed(0)} tokens/s, ${ms.toFixed(0)} ms/step, ${nativeBlocks} native blocks\n`,
  );
  return row;
}

interface HfRow {
  threads: number;
  /** OpenMP's wait policy: 'default' (spin, then sleep) or 'passive' (sleep at once). */
  wait: string;
  stepMs: number;
  tokensPerSec: number;
  steps: number;
}
interface HfRun {
  torch: string;
  transformers: string;
  parameters: number;
  attention: string;
  adamw: string;
  rows: (HfRow & { times: number[] })[];
}

/** The HF config.json fields of our LLaMA shape. */
function hfConfig(m: LlamaConfig): Record<string, number | boolean> {
  return {
    vocab_size: m.vocabSize,
    hidden_size: m.hiddenSize,
    intermediate_size: m.intermediateSize,
    num_hidden_layers: m.numLayers,
    num_attention_heads: m.numHeads,
    num_key_value_heads: m.numKvHeads,
    rms_norm_eps: m.rmsNormEps,
    rope_theta: m.ropeTheta,
    tie_word_embeddings: m.tieWordEmbeddings,
    max_position_embeddings: m.maxPositionEmbeddings,
  };
}

/**
 * One round of the HF twin: every thread count alternated in one process, then the largest with
 * OMP_WAIT_POLICY=passive in another. Fails if its parameter count is not ours.
 */
function hfRound(c: Case, expectParameters: number): HfRun {
  const base = [
    join(root, 'bench/lm_train_hf.py'),
    '--config',
    JSON.stringify(hfConfig(c.model)),
    '--batch',
    String(c.batch),
    '--seq-len',
    String(c.seqLen),
    '--warmup',
    String(c.warmup),
    '--steps',
    String(c.steps),
    '--rounds',
    '1',
    '--expect-parameters',
    String(expectParameters),
    '--lr',
    String(lr),
    '--weight-decay',
    String(c.weightDecay),
    '--clip',
    String(c.clip),
  ];
  const most = Math.max(...threadCounts);
  const runs = [
    { wait: 'default', threads: threadCounts },
    ...(most > 1 ? [{ wait: 'passive', threads: [most] }] : []),
  ].map(({ wait, threads }) => {
    const env = { ...process.env };
    if (wait === 'passive') env.OMP_WAIT_POLICY = 'PASSIVE';
    else delete env.OMP_WAIT_POLICY;
    const res = spawnSync(join(root, '.venv/bin/python'), [...base, '--threads', threads.join(',')], {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
      env,
    });
    if (res.status !== 0)
      throw new Error(`lm-train bench: lm_train_hf.py failed (exit ${res.status}): ${res.stderr}`);
    const run = JSON.parse(res.stdout) as HfRun;
    return { ...run, rows: run.rows.map((r) => ({ ...r, wait })) };
  });
  const run = { ...runs[0], rows: runs.flatMap((r) => r.rows) };
  process.stderr.write(
    `hf ${c.name} ${JSON.stringify(run.rows.map(({ times: _, ...r }) => ({ ...r, stepMs: Math.round(r.stepMs) })))}\n`,
  );
  return run;
}

/** The rounds' step times pooled per (threads, wait policy): median ms and tokens/s. */
function poolHf(c: Case, runs: HfRun[]): HfRow[] {
  return runs[0].rows.map(({ threads, wait }) => {
    const times = runs.flatMap(
      (r) => r.rows.find((x) => x.threads === threads && x.wait === wait)?.times ?? [],
    );
    const ms = median(times);
    return {
      threads,
      wait,
      stepMs: ms,
      tokensPerSec: (c.batch * c.seqLen) / (ms / 1000),
      steps: times.length,
    };
  });
}

function best<T extends { tokensPerSec: number }>(rows: T[]): T | undefined {
  return rows.reduce<T | undefined>((a, r) => (a && a.tokensPerSec >= r.tokensPerSec ? a : r), undefined);
}

async function main(): Promise<void> {
  if (withHf) {
    const setup = spawnSync('bash', ['scripts/python-env.sh'], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    if (setup.status !== 0) throw new Error('lm-train bench: could not set up .venv (scripts/python-env.sh)');
  }
  const backend = await initBackend({ backend: 'wasm' });
  const native = nativeStatus();
  // native/optim.ts runs the fused AdamW where the addon has it and the backend is wasm
  const fusedAdamW = Boolean(nativeAddon()?.adamw) && tf.getBackend() === 'wasm';
  const cases = configNames.map((n) => (n === 'sharegpt' ? sharegptCase() : largeCase()));
  const loadBefore = loadavg();
  const results = [];
  for (const c of cases) {
    const expect = llamaParameterCount(c.model);
    // HF before and after ours, so the machine's load falls on both sides
    const hfRuns: HfRun[] = withHf ? [hfRound(c, expect)] : [];
    const ours = threadCounts.map((n) => measureOurs(c, n));
    if (withHf) hfRuns.push(hfRound(c, expect));
    for (const r of ours)
      if (r.parameters !== expect)
        throw new Error(`lm-train bench: ${c.name}: ours has ${r.parameters} parameters; expected ${expect}`);
    for (const r of hfRuns)
      if (r.parameters !== expect)
        throw new Error(`lm-train bench: ${c.name}: HF has ${r.parameters} parameters; ours ${expect}`);
    // issue 14 measures the native path: a silent fall-back to the tfjs block would measure something else
    if (c.runtime.attention === 'blockwise' && ours.some((r) => r.nativeBlocks === 0))
      throw new Error(`lm-train bench: ${c.name}: our blockwise step never ran the native block op`);
    const hf = withHf ? poolHf(c, hfRuns) : [];
    const hfBest = best(hf);
    const oursBest = best(ours);
    results.push({
      name: c.name,
      source: c.source,
      model: c.model,
      runtime: c.runtime,
      batch: c.batch,
      seqLen: c.seqLen,
      tokensPerStep: c.batch * c.seqLen,
      steps: c.steps,
      warmup: c.warmup,
      recipeGradAccum: c.gradAccum,
      optimiser: { lr, weightDecay: c.weightDecay, clip: c.clip },
      parameters: { ours: ours[0]?.parameters, hf: hfRuns[0]?.parameters, formula: expect },
      ours: ours.map((r) => ({ ...r, vsHf: hfBest ? r.tokensPerSec / hfBest.tokensPerSec : undefined })),
      hf: hfRuns[0]
        ? {
            torch: hfRuns[0].torch,
            transformers: hfRuns[0].transformers,
            attention: hfRuns[0].attention,
            adamw: hfRuns[0].adamw,
            rounds: hfRuns.length,
            rows: hf,
          }
        : undefined,
      vsHf: hfBest && oursBest ? oursBest.tokensPerSec / hfBest.tokensPerSec : undefined,
    });
  }
  const loadAfter = loadavg();
  const machine = { cpus: cpus().length, model: cpus()[0]?.model.trim(), loadBefore, loadAfter };
  const result = {
    benchmark: 'lm training tokens/s vs Hugging Face LlamaForCausalLM (forward+backward+clip+AdamW, CPU)',
    backend: backend.name,
    native,
    fusedAdamW,
    machine,
    cases: results,
    date: new Date().toISOString(),
  };
  writeFileAtomic(join(root, 'bench/results/lm-train.json'), `${JSON.stringify(result, null, 2)}\n`);
  const fmt = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(2));
  const lines = [
    `load average ${loadBefore.map((x) => x.toFixed(1)).join(' ')} → ${loadAfter.map((x) => x.toFixed(1)).join(' ')} on ${machine.cpus} cores (${machine.model}); ours: ${backend.name} + ${native}`,
    '',
    '| config | B×T | parameters | side | threads | tokens/s | ms/step | ÷ HF best |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    const hfBest = best(r.hf?.rows ?? []);
    const head = `| ${r.name} | ${r.batch}×${r.seqLen} | ${r.parameters.ours}`;
    for (const h of r.hf?.rows ?? [])
      lines.push(
        `${head} | HF transformers ${r.hf?.transformers} (torch ${r.hf?.torch}, sdpa) | ${h.threads}${h.wait === 'passive' ? ' (passive wait)' : ''} | ${h.tokensPerSec.toFixed(0)} | ${h.stepMs.toFixed(0)} | ${fmt(hfBest ? h.tokensPerSec / hfBest.tokensPerSec : undefined)} |`,
      );
    for (const o of r.ours)
      lines.push(
        `${head} | ours (${r.runtime.attention}, native block) | ${o.threads} | ${o.tokensPerSec.toFixed(0)} | ${o.stepMs.toFixed(0)} | ${fmt(o.vsHf)} |`,
      );
  }
  lines.push('', ...results.map((r) => `${r.name}: vsHf (our best ÷ HF best) = ${fmt(r.vsHf)}`));
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
