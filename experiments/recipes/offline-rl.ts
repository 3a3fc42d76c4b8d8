/**
 * `recipe: offline-rl` — offline RL on an Arrow trajectory dataset with Agentic Transformer,
 * Decision Transformer or behaviour cloning (the paper's Table 5 methods), evaluated on the
 * rl/envs task: data → model on ring devices → train loop (log, checkpoint, evaluate) → summary.
 *
 * Metrics: `train/loss`, `train/lr`, `train/grad_norm`, `perf/tokens_per_sec`;
 * `eval/return_mean`, `eval/return_std`, `eval/normalized_score` (D4RL-normalised mean; for AT the
 * last of the n trials, and `eval/normalized_score_best_trial` the best), at each evaluation;
 * `summary/normalized_score_last` and `summary/normalized_score_best` (CORL's last and best evaluation).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InputError, Rng } from '../../common/index.js';
import {
  AtChainSampler,
  DtWindowSampler,
  openDataset,
  stateNorm,
  type TrajectoryDataset,
} from '../../datasets/index.js';
import {
  type AttentionImpl,
  type ProbedPeak,
  RingGroup,
  type RingLayout,
  tokenIndices,
} from '../../ring/index.js';
import { AdamW, clipByGlobalNorm, warmupCosine } from '../../train/index.js';
import { make } from '../../rl/envs/index.js';
import {
  ensureAntMediumDataset,
  ensureLevelDataset,
  levelDataset,
  type ReferenceScores,
  referenceScores,
} from '../../rl/index.js';
import { atModelConfig, atRollout, atTokens } from '../../rl/policies/agentic-transformer.js';
import { BcPolicy, topEpisodes } from '../../rl/policies/bc.js';
import { dtAct, dtModelConfig, dtTokens } from '../../rl/policies/decision-transformer.js';
import { padTokens, selectTokens, type TokenBatch } from '../../rl/policies/tokens.js';
import type { InitArgs, StepArgs, StepResult } from '../../rl/policies/train-device.js';
import { trainMessageFloats } from '../../rl/policies/train-device.js';
import {
  TrajectoryTransformer,
  type TrajectoryTransformerConfig,
} from '../../rl/policies/trajectory-transformer.js';
import { evaluateEpisodes, rolloutEnv, summarize } from '../../rl/evaluate.js';
import { maxWorkerThreads, WORKER_THREADS_WHY } from '../config/machine.js';
import { type InferFields, s } from '../config/schema.js';
import { datasetInfoFromFile } from '../dataset-input.js';
import { logModel } from '../logged-model.js';
import { linePlotSvg } from '../plot/svg.js';
import type { Recipe, RecipeContext } from './types.js';

const fields = {
  algo: s.enum(['at', 'dt', 'bc'] as const, {
    doc: 'Agentic Transformer, Decision Transformer or behaviour cloning',
    default: 'at',
  }),
  env: s.string({
    doc: 'Environment id the policy is evaluated on (must match the dataset)',
    default: 'Ant-v5',
  }),
  dataset: s.string({
    doc: 'Path to an Arrow trajectory dataset (file or Minari folder); auto: for Ant-v5 Minari’s mujoco/ant/medium-v0 or the dataset regenerated from rl/behavior/ant-medium.json; or a mixed dataset generated from the shipped PPO levels, e.g. hopper-medium-replay, hopper-medium-expert (exp data recipes lists them)',
    default: 'auto',
  }),
  verifyData: s.enum(['auto', 'always', 'never'] as const, {
    doc: 'Check the dataset on open: always: every value finite and the content digest; auto: the same up to 256 MiB of step data, else the rewards only (the run log says so); never: no check',
    default: 'auto',
  }),
  datasetSteps: s.integer({
    doc: 'Steps of a generated dataset (dataset: auto, or a mixed dataset name)',
    default: 100_000,
    min: 1000,
  }),
  returnScale: s.number({
    doc: 'Returns-to-go are divided by this (DT: 1000 for MuJoCo)',
    default: 1000,
    min: 0,
    exclusiveMin: true,
  }),
  model: s.object(
    {
      dModel: s.integer({ doc: 'Embedding width', default: 128, min: 1 }),
      layers: s.integer({ doc: 'Transformer blocks', default: 3, min: 1 }),
      heads: s.integer({ doc: 'Attention heads', default: 1, min: 1 }),
      attention: s.enum(['vanilla', 'memeff', 'blockwise', 'ring'] as const, {
        doc: 'Attention implementation',
        default: 'blockwise',
      }),
      devices: s.integer({
        doc: 'Ring devices N (attention: ring)',
        default: 1,
        min: 1,
        max: maxWorkerThreads(),
        maxWhy: WORKER_THREADS_WHY,
      }),
      layout: s.enum(['contiguous', 'striped'] as const, { doc: 'Ring token layout', default: 'striped' }),
      blockSize: s.integer({
        doc: 'Block size of memeff/blockwise/ring and the FFN chunk',
        default: 128,
        min: 1,
      }),
      maxTimestep: s.integer({ doc: 'Timestep embedding size (longest episode + 1)', default: 1001, min: 1 }),
      memoryBudgetMiB: s.number({
        doc: 'Per-device memory budget checked before training, on real memory (wasm heap, JS, native; an idle device holds about 40 MiB); 0: none',
        default: 0,
        min: 0,
      }),
    },
    { doc: 'The transformer (AT, DT)' },
  ),
  dt: s.object(
    { context: s.integer({ doc: 'K, steps per window', default: 20, min: 1 }) },
    { doc: 'Decision Transformer' },
  ),
  at: s.object(
    {
      maxTrajectories: s.integer({ doc: 'Most trajectories in a chain of hindsight', default: 4, min: 1 }),
      contextSteps: s.integer({
        doc: 'Steps of context (the chain’s last steps are kept)',
        default: 256,
        min: 1,
      }),
      trials: s.integer({ doc: 'Trials rolled out one after another at evaluation', default: 2, min: 1 }),
    },
    { doc: 'Agentic Transformer' },
  ),
  bc: s.object(
    {
      topPercent: s.number({
        doc: 'Train on the top x% of trajectories by return (BC-10%: 10)',
        default: 100,
        min: 0,
        exclusiveMin: true,
      }),
      hidden: s.integer({ doc: 'Hidden units per layer (two layers)', default: 256, min: 1 }),
      // NOTE: a transformer step regresses batchSize × steps-per-sequence actions (AT's default: 8 × 64);
      // an MLP fed train.batchSize states (8) would see 64× fewer, so BC has its own batch (CORL's 256)
      batchSize: s.integer({
        doc: 'States per step (train.batchSize counts sequences for the transformers); CORL uses 256',
        default: 256,
        min: 1,
      }),
    },
    { doc: 'Behaviour cloning' },
  ),
  train: s.object(
    {
      steps: s.integer({ doc: 'Gradient steps', default: 2000, min: 1 }),
      batchSize: s.integer({ doc: 'Sequences per step (AT, DT); BC uses bc.batchSize', default: 16, min: 1 }),
      lr: s.number({ doc: 'Peak learning rate (AdamW)', default: 1e-4, min: 0, exclusiveMin: true }),
      weightDecay: s.number({ doc: 'AdamW weight decay', default: 1e-4, min: 0 }),
      warmup: s.integer({ doc: 'Linear warmup steps', default: 200, min: 0 }),
      clip: s.number({ doc: 'Gradient clipping (global norm; 0: none)', default: 0.25, min: 0 }),
      evalEvery: s.integer({ doc: 'Steps between evaluations (0: only at the end)', default: 500, min: 0 }),
    },
    { doc: 'Optimisation' },
  ),
  eval: s.object(
    {
      episodes: s.integer({ doc: 'Evaluation episodes (AT: each is n trials)', default: 5, min: 1 }),
      maxEpisodeSteps: s.integer({
        doc: 'Episode length cap at evaluation (0: the env’s limit)',
        default: 0,
        min: 0,
      }),
      targetReturn: s.number({ doc: 'Target return for AT/DT (0: the dataset’s best return)', default: 0 }),
      seed: s.integer({ doc: 'Seed of the first evaluation episode', default: 1000, min: 0 }),
    },
    { doc: 'Evaluation' },
  ),
};

export type OfflineRlConfig = InferFields<typeof fields>;

const trainModule = new URL('../../rl/policies/train-device.js', import.meta.url);

/** Checks the dataset against the config before anything trains (issue 6: bad input). */
function checkDataset(ds: TrajectoryDataset, c: OfflineRlConfig, file: string): void {
  const env = make<Float64Array, Float32Array>(c.env);
  const obsDim = (env.observationSpace as unknown as { shape: number[] }).shape[0];
  const actDim = (env.actionSpace as unknown as { shape: number[] }).shape[0];
  env.close();
  if (ds.info.envId && ds.info.envId !== c.env)
    throw new InputError(
      `${file}: dataset was collected on ${ds.info.envId}; the config evaluates on ${c.env} (offline-rl.env)`,
    );
  if (ds.obsDim !== obsDim || ds.actDim !== actDim)
    throw new InputError(
      `${file}: dataset has observations of ${ds.obsDim} and actions of ${ds.actDim} dims; ${c.env} has ${obsDim} and ${actDim}`,
    );
}

