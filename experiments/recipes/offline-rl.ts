/**
 * `recipe: offline-rl` — the config of an offline RL run mapped onto rl/offline's trainers (Agentic
 * Transformer, Decision Transformer, behaviour cloning: the paper's Table 5 methods). The schema's
 * defaults are the trainers' DEFAULTS; this file resolves the dataset, checks it against the env,
 * and turns the run's tracker, progress, checkpoints and resume into the trainer's hooks.
 *
 * Metrics: the trainer's `train/*`, `perf/tokens_per_sec` and `eval/*` (rl/offline/at.ts);
 * `summary/normalized_score_last` and `summary/normalized_score_best` (CORL's last and best evaluation).
 */
import { join } from 'node:path';
import { InputError } from '../../common/index.js';
import { openDataset, type TrajectoryDataset } from '../../datasets/index.js';
import { ATTENTION_IMPLS } from '../../ring/index.js';
import { make } from '../../rl/envs/index.js';
import {
  AT_DEFAULTS,
  BC_DEFAULTS,
  DT_DEFAULTS,
  ensureAntMediumDataset,
  ensureLevelDataset,
  evaluationTarget,
  levelDataset,
  decodeOfflineCheckpoint,
  encodeOfflineCheckpoint,
  type EvaluationRecording,
  type OfflineHooks,
  type OfflineResult,
  offlineData,
  POLICY_FILE_LOADER,
  trainAt,
  trainBc,
  trainDt,
  writePolicyFiles,
} from '../../rl/index.js';
import { RolloutRecorder } from '../../rl/rollout/index.js';
import { maxWorkerThreads, WORKER_THREADS_WHY } from '../config/machine.js';
import { type InferFields, s } from '../config/schema.js';
import { datasetInfoFromFile } from '../dataset-input.js';
import { logModel } from '../logged-model.js';
import { linePlotSvg } from '../plot/svg.js';
import { RolloutUploads } from '../rollout/index.js';
import type { Recipe, RecipeContext } from './types.js';

// Each field: its doc line, the trainer's default (rl/offline's DEFAULTS: one source of truth), bounds.
const M = AT_DEFAULTS.model;
const T = AT_DEFAULTS.train;
const E = AT_DEFAULTS.eval;
const int = (doc: string, d: number, min = 1) => s.integer({ doc, default: d, min });
const positive = (doc: string, d: number) => s.number({ doc, default: d, min: 0, exclusiveMin: true });
const fields = {
  algo: s.enum(['at', 'dt', 'bc'] as const, {
    doc: 'Agentic Transformer, Decision Transformer or behaviour cloning',
    default: 'at',
  }),
  env: s.string({
    doc: 'Environment id the policy is evaluated on (must match the dataset)',
    default: AT_DEFAULTS.env,
  }),
  dataset: s.string({
    doc: 'Path to an Arrow trajectory dataset (file or Minari folder); auto: for Ant-v5 Minari’s mujoco/ant/medium-v0 or the dataset regenerated from rl/behavior/ant-medium.json; or a mixed dataset generated from the shipped PPO levels, e.g. hopper-medium-replay, hopper-medium-expert (exp data recipes lists them)',
    default: 'auto',
  }),
  verifyData: s.enum(['auto', 'always', 'never'] as const, {
    doc: 'Check the dataset on open: always: every value finite and the content digest; auto: the same up to 256 MiB of step data, else the rewards only (the run log says so); never: no check',
    default: 'auto',
  }),
  datasetSteps: int('Steps of a generated dataset (dataset: auto, or a mixed dataset name)', 100_000, 1000),
  returnScale: positive('Returns-to-go are divided by this (DT: 1000 for MuJoCo)', AT_DEFAULTS.returnScale),
  model: s.object(
    {
      dModel: int('Embedding width', M.dModel),
      layers: int('Transformer blocks', M.layers),
      heads: int('Attention heads', M.heads),
      attention: s.enum(ATTENTION_IMPLS, { doc: 'Attention implementation', default: M.attention }),
      devices: s.integer({
        doc: 'Ring devices N (attention: ring)',
        default: M.devices,
        min: 1,
        max: maxWorkerThreads(),
        maxWhy: WORKER_THREADS_WHY,
      }),
      layout: s.enum(['contiguous', 'striped'] as const, { doc: 'Ring token layout', default: M.layout }),
      blockSize: int('Block size of memeff/blockwise/ring and the FFN chunk', M.blockSize),
      maxTimestep: int('Timestep embedding size (longest episode + 1)', M.maxTimestep),
      memoryBudgetMiB: s.number({
        doc: 'Per-device memory budget checked before training, on real memory (wasm heap, JS, native; an idle device holds about 40 MiB); 0: none',
        default: M.memoryBudgetMiB,
        min: 0,
      }),
    },
    { doc: 'The transformer (AT, DT)' },
  ),
  dt: s.object({ context: int('K, steps per window', DT_DEFAULTS.context) }, { doc: 'Decision Transformer' }),
  at: s.object(
    {
      maxTrajectories: int('Most trajectories in a chain of hindsight', AT_DEFAULTS.chain.maxTrajectories),
      contextSteps: int('Steps of context (the chain’s last steps are kept)', AT_DEFAULTS.chain.contextSteps),
      trials: int('Trials rolled out one after another at evaluation', AT_DEFAULTS.chain.trials),
    },
    { doc: 'Agentic Transformer' },
  ),
  bc: s.object(
    {
      topPercent: positive(
        'Train on the top x% of trajectories by return (BC-10%: 10)',
        BC_DEFAULTS.topPercent,
      ),
      hidden: int('Hidden units per layer (two layers)', BC_DEFAULTS.hidden),
      batchSize: int(
        'States per step (train.batchSize counts sequences for the transformers); CORL uses 256',
        BC_DEFAULTS.batchSize,
      ),
    },
    { doc: 'Behaviour cloning' },
  ),
  train: s.object(
    {
      steps: int('Gradient steps', T.steps),
      batchSize: int('Sequences per step (AT, DT); BC uses bc.batchSize', T.batchSize),
      lr: positive('Peak learning rate (AdamW)', T.lr),
      weightDecay: s.number({ doc: 'AdamW weight decay', default: T.weightDecay, min: 0 }),
      warmup: int('Linear warmup steps', T.warmup, 0),
      clip: s.number({ doc: 'Gradient clipping (global norm; 0: none)', default: T.clip, min: 0 }),
      evalEvery: int('Steps between evaluations (0: only at the end)', T.evalEvery, 0),
    },
    { doc: 'Optimisation' },
  ),
  eval: s.object(
    {
      episodes: int('Evaluation episodes (AT: each is n trials)', E.episodes),
      maxEpisodeSteps: int('Episode length cap at evaluation (0: the env’s limit)', E.maxEpisodeSteps, 0),
      targetReturn: s.number({
        doc: 'Target return for AT/DT (0: the dataset’s best return)',
        default: E.targetReturn,
      }),
      seed: int('Seed of the first evaluation episode', E.seed, 0),
      record: s.boolean({
        doc: 'Record the first, best and worst episode of each evaluation: rollouts/step-<N>/rollouts.arrow and replay.html artifacts (issue 18)',
        default: false,
      }),
      video: s.boolean({
        doc: 'Also log an MP4 per recorded episode (implies record; needs chromium and ffmpeg: scripts/browser-env.sh)',
        default: false,
      }),
    },
    { doc: 'Evaluation' },
  ),
};

