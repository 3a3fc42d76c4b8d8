/**
 * Behaviour cloning (the ring attention paper's Table 5 baseline; CORL's BC and BC-x%): an MLP
 * from normalised state to action, regressed on the actions of the top `topPercent`% of the
 * dataset's trajectories by return, `batchSize` states a step drawn uniformly with replacement.
 * Runs on this thread (the MLP is small; no ring).
 *
 * Metrics: train/loss, train/lr; eval/return_mean, eval/return_std, eval/normalized_score (+ _std).
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { AdamW, clipByGlobalNorm } from '../../train/index.js';
import { evaluateEpisodes, summarize } from '../evaluate.js';
import { BcPolicy, topEpisodes } from '../policies/bc.js';
import {
  checkLoss,
  checkOptions,
  EVAL_DEFAULTS,
  type EvalPoint,
  evalsLeft,
  evaluatesAt,
  evaluationEnv,
  learningRate,
  logEvaluation,
  type OfflineData,
  type OfflineEvalOptions,
  type OfflineHooks,
  type OfflineResult,
  type OfflineTrainOptions,
  optionNamer,
  progressOf,
  TRAIN_DEFAULTS,
} from './common.js';

export interface BcOptions {
  /** Env the policy is evaluated on (the dataset's). */
  env: string;
  /** Seeds the initial weights and the batches. */
  seed: number;
  /** Train on the top x% of trajectories by return (BC-10%: 10). */
  topPercent: number;
  /** Hidden units per layer (two layers). */
  hidden: number;
  // NOTE: a transformer step regresses batchSize × steps-per-sequence actions (AT's default: 8 × 64);
  // an MLP fed 8 states would see 64× fewer, so BC has its own batch (CORL's 256)
  /** States per step. */
  batchSize: number;
  /** Optimisation (its `batchSize`, sequences for the transformers, is not BC's). */
  train: OfflineTrainOptions;
  eval: OfflineEvalOptions;
}

export const BC_DEFAULTS: Readonly<BcOptions> = {
  env: 'Ant-v5',
  seed: 0,
  topPercent: 100,
  hidden: 256,
  batchSize: 256,
  train: TRAIN_DEFAULTS,
  eval: EVAL_DEFAULTS,
};

export async function trainBc(data: OfflineData, o: BcOptions, hooks: OfflineHooks): Promise<OfflineResult> {
  checkOptions(optionNamer(hooks, 'bc'), o, [
    ['topPercent', o.topPercent, 'pos'],
    ['hidden', o.hidden, 'int1'],
    ['batchSize', o.batchSize, 'int1'],
  ]);
  const { dataset: ds, norm } = data;
  const t = o.train;
  const episodes = topEpisodes(ds.returns(), o.topPercent);
  // the kept steps, normalised, in memory (BC data is small: states and actions only)
  const states: number[] = [];
  const actions: number[] = [];
  for (const e of episodes) {
    const sl = ds.steps(e, 0, ds.lengths[e]);
    for (let i = 0; i < ds.lengths[e]; i++) {
      for (let d = 0; d < ds.obsDim; d++)
        states.push((sl.observations[i * ds.obsDim + d] - norm.mean[d]) / norm.std[d]);
      for (let d = 0; d < ds.actDim; d++) actions.push(sl.actions[i * ds.actDim + d]);
    }
  }
  const n = actions.length / ds.actDim;
  const S = tf.tensor2d(Float32Array.from(states), [n, ds.obsDim]); // (n, obsDim)
  const A = tf.tensor2d(Float32Array.from(actions), [n, ds.actDim]); // (n, actDim)
  const hidden = [o.hidden, o.hidden];
  const policy = new BcPolicy(ds.obsDim, ds.actDim, hidden, new Rng(o.seed));
  const opt = new AdamW(policy.variables(), { lr: t.lr, weightDecay: t.weightDecay });
  // batches come from their own generator, saved in checkpoints, so a resumed run draws the same
  const batches = new Rng(o.seed);
  const resume = hooks.resume;
  if (resume) {
    policy.setWeights(resume.training.weights);
    opt.load(resume.training.optimizer);
    if (resume.samplerRng !== undefined) batches.setState(resume.samplerRng);
  }
  const start = (resume?.step ?? 0) + 1;
  const evals: EvalPoint[] = (resume?.evals ?? []).slice();
  const progress = progressOf(hooks, `bc top ${o.topPercent}%`, t.steps);
  progress.expectPhases('eval', evalsLeft(t, start - 1));
  try {
    for (let step = start; step <= t.steps; step++) {
      if (hooks.signal?.aborted) break;
      const idx = Int32Array.from({ length: o.batchSize }, () => batches.int(n));
      const lr = learningRate(t, step);
      const vars = policy.variables();
      const lossValue = tf.tidy(() => {
        const ids = tf.tensor1d(idx, 'int32');
        const { value, grads } = tf.variableGrads(
          () => policy.loss(tf.gather(S, ids), tf.gather(A, ids)),
          vars,
        );
        const { grads: g } = clipByGlobalNorm(
          vars.map((v) => grads[v.name]),
          t.clip,
        );
        opt.apply(g, lr);
        return value;
      });
      const loss = lossValue.dataSync()[0];
      lossValue.dispose();
      hooks.logger.metrics({ 'train/loss': loss, 'train/lr': lr }, step);
      progress.update(step, { loss });
      checkLoss(loss, step);
      if (evaluatesAt(t, step)) {
        progress.expectPhases('eval', evalsLeft(t, step - 1));
        progress.beginPhase('eval');
        const env = evaluationEnv(o.env, o.eval, norm, hooks);
        let episode = 0;
        const sm = summarize(
          data.references,
          evaluateEpisodes(env, o.eval.episodes, o.eval.seed, () => {
            progress.phaseDetail(`episode ${++episode}/${o.eval.episodes}`);
            return (obs) => policy.act(obs);
          }),
        );
        env.close();
        progress.endPhase();
        logEvaluation(hooks, step, sm);
        evals.push({ step, score: sm.normalizedMean ?? sm.mean });
      }
      if (hooks.checkpoints?.due(step) || step === t.steps)
        await hooks.checkpoints?.save({
          step,
          training: { weights: policy.weights(), optimizer: opt.state() },
          samplerRng: batches.getState(),
          evals,
        });
    }
    progress.finish();
    const done = !hooks.signal?.aborted && evals.length > 0;
    const policyOut = done
      ? {
          algo: 'bc' as const,
          env: o.env,
          obsDim: ds.obsDim,
          actDim: ds.actDim,
          model: { hidden },
          norm,
          weights: policy.weights(),
        }
      : undefined;
    return { evals, policy: policyOut };
  } finally {
    opt.dispose();
    policy.dispose();
    tf.dispose([S, A]);
  }
}