/** The dataset file for `dataset: auto` (issue 6: Minari or D4RL when present locally, else the recipe). */
async function resolveDataset(ctx: RecipeContext<OfflineRlConfig>): Promise<string> {
  const c = ctx.config;
  const mixed = levelDataset(c.dataset);
  if (mixed) {
    if (mixed.envId !== c.env)
      throw new InputError(
        `offline-rl.dataset: ${c.dataset} is ${mixed.envId} data; offline-rl.env is ${c.env} (set env: ${mixed.envId})`,
      );
    const made = ensureLevelDataset(c.dataset, {
      steps: c.datasetSteps,
      signal: ctx.signal,
      onProgress: (line) => ctx.log(line),
    });
    ctx.log(`dataset: ${made.path} (${mixed.datasetId}${made.created ? ', generated now' : ', cached'})`);
    return made.path;
  }
  if (c.dataset !== 'auto') return c.dataset;
  if (c.env !== 'Ant-v5')
    throw new InputError(
      `offline-rl.dataset: auto has an embedded dataset for Ant-v5 only; for ${c.env} import one (exp data import minari|d4rl …, or exp data collect) and give its path`,
    );
  const found = await ensureAntMediumDataset({
    steps: c.datasetSteps,
    signal: ctx.signal,
    onProgress: (line) => ctx.log(line),
  });
  ctx.log(`dataset: ${found.path} (${found.source}${found.created ? ', generated now' : ', cached'})`);
  return found.path;
}