export type OfflineRlConfig = InferFields<typeof fields>;
type Ctx = RecipeContext<OfflineRlConfig>;

/** The dataset file: a path, a mixed level dataset (rl/levels.ts), or `auto` (ant-medium, issue 6). */
async function resolveDataset(ctx: Ctx): Promise<string> {
  const c = ctx.config;
  const generate = { steps: c.datasetSteps, signal: ctx.signal, onProgress: (line: string) => ctx.log(line) };
  const mixed = levelDataset(c.dataset);
  if (mixed) {
    if (mixed.envId !== c.env)
      throw new InputError(
        `offline-rl.dataset: ${c.dataset} is ${mixed.envId} data; offline-rl.env is ${c.env} (set env: ${mixed.envId})`,
      );
    const made = ensureLevelDataset(c.dataset, generate);
    ctx.log(`dataset: ${made.path} (${mixed.datasetId}${made.created ? ', generated now' : ', cached'})`);
    return made.path;
  }
  if (c.dataset !== 'auto') return c.dataset;
  if (c.env !== 'Ant-v5')
    throw new InputError(
      `offline-rl.dataset: auto has an embedded dataset for Ant-v5 only; for ${c.env} import one (exp data import minari|d4rl …, or exp data collect) and give its path`,
    );
  const found = await ensureAntMediumDataset(generate);
  ctx.log(`dataset: ${found.path} (${found.source}${found.created ? ', generated now' : ', cached'})`);
  return found.path;
}

