/**
 * Agentic Transformer (Liu & Abbeel 2023; the ring attention paper's Table 5): a trajectory
 * transformer trained on chains of hindsight — a few of the dataset's trajectories in order of
 * rising return, each step's tokens (return-to-go, state, action, completion) — with the loss on
 * the actions. At evaluation it rolls out `trials` trials one after another, each seeing the
 * earlier ones in its context, and is scored on the last (and on the best, as
 * `eval/normalized_score_best_trial`).
 *
 * Trained sequence-parallel on the ring (ring-trainer.ts); metrics: train/loss, train/lr,
 * train/grad_norm, perf/tokens_per_sec, eval/return_mean, eval/return_std, eval/normalized_score
 * (+ _std), eval/normalized_score_best_trial.
 */
import { AtChainSampler } from '../../datasets/index.js';
import { summarize } from '../evaluate.js';
import { atModelConfig, atRollout, atTokens } from '../policies/agentic-transformer.js';
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

export interface AtOptions {
  /** Env the policy is evaluated on (the dataset's). */
  env: string;
  /** Seeds the model's initial weights and the chain sampler. */
  seed: number;
  /** Returns-to-go are divided by this (1000 for MuJoCo). */
  returnScale: number;
  model: TransformerModelOptions;
  chain: {
    /** Most trajectories in a chain of hindsight. */
    maxTrajectories: number;
    /** Steps of context (the chain's last steps are kept). */
    contextSteps: number;
    /** Trials rolled out one after another at evaluation. */
    trials: number;
  };
  train: OfflineTrainOptions;
  eval: OfflineEvalOptions;
}

export const AT_DEFAULTS: Readonly<AtOptions> = {
  env: 'Ant-v5',
  seed: 0,
  returnScale: 1000,
  model: MODEL_DEFAULTS,
  chain: { maxTrajectories: 4, contextSteps: 256, trials: 2 },
  train: TRAIN_DEFAULTS,
  eval: EVAL_DEFAULTS,
};

export async function trainAt(data: OfflineData, o: AtOptions, hooks: OfflineHooks): Promise<OfflineResult> {
  checkOptions(optionNamer(hooks, 'at'), o, [
    ...modelRules(o.model),
    ['returnScale', o.returnScale, 'pos'],
    ['chain.maxTrajectories', o.chain.maxTrajectories, 'int1'],
    ['chain.contextSteps', o.chain.contextSteps, 'int1'],
    ['chain.trials', o.chain.trials, 'int1'],
  ]);
  const ds = data.dataset;
  const config = atModelConfig(ds.obsDim, ds.actDim, transformerBase(o.model));
  const target = evaluationTarget(data, o.eval);
  // the sampler's generator is saved in checkpoints, so a resumed run draws the same batches
  const chains = new AtChainSampler(ds, {
    batchSize: o.train.batchSize,
    maxTrajectories: o.chain.maxTrajectories,
    contextSteps: o.chain.contextSteps,
    seed: o.seed,
    returnScale: o.returnScale,
  });
  const evaluate = (weights: Float32Array[], step: number, onEpisode: (e: number) => void): EvalPoint => {
    const model = inferenceModel(config, weights);
    const env = evaluationEnv(o.env, o.eval, data.norm, hooks);
    try {
      const last: number[] = [];
      const bestTrial: number[] = [];
      for (let e = 0; e < o.eval.episodes; e++) {
        onEpisode(e);
        const trials = atRollout(model, env, {
          trials: o.chain.trials,
          target,
          returnScale: o.returnScale,
          maxTimestep: o.model.maxTimestep,
          seed: o.eval.seed + e * o.chain.trials,
          // 4 tokens a step: return-to-go, state, action, completion
          windowTokens: 4 * o.chain.contextSteps,
        });
        last.push(trials[trials.length - 1]);
        bestTrial.push(Math.max(...trials));
      }
      const sl = summarize(data.references, last);
      const sb = summarize(data.references, bestTrial);
      logEvaluation(hooks, step, sl, sb.normalizedMean);
      return { step, score: sl.normalizedMean ?? sl.mean, best: sb.normalizedMean ?? sb.mean };
    } finally {
      env.close();
      model.dispose();
    }
  };
  const { evals, weights } = await trainOnRing(
    {
      algo: 'at',
      config,
      model: o.model,
      train: o.train,
      eval: o.eval,
      seed: o.seed,
      sampler: tokenSampler(chains, (b) => atTokens(b, o.model.maxTimestep)),
      evaluate,
    },
    hooks,
  );
  const policy = weights && {
    algo: 'at' as const,
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