async function run(ctx: RecipeContext<OfflineRlConfig>): Promise<void> {
  const c = ctx.config;
  const file = await resolveDataset(ctx);
  const ds = openDataset(file, { verify: c.verifyData });
  try {
    // NOTE: corrupt data fails here, not as NaN losses later (issue 16 item 6)
    ctx.log(`dataset ${file}: ${ds.verification.note}`);
    checkDataset(ds, c, file);
    // MLflow's LocalArtifactDatasetSource JSON and an mlflow_colspec schema (issue 15)
    await ctx.tracker.dataset(
      await datasetInfoFromFile(file, {
        name: ds.info.datasetId,
        digest: ds.info.digest,
        profile: { episodes: ds.numEpisodes, steps: ds.totalSteps },
      }),
      'training',
    );
    const norm = stateNorm(ds);
    const returns = ds.returns();
    const best = returns.reduce((a, b) => Math.max(a, b), -Infinity);
    const target = c.eval.targetReturn || best;
    ctx.tracker.params({
      'data.episodes': ds.numEpisodes,
      'data.steps': ds.totalSteps,
      'data.best_return': best.toFixed(1),
      'data.verification': ds.verification.status,
      'eval.target': target.toFixed(1),
    });
    if (c.algo === 'bc') await trainBc(ctx, ds, norm);
    else await trainTransformer(ctx, ds, norm, target);
  } finally {
    ds.close();
  }
}

interface EvalPoint {
  step: number;
  score: number;
  best?: number;
}

async function finish(ctx: RecipeContext<OfflineRlConfig>, evals: EvalPoint[]): Promise<void> {
  if (ctx.signal.aborted || evals.length === 0) return;
  const last = evals[evals.length - 1].score;
  const bestEval = Math.max(...evals.map((e) => e.score));
  ctx.tracker.metric('summary/normalized_score_last', last, evals[evals.length - 1].step);
  ctx.tracker.metric('summary/normalized_score_best', bestEval, evals[evals.length - 1].step);
  await ctx.tracker.table(
    'evaluations',
    evals.map((e) => ({ step: e.step, normalized_score: e.score, best_trial: e.best ?? null })),
  );
  await ctx.tracker.plot(
    'normalized_score',
    linePlotSvg({
      title: `${ctx.config.algo.toUpperCase()} on ${ctx.config.env}`,
      xLabel: 'step',
      yLabel: 'D4RL-normalised score',
      series: [{ name: 'eval', x: evals.map((e) => e.step), y: evals.map((e) => e.score) }],
    }),
  );
}