/** The dataset must be the env's: same id when it records one, same observation and action sizes (issue 6). */
function checkDataset(ds: TrajectoryDataset, c: OfflineRlConfig, file: string): void {
  const env = make<Float64Array, Float32Array>(c.env);
  const [obsDim, actDim] = [env.observationSpace, env.actionSpace].map(
    (sp) => (sp as unknown as { shape: number[] }).shape[0],
  );
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

/** The run's tracker, progress, checkpoints and resume as the trainer's hooks. */
function hooksOf(ctx: Ctx): OfflineHooks {
  const r = ctx.resume;
  return {
    logger: ctx.tracker,
    params: (values) => ctx.tracker.params(values),
    log: (line) => ctx.log(line),
    progress: (label, total) => ctx.progress(label, total),
    signal: ctx.signal,
    optionsPath: 'offline-rl',
    backend: ctx.backend.name,
    checkpoints: {
      due: (step) => ctx.checkpoints.due(step),
      save: (k) => ctx.checkpoints.save(encodeOfflineCheckpoint(k)),
    },
    // BC drew its batches from the run's generator before it had its own: its state then
    resume:
      r &&
      decodeOfflineCheckpoint(r.step, r.state, r.tensors, ctx.config.algo === 'bc' ? r.rngState : undefined),
  };
}

/**
 * eval.record / eval.video: a recorder per evaluation; its episodes are logged as artifacts in
 * the background (a video takes seconds) and `done` awaits them before the run finishes.
 */
function evaluationRecording(ctx: Ctx): EvaluationRecording & { done(): Promise<void> } {
  let current: RolloutRecorder | undefined;
  const uploads = new RolloutUploads((local, path) => ctx.tracker.file(local, path), {
    video: ctx.config.eval.video,
    who: 'offline-rl.eval.video',
  });
  return {
    recorder: () => {
      current = new RolloutRecorder();
      return current;
    },
    evaluated: (step) => {
      if (!current?.episodesSeen) return;
      const r = current.result({ run: ctx.runId, step: String(step) });
      current = undefined;
      uploads.add(step, r);
    },
    done: () => uploads.done(),
  };
}

async function run(ctx: Ctx): Promise<void> {
  const c = ctx.config;
  const file = await resolveDataset(ctx);
  const ds = openDataset(file, { verify: c.verifyData });
  try {
    // NOTE: corrupt data fails here, not as NaN losses later (issue 16 item 6)
    ctx.log(`dataset ${file}: ${ds.verification.note}`);
    checkDataset(ds, c, file);
    const data = offlineData(ds, c.env);
    // MLflow's LocalArtifactDatasetSource JSON and an mlflow_colspec schema (issue 15)
    const profile = { episodes: ds.numEpisodes, steps: ds.totalSteps };
    await ctx.tracker.dataset(
      await datasetInfoFromFile(file, { name: ds.info.datasetId, digest: ds.info.digest, profile }),
      'training',
    );
    ctx.tracker.params({
      'data.episodes': ds.numEpisodes,
      'data.steps': ds.totalSteps,
      'data.best_return': data.bestReturn.toFixed(1),
      'data.verification': ds.verification.status,
      'eval.target': evaluationTarget(data, c.eval).toFixed(1),
    });
    const common = { env: c.env, seed: ctx.seed, train: c.train, eval: c.eval };
    const recording = c.eval.record || c.eval.video ? evaluationRecording(ctx) : undefined;
    const hooks = { ...hooksOf(ctx), rollouts: recording };
    const result =
      c.algo === 'at'
        ? await trainAt(data, { ...common, returnScale: c.returnScale, model: c.model, chain: c.at }, hooks)
        : c.algo === 'dt'
          ? await trainDt(
              data,
              { ...common, returnScale: c.returnScale, model: c.model, context: c.dt.context },
              hooks,
            )
          : await trainBc(data, { ...common, ...c.bc }, hooks);
    await recording?.done();
    await finish(ctx, result);
  } finally {
    ds.close();
  }
}

/** The summary metrics, the evaluations as a table and a plot, and the policy as an MLflow model (issue 15). */
async function finish(ctx: Ctx, { evals, policy }: OfflineResult): Promise<void> {
  if (ctx.signal.aborted) return;
  const c = ctx.config;
  if (evals.length > 0) {
    const lastStep = evals[evals.length - 1].step;
    ctx.tracker.metric('summary/normalized_score_last', evals[evals.length - 1].score, lastStep);
    ctx.tracker.metric('summary/normalized_score_best', Math.max(...evals.map((e) => e.score)), lastStep);
    await ctx.tracker.table(
      'evaluations',
      evals.map((e) => ({ step: e.step, normalized_score: e.score, best_trial: e.best ?? null })),
    );
    const series = [{ name: 'eval', x: evals.map((e) => e.step), y: evals.map((e) => e.score) }];
    const title = `${c.algo.toUpperCase()} on ${c.env}`;
    await ctx.tracker.plot(
      'normalized_score',
      linePlotSvg({ title, xLabel: 'step', yLabel: 'D4RL-normalised score', series }),
    );
  }
  if (!policy) return;
  // its signature is the env-facing map, one observation to one action (AT and DT keep their context themselves)
  const { json, bin, parameters } = writePolicyFiles(join(ctx.workDir, 'policy'), policy);
  try {
    const logged = await logModel(ctx.tracker, {
      name: 'policy',
      modelType: { at: 'agentic-transformer', dt: 'decision-transformer', bc: 'behaviour-cloning' }[c.algo],
      files: [
        { local: json, path: 'policy.json' },
        { local: bin, path: 'weights.bin' },
      ],
      inputs: [{ name: 'observation', dtype: 'float32', shape: [-1, policy.obsDim] }],
      outputs: [{ name: 'action', dtype: 'float32', shape: [-1, policy.actDim] }],
      flavor: { format: 'ring-harness-policy', loader: POLICY_FILE_LOADER },
      params: { algo: c.algo, env: c.env, parameters },
      step: c.train.steps,
    });
    ctx.log(`logged model ${logged.modelId} (models:/${logged.modelId})`);
  } catch (err) {
    ctx.log(`logged model not written: ${(err as Error).message}`);
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
