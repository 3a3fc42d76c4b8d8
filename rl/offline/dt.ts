/**
 * Decision Transformer (Chen et al. 2021): a trajectory transformer on windows of K steps — each
 * step's tokens (return-to-go, state, action) — trained to predict each action from the tokens
 * before it. At evaluation it acts from the last K steps of the episode, conditioned on a target
 * return that falls by each reward received.
 *
 * Trained sequence-parallel on the ring (ring-trainer.ts); metrics: train/loss, train/lr,
 * train/grad_norm, perf/tokens_per_sec, eval/return_mean, eval/return_std, eval/normalized_score (+ _std).
 */
import { DtWindowSampler } from '../../datasets/index.js';
import { evaluateEpisodes, summarize } from '../evaluate.js';
import { type DtHistory, dtAct, dtModelConfig, dtTokens } from '../policies/decision-transformer.js';
import {
  checkOptions,
  EVAL_DEFAULTS,
  type EvalPoint,
  evaluationEnv,
  evaluationTarget,
  logEvaluation,
  type OfflineData,
  type OfflineEvalOptions,
  type OfflineHooks,
  type OfflineResult,
  type OfflineTrainOptions,
  optionNamer,
  TRAIN_DEFAULTS,
} from './common.js';
import {
  inferenceModel,
  MODEL_DEFAULTS,
  modelRules,
  tokenSampler,
  type TransformerModelOptions,
  trainOnRing,
  transformerBase,
} from './ring-trainer.js';

export interface DtOptions {
  /** Env the policy is evaluated on (the dataset's). */
  env: string;
  /** Seeds the model's initial weights and the window sampler. */
  seed: number;
  /** Returns-to-go are divided by this (1000 for MuJoCo). */
  returnScale: number;
  model: TransformerModelOptions;
  /** K, steps per window (training and acting). */
  context: number;
  train: OfflineTrainOptions;
  eval: OfflineEvalOptions;
}

export const DT_DEFAULTS: Readonly<DtOptions> = {
  env: 'Ant-v5',
  seed: 0,
  returnScale: 1000,
  model: MODEL_DEFAULTS,
  context: 20,
  train: TRAIN_DEFAULTS,
  eval: EVAL_DEFAULTS,
};

export async function trainDt(data: OfflineData, o: DtOptions, hooks: OfflineHooks): Promise<OfflineResult> {
  checkOptions(optionNamer(hooks, 'dt'), o, [
    ...modelRules(o.model),
    ['returnScale', o.returnScale, 'pos'],
    ['context', o.context, 'int1'],
  ]);
  const ds = data.dataset;
  const config = dtModelConfig(ds.obsDim, ds.actDim, transformerBase(o.model));
  const target = evaluationTarget(data, o.eval);
  const K = o.context;
  // the sampler's generator is saved in checkpoints, so a resumed run draws the same batches
  const windows = new DtWindowSampler(ds, {
    batchSize: o.train.batchSize,
    context: K,
    seed: o.seed,
    returnScale: o.returnScale,
  });
  const evaluate = (weights: Float32Array[], step: number, onEpisode: (e: number) => void): EvalPoint => {
    const model = inferenceModel(config, weights);
    const env = evaluationEnv(o.env, o.eval, data.norm, hooks);
    try {
      let episode = 0;
      const returns = evaluateEpisodes(env, o.eval.episodes, o.eval.seed, () => {
        onEpisode(episode++);
        const h: DtHistory = { states: [], actions: [], returnsToGo: [], timesteps: [] };
        let rtg = target;
        return (obs, reward, t) => {
          rtg -= reward;
          h.states.push(obs);
          h.returnsToGo.push(rtg / o.returnScale);
          h.timesteps.push(Math.min(t, o.model.maxTimestep - 1));
          // the current action is unknown while acting: zeros, replaced by the one taken
          h.actions.push(new Float32Array(config.actDim));
          const a = dtAct(model, h, K, o.model.maxTimestep);
          h.actions[h.actions.length - 1] = a;
          return a;
        };
      });
      const sm = summarize(data.references, returns);
      logEvaluation(hooks, step, sm);
      return { step, score: sm.normalizedMean ?? sm.mean };
    } finally {
      env.close();
      model.dispose();
    }
  };
  const { evals, weights } = await trainOnRing(
    {
      algo: 'dt',
      config,
      model: o.model,
      train: o.train,
      eval: o.eval,
      seed: o.seed,
      sampler: tokenSampler(windows, (b) => dtTokens(b, o.model.maxTimestep)),
      evaluate,
    },
    hooks,
  );
  const policy = weights && {
    algo: 'dt' as const,
    env: o.env,
    obsDim: ds.obsDim,
    actDim: ds.actDim,
    model: config,
    norm: data.norm,
    target,
    weights,
  };
  return { evals, policy };
}