/**
 * The trained policy as an MLflow logged model (issue 15): `policy.json` (algorithm, env, sizes,
 * model config, state normalisation, target return, weight lengths) and `weights.bin` (the float32
 * weights, little-endian, in that order); its signature is the env-facing map, one observation to
 * one action (AT and DT keep their context of earlier steps themselves).
 */
async function logPolicy(
  ctx: RecipeContext<OfflineRlConfig>,
  weights: Float32Array[],
  step: number,
  about: {
    obsDim: number;
    actDim: number;
    model: unknown;
    norm?: { mean: Float32Array; std: Float32Array };
    target?: number;
  },
): Promise<void> {
  const c = ctx.config;
  const dir = join(ctx.workDir, 'policy');
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'policy.json');
  const bin = join(dir, 'weights.bin');
  writeFileSync(
    json,
    `${JSON.stringify({
      algo: c.algo,
      env: c.env,
      obs_dim: about.obsDim,
      act_dim: about.actDim,
      model: about.model,
      state_mean: about.norm ? Array.from(about.norm.mean) : null,
      state_std: about.norm ? Array.from(about.norm.std) : null,
      target_return: about.target ?? null,
      weight_lengths: weights.map((w) => w.length),
    })}\n`,
  );
  const all = new Float32Array(weights.reduce((n, w) => n + w.length, 0));
  let at = 0;
  for (const w of weights) {
    all.set(w, at);
    at += w.length;
  }
  writeFileSync(bin, new Uint8Array(all.buffer));
  try {
    const logged = await logModel(ctx.tracker, {
      name: 'policy',
      modelType: { at: 'agentic-transformer', dt: 'decision-transformer', bc: 'behaviour-cloning' }[c.algo],
      files: [
        { local: json, path: 'policy.json' },
        { local: bin, path: 'weights.bin' },
      ],
      inputs: [{ name: 'observation', dtype: 'float32', shape: [-1, about.obsDim] }],
      outputs: [{ name: 'action', dtype: 'float32', shape: [-1, about.actDim] }],
      flavor: {
        format: 'ring-harness-policy',
        loader:
          'rl/policies from policy.json and weights.bin (float32, little-endian, weight_lengths in order)',
      },
      params: { algo: c.algo, env: c.env, parameters: all.length },
      step,
    });
    ctx.log(`logged model ${logged.modelId} (models:/${logged.modelId})`);
  } catch (err) {
    ctx.log(`logged model not written: ${(err as Error).message}`);
  }
}

/** Evaluations after `step` (every `evalEvery` steps and at the last): what the ETA still has to include. */
function evalsLeft(c: OfflineRlConfig, step: number): number {
  const every = c.train.evalEvery;
  const regular = every > 0 ? Math.floor(c.train.steps / every) - Math.floor(step / every) : 0;
  const last = every > 0 && c.train.steps % every === 0 ? 0 : step < c.train.steps ? 1 : 0;
  return regular + last;
}

function evalEnv(c: OfflineRlConfig, norm: { mean: Float32Array; std: Float32Array }) {
  return rolloutEnv({
    envId: c.env,
    maxEpisodeSteps: c.eval.maxEpisodeSteps || undefined,
    stateMean: norm.mean,
    stateStd: norm.std,
  });
}

