/**
 * `recipe: offline-rl` — the config of an offline RL run mapped onto rl/offline's `runOffline`
 * (Agentic Transformer, Decision Transformer, behaviour cloning: the paper's Table 5 methods). The
 * schema is rl/offline's documented options (their defaults the trainers' DEFAULTS); this file
 * turns the run's tracker, progress, checkpoints and resume into the trainer's hooks and logs
 * the result.
 *
 * Metrics: the trainer's `train/*`, `perf/tokens_per_sec` and `eval/*` (rl/offline/at.ts);
 * `summary/normalized_score_last` and `summary/normalized_score_best` (CORL's last and best evaluation).
 */
import { join } from 'node:path';
import {
  decodeOfflineCheckpoint,
  encodeOfflineCheckpoint,
  OFFLINE_RUN_OPTIONS,
  type OfflineResult,
  type OfflineRunHooks,
  type OfflineRunOptions,
  POLICY_FILE_LOADER,
  runOffline,
  writePolicyFiles,
} from '../../rl/index.js';
import { maxWorkerThreads, WORKER_THREADS_WHY } from '../config/machine.js';
import { optionSchema } from '../config/option-schema.js';
import { s } from '../config/schema.js';
import { datasetInfoFromFile } from '../dataset-input.js';
import { logModel } from '../logged-model.js';
import { linePlotSvg } from '../plot/svg.js';
import { evaluationRecording } from '../rollout/index.js';
import type { Recipe, RecipeContext } from './types.js';

export type OfflineRlConfig = OfflineRunOptions;
type Ctx = RecipeContext<OfflineRlConfig>;

const devices = OFFLINE_RUN_OPTIONS.fields.model.fields.devices;
// the ring's devices are worker threads: the machine bounds them (issue 16)
const schema = optionSchema(OFFLINE_RUN_OPTIONS, {
  'model.devices': s.integer({
    doc: devices.doc,
    default: devices.default,
    min: 1,
    max: maxWorkerThreads(),
    maxWhy: WORKER_THREADS_WHY,
  }),
});

/** The run's tracker, progress, checkpoints and resume as the trainer's hooks. */
function hooksOf(ctx: Ctx): OfflineRunHooks {
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
    // MLflow's LocalArtifactDatasetSource JSON and an mlflow_colspec schema (issue 15)
    onDataset: async (file, ds) => {
      const profile = { episodes: ds.numEpisodes, steps: ds.totalSteps };
      const info = await datasetInfoFromFile(file, {
        name: ds.info.datasetId,
        digest: ds.info.digest,
        profile,
      });
      await ctx.tracker.dataset(info, 'training');
    },
  };
}

/** Trains (recording evaluations when asked), then logs the result. */
async function run(ctx: Ctx): Promise<void> {
  const { eval: e } = ctx.config;
  // eval.record / eval.video: logged in the background (a video takes seconds), awaited at the end
  const recording =
    e.record || e.video
      ? evaluationRecording((local, path) => ctx.tracker.file(local, path), ctx.runId, {
          video: e.video,
          who: 'offline-rl.eval.video',
        })
      : undefined;
  const result = await runOffline(ctx.config, ctx.seed, { ...hooksOf(ctx), rollouts: recording });
  await recording?.done();
  await finish(ctx, result);
}

/** The summary metrics, the evaluations as a table and a plot, and the policy as an MLflow model (issue 15). */
async function finish(ctx: Ctx, { evals, policy }: OfflineResult): Promise<void> {
  if (ctx.signal.aborted) return;
  const c = ctx.config;
  if (evals.length > 0) {
    const lastStep = evals[evals.length - 1].step;
    ctx.tracker.metric('summary/normalized_score_last', evals[evals.length - 1].score, lastStep);
    ctx.tracker.metric('summary/normalized_score_best', Math.max(...evals.map((e) => e.score)), lastStep);
    const rows = evals.map((e) => ({ step: e.step, normalized_score: e.score, best_trial: e.best ?? null }));
    await ctx.tracker.table('evaluations', rows);
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
  schema,
  deviceCount: (c) => (c.model.attention === 'ring' ? c.model.devices : 1),
  // `at-blockwise`, `dt-ring-n4`, `bc`: AT and DT runs differ by name in MLflow (issue 15)
  runLabel: (c) =>
    c.algo === 'bc'
      ? 'bc'
      : `${c.algo}-${c.model.attention}${c.model.attention === 'ring' ? `-n${c.model.devices}` : ''}`,
  run,
};