async function trainTransformer(
  ctx: RecipeContext<OfflineRlConfig>,
  ds: TrajectoryDataset,
  norm: { mean: Float32Array; std: Float32Array },
  target: number,
): Promise<void> {
  const c = ctx.config;
  const refs = referenceScores({ info: ds.info, envId: c.env });
  const m = c.model;
  const N = m.attention === 'ring' ? m.devices : 1;
  const layout = m.layout as RingLayout;
  if (m.attention !== 'ring' && m.devices !== 1)
    throw new InputError(
      `offline-rl.model.devices: ${m.attention} runs on one device; got ${m.devices} (use attention: ring)`,
    );
  const base = {
    dModel: m.dModel,
    layers: m.layers,
    heads: m.heads,
    maxTimestep: m.maxTimestep,
    attention: m.attention as AttentionImpl,
    blockSize: m.blockSize,
  };
  const config: TrajectoryTransformerConfig =
    c.algo === 'at' ? atModelConfig(ds.obsDim, ds.actDim, base) : dtModelConfig(ds.obsDim, ds.actDim, base);
  // the sampler's generator is saved in checkpoints, so a resumed run draws the same batches
  const sampler =
    c.algo === 'at'
      ? new AtChainSampler(ds, {
          batchSize: c.train.batchSize,
          maxTrajectories: c.at.maxTrajectories,
          contextSteps: c.at.contextSteps,
          seed: ctx.seed,
          returnScale: c.returnScale,
        })
      : new DtWindowSampler(ds, {
          batchSize: c.train.batchSize,
          context: c.dt.context,
          seed: ctx.seed,
          returnScale: c.returnScale,
        });
  const resumed = ctx.resume?.state as { samplerRng?: number } | undefined;
  if (resumed?.samplerRng !== undefined) sampler.rngState = resumed.samplerRng;
  const sample = (): TokenBatch =>
    sampler instanceof AtChainSampler
      ? atTokens(sampler.sample(), m.maxTimestep)
      : dtTokens(sampler.sample(), m.maxTimestep);
  const group = await RingGroup.create({ devices: N, backend: ctx.backend.name });
  try {
    const first = sample();
    const seqLen = Math.ceil(first.length / N) * N;
    const probe = new TrajectoryTransformer(config, new Rng(0));
    const parameters = probe.parameterCount();
    probe.dispose();
    const messageFloats = trainMessageFloats(config, c.train.batchSize, seqLen / N, parameters, N);
    const initArgs: InitArgs = {
      config,
      seed: ctx.seed,
      weightDecay: c.train.weightDecay,
      weights: ctx.resume
        ? Object.keys(ctx.resume.tensors)
            .filter((k) => k.startsWith('w'))
            .sort(byIndex)
            .map((k) => ctx.resume!.tensors[k].data as Float32Array)
        : undefined,
      optimizer: ctx.resume
        ? optimizerFrom(ctx.resume.tensors, (ctx.resume.state as { optStep: number }).optStep)
        : undefined,
    };
    await group.run(trainModule, 'initTrainer', Array(N).fill(initArgs), messageFloats);
    ctx.tracker.params({ 'model.parameters': parameters, 'model.tokens_per_sequence': first.length });
    const start = (ctx.resume?.step ?? 0) + 1;
    const progress = ctx.progress(`${c.algo} ${m.attention}${N > 1 ? ` N=${N}` : ''}`, c.train.steps);
    progress.expectPhases('eval', evalsLeft(c, start - 1));
    const evals: EvalPoint[] = (
      (ctx.resume?.state as { evals?: EvalPoint[] } | undefined)?.evals ?? []
    ).slice();
    const shardsOf = (b: TokenBatch, lr: number): StepArgs[] => {
      const padded = padTokens(b, seqLen - b.length);
      const totalWeight = padded.weights.reduce((a, x) => a + x, 0);
      return Array.from({ length: N }, (_, r) => ({
        tokens: N === 1 ? padded : selectTokens(padded, tokenIndices(r, N, seqLen, layout)),
        totalWeight,
        seqLen,
        layout,
        lr,
        clip: c.train.clip,
      }));
    };
    if (m.memoryBudgetMiB > 0) {
      // NOTE: a context the attention cannot hold in the budget fails here, before training (issue 6)
      // NOTE: the budget is on what a device really holds (issue 20): the probe's real peak (the
      // replica and AdamW's moments are resident), plus on a ring the step's all-reduce buffer of
      // every gradient (4 B/parameter, JS) and the receive buffers; tensor bytes are logged beside
      const peaks = await group.run<StepArgs, ProbedPeak>(
        trainModule,
        'probeMemory',
        shardsOf(first, 0),
        messageFloats,
      );
      const ringBytes = N > 1 ? group.commBytesPerDevice + 4 * (parameters + 1) : 0;
      const need = (Math.max(...peaks.map((p) => p.realBytes)) + ringBytes) / 2 ** 20;
      const tensors = (Math.max(...peaks.map((p) => p.tensorBytes)) + ringBytes) / 2 ** 20;
      ctx.tracker.params({
        'model.probe_mib_per_device': need.toFixed(1),
        'model.probe_tensor_mib_per_device': tensors.toFixed(1),
      });
      if (need > m.memoryBudgetMiB)
        throw new InputError(
          `offline-rl.model: ${first.length} tokens per sequence need ${need.toFixed(1)} MiB per device (real memory; ${tensors.toFixed(1)} MiB of it tensors) with ${m.attention}${N > 1 ? ` on ${N} devices` : ''}; the budget is ${m.memoryBudgetMiB} MiB (offline-rl.model.memoryBudgetMiB). Use attention: ring with more devices, or a shorter context`,
        );
    }
    let batch = first;
    let finalWeights: Float32Array[] | undefined;
    for (let step = start; step <= c.train.steps; step++) {
      if (ctx.signal.aborted) break;
      if (step > start) batch = sample();
      const lr = warmupCosine(step - 1, {
        lr: c.train.lr,
        warmup: c.train.warmup,
        total: c.train.steps,
        minLr: c.train.lr / 10,
      });
      const [res] = await group.run<StepArgs, StepResult>(
        trainModule,
        'trainStep',
        shardsOf(batch, lr),
        messageFloats,
      );
      ctx.tracker.metrics(
        {
          'train/loss': res.loss,
          'train/lr': lr,
          'train/grad_norm': res.gradNorm,
          'perf/tokens_per_sec': (c.train.batchSize * seqLen) / (res.ms / 1000),
        },
        step,
      );
      progress.update(step, { loss: res.loss });
      if (!Number.isFinite(res.loss))
        throw new Error(
          `offline-rl: train/loss is ${res.loss} at step ${step}; stopping (not training on NaN)`,
        );
      const evalNow = (c.train.evalEvery > 0 && step % c.train.evalEvery === 0) || step === c.train.steps;
      if (evalNow || ctx.checkpoints.due(step)) {
        const [state] = await group.run<
          null,
          { weights: Float32Array[]; optimizer: { step: number; m: Float32Array[]; v: Float32Array[] } }
        >(trainModule, 'trainerState', Array(N).fill(null), 1);
        if (evalNow) {
          progress.expectPhases('eval', evalsLeft(c, step - 1));
          progress.beginPhase('eval');
          evals.push(
            evaluateTransformer(ctx, config, state.weights, norm, target, step, refs, (e) =>
              progress.phaseDetail(`episode ${e + 1}/${c.eval.episodes}`),
            ),
          );
          progress.endPhase();
        }
        if (ctx.checkpoints.due(step) || step === c.train.steps)
          await saveCheckpoint(ctx, step, state, evals, sampler.rngState);
        if (step === c.train.steps) finalWeights = state.weights;
      }
    }
    progress.finish();
    await finish(ctx, evals);
    if (finalWeights && !ctx.signal.aborted)
      await logPolicy(ctx, finalWeights, c.train.steps, {
        obsDim: ds.obsDim,
        actDim: ds.actDim,
        model: config,
        norm,
        target,
      });
  } finally {
    await group.dispose();
  }
}

function byIndex(a: string, b: string): number {
  return Number(a.slice(1)) - Number(b.slice(1));
}

function optimizerFrom(tensors: Record<string, { data: Float32Array | Int32Array }>, step: number) {
  const keys = (p: string) =>
    Object.keys(tensors)
      .filter((k) => k.startsWith(p))
      .sort((a, b) => Number(a.slice(p.length)) - Number(b.slice(p.length)));
  return {
    step,
    m: keys('m').map((k) => tensors[k].data as Float32Array),
    v: keys('v').map((k) => tensors[k].data as Float32Array),
  };
}

async function saveCheckpoint(
  ctx: RecipeContext<OfflineRlConfig>,
  step: number,
  state: { weights: Float32Array[]; optimizer: { step: number; m: Float32Array[]; v: Float32Array[] } },
  evals: EvalPoint[],
  samplerRng?: number,
): Promise<void> {
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  state.weights.forEach((w, i) => {
    tensors[`w${i}`] = { shape: [w.length], data: w };
  });
  state.optimizer.m.forEach((w, i) => {
    tensors[`m${i}`] = { shape: [w.length], data: w };
  });
  state.optimizer.v.forEach((w, i) => {
    tensors[`v${i}`] = { shape: [w.length], data: w };
  });
  await ctx.checkpoints.save({
    step,
    state: {
      optStep: state.optimizer.step,
      evals: evals as unknown as never,
      ...(samplerRng !== undefined ? { samplerRng } : {}),
    },
    tensors,
  });
}

function evaluateTransformer(
  ctx: RecipeContext<OfflineRlConfig>,
  config: TrajectoryTransformerConfig,
  weights: Float32Array[],
  norm: { mean: Float32Array; std: Float32Array },
  target: number,
  step: number,
  refs: ReferenceScores | undefined,
  /** Called as episode `e` starts (the progress bar shows it). */
  onEpisode: (e: number) => void = () => undefined,
): EvalPoint {
  const c = ctx.config;
  // inference on this thread: incremental decoding with vanilla attention over a KV cache is
  // exact for every implementation, and holds only keys and values
  const model = new TrajectoryTransformer({ ...config, attention: 'vanilla' }, new Rng(0));
  model.setWeights(weights);
  const env = evalEnv(c, norm);
  try {
    if (c.algo === 'at') {
      const last: number[] = [];
      const bestTrial: number[] = [];
      for (let e = 0; e < c.eval.episodes; e++) {
        onEpisode(e);
        const trials = atRollout(model, env, {
          trials: c.at.trials,
          target,
          returnScale: c.returnScale,
          maxTimestep: c.model.maxTimestep,
          seed: c.eval.seed + e * c.at.trials,
          windowTokens: 4 * c.at.contextSteps,
        });
        last.push(trials[trials.length - 1]);
        bestTrial.push(Math.max(...trials));
      }
      const sl = summarize(refs, last);
      const sb = summarize(refs, bestTrial);
      log(ctx, step, sl, sb.normalizedMean);
      return { step, score: sl.normalizedMean ?? sl.mean, best: sb.normalizedMean ?? sb.mean };
    }
    const K = c.dt.context;
    let episode = 0;
    const returns = evaluateEpisodes(env, c.eval.episodes, c.eval.seed, () => {
      onEpisode(episode++);
      const h = {
        states: [] as Float32Array[],
        actions: [] as Float32Array[],
        returnsToGo: [] as number[],
        timesteps: [] as number[],
      };
      let rtg = target;
      return (obs, reward, t) => {
        rtg -= reward;
        h.states.push(obs);
        h.returnsToGo.push(rtg / c.returnScale);
        h.timesteps.push(Math.min(t, c.model.maxTimestep - 1));
        h.actions.push(new Float32Array(config.actDim));
        const a = dtAct(model, h, K, c.model.maxTimestep);
        h.actions[h.actions.length - 1] = a;
        return a;
      };
    });
    const sm = summarize(refs, returns);
    log(ctx, step, sm);
    return { step, score: sm.normalizedMean ?? sm.mean };
  } finally {
    env.close();
    model.dispose();
  }
}

function log(
  ctx: RecipeContext<OfflineRlConfig>,
  step: number,
  s: ReturnType<typeof summarize>,
  bestTrial?: number,
): void {
  ctx.tracker.metrics(
    {
      'eval/return_mean': s.mean,
      'eval/return_std': s.std,
      ...(s.normalizedMean !== undefined
        ? { 'eval/normalized_score': s.normalizedMean, 'eval/normalized_score_std': s.normalizedStd! }
        : {}),
      ...(bestTrial !== undefined ? { 'eval/normalized_score_best_trial': bestTrial } : {}),
    },
    step,
  );
  ctx.log(
    `step ${step}: return ${s.mean.toFixed(1)} ± ${s.std.toFixed(1)}${s.normalizedMean !== undefined ? `, normalised ${s.normalizedMean.toFixed(1)}` : ''}`,
  );
}

async function trainBc(
  ctx: RecipeContext<OfflineRlConfig>,
  ds: TrajectoryDataset,
  norm: { mean: Float32Array; std: Float32Array },
): Promise<void> {
  const c = ctx.config;
  const episodes = topEpisodes(ds.returns(), c.bc.topPercent);
  // the kept steps, normalised, in memory (BC data is small: states and actions only)
  const states: number[] = [];
  const actions: number[] = [];
  for (const e of episodes) {
    const sl = ds.steps(e, 0, ds.lengths[e]);
    for (let t = 0; t < ds.lengths[e]; t++) {
      for (let d = 0; d < ds.obsDim; d++)
        states.push((sl.observations[t * ds.obsDim + d] - norm.mean[d]) / norm.std[d]);
      for (let d = 0; d < ds.actDim; d++) actions.push(sl.actions[t * ds.actDim + d]);
    }
  }
  const n = actions.length / ds.actDim;
  const S = tf.tensor2d(Float32Array.from(states), [n, ds.obsDim]);
  const A = tf.tensor2d(Float32Array.from(actions), [n, ds.actDim]);
  const policy = new BcPolicy(ds.obsDim, ds.actDim, [c.bc.hidden, c.bc.hidden], new Rng(ctx.seed));
  const opt = new AdamW(policy.variables(), { lr: c.train.lr, weightDecay: c.train.weightDecay });
  const start = (ctx.resume?.step ?? 0) + 1;
  if (ctx.resume) {
    policy.setWeights(
      Object.keys(ctx.resume.tensors)
        .filter((k) => k.startsWith('w'))
        .sort(byIndex)
        .map((k) => ctx.resume!.tensors[k].data as Float32Array),
    );
    opt.load(optimizerFrom(ctx.resume.tensors, (ctx.resume.state as { optStep: number }).optStep));
  }
  const evals: EvalPoint[] = (
    (ctx.resume?.state as { evals?: EvalPoint[] } | undefined)?.evals ?? []
  ).slice();
  const progress = ctx.progress(`bc top ${c.bc.topPercent}%`, c.train.steps);
  progress.expectPhases('eval', evalsLeft(c, start - 1));
  try {
    for (let step = start; step <= c.train.steps; step++) {
      if (ctx.signal.aborted) break;
      const idx = Int32Array.from({ length: c.bc.batchSize }, () => ctx.rng.int(n));
      const lr = warmupCosine(step - 1, {
        lr: c.train.lr,
        warmup: c.train.warmup,
        total: c.train.steps,
        minLr: c.train.lr / 10,
      });
      const vars = policy.variables();
      const lossValue = tf.tidy(() => {
        const ids = tf.tensor1d(idx, 'int32');
        const { value, grads } = tf.variableGrads(
          () => policy.loss(tf.gather(S, ids), tf.gather(A, ids)),
          vars,
        );
        const { grads: g } = clipByGlobalNorm(
          vars.map((v) => grads[v.name]),
          c.train.clip,
        );
        opt.apply(g, lr);
        return value;
      });
      const loss = lossValue.dataSync()[0];
      lossValue.dispose();
      ctx.tracker.metrics({ 'train/loss': loss, 'train/lr': lr }, step);
      progress.update(step, { loss });
      if (!Number.isFinite(loss))
        throw new Error(`offline-rl: train/loss is ${loss} at step ${step}; stopping (not training on NaN)`);
      const evalNow = (c.train.evalEvery > 0 && step % c.train.evalEvery === 0) || step === c.train.steps;
      if (evalNow) {
        progress.expectPhases('eval', evalsLeft(c, step - 1));
        progress.beginPhase('eval');
        const env = evalEnv(c, norm);
        let episode = 0;
        const sm = summarize(
          referenceScores({ info: ds.info, envId: c.env }),
          evaluateEpisodes(env, c.eval.episodes, c.eval.seed, () => {
            progress.phaseDetail(`episode ${++episode}/${c.eval.episodes}`);
            return (obs) => policy.act(obs);
          }),
        );
        env.close();
        progress.endPhase();
        log(ctx, step, sm);
        evals.push({ step, score: sm.normalizedMean ?? sm.mean });
      }
      if (ctx.checkpoints.due(step) || step === c.train.steps) {
        const st = opt.state();
        await saveCheckpoint(ctx, step, { weights: policy.weights(), optimizer: st }, evals);
      }
    }
    progress.finish();
    await finish(ctx, evals);
    if (!ctx.signal.aborted && evals.length)
      await logPolicy(ctx, policy.weights(), c.train.steps, {
        obsDim: ds.obsDim,
        actDim: ds.actDim,
        model: { hidden: [c.bc.hidden, c.bc.hidden] },
        norm,
      });
  } finally {
    opt.dispose();
    policy.dispose();
    tf.dispose([S, A]);
  }
}

export const offlineRlRecipe: Recipe<OfflineRlConfig> = {
  name: 'offline-rl',
  describe:
    'Agentic Transformer, Decision Transformer or BC on an Arrow trajectory dataset, evaluated on rl/envs',
  schema: s.object(fields, { doc: 'Offline RL' }),
  deviceCount: (c) => (c.model.attention === 'ring' ? c.model.devices : 1),
  // `at-blockwise`, `dt-ring-n4`, `bc`: AT and DT runs differ by name in MLflow (issue 15)
  runLabel: (c) =>
    c.algo === 'bc'
      ? 'bc'
      : `${c.algo}-${c.model.attention}${c.model.attention === 'ring' ? `-n${c.model.devices}` : ''}`,
  run,
};
