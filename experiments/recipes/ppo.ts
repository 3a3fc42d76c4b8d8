/**
 * `recipe: ppo`: trains a behaviour policy with rl/ppo.ts (issue 6) on a registered env, logs
 * CleanRL's metrics to MLflow, evaluates periodically, optionally stops early when the evaluation
 * return enters a band (how rl/behavior/ant-medium.json's "medium" level was chosen), and saves
 * the policy file (actor + observation statistics) as an artifact and optionally to `out`.
 *
 * Metrics: `train/episode_return`, `train/episode_length` (each training episode, stochastic
 * policy, step = env step); `train/policy_loss`, `train/value_loss`, `train/entropy`,
 * `train/approx_kl`, `train/clipfrac`, `train/explained_variance`, `train/lr`,
 * `perf/steps_per_sec` (per update, CleanRL's losses/ and charts/); `eval/return_mean`, `eval/return_std`, `eval/normalized_score` (D4RL refs
 * when known) at each evaluation.
 *
 * Checkpoints hold the policy with its critic and statistics (resume restarts Adam's moments).
 */
import { writeFileAtomic } from '../../common/index.js';
import {
  evaluatePolicy,
  normalizedScore,
  PPO_DEFAULTS,
  type PolicyJSON,
  PpoPolicy,
  referenceScores,
  trainPpo,
} from '../../rl/index.js';
import { RolloutRecorder } from '../../rl/rollout/index.js';
import { type InferFields, s } from '../config/schema.js';
import { RolloutUploads } from '../rollout/index.js';
import type { Recipe, RecipeContext } from './types.js';

const fields = {
  env: s.string({ doc: 'Registered env id (exp env list)', default: 'CartPole-v1', nonEmpty: true }),
  totalSteps: s.integer({ doc: 'Env steps in total (all envs)', default: 100_000, min: 1 }),
  numEnvs: s.integer({ doc: 'Parallel envs', default: PPO_DEFAULTS.numEnvs, min: 1 }),
  numSteps: s.integer({
    doc: 'Steps per env per rollout (batch = numEnvs × numSteps)',
    default: PPO_DEFAULTS.numSteps,
    min: 1,
  }),
  vectorization: s.enum(['async', 'sync'] as const, {
    doc: 'async: envs on worker threads; sync: in the main thread',
    default: PPO_DEFAULTS.vectorization,
  }),
  hidden: s.list(s.integer({ doc: 'Units', min: 1 }), {
    doc: 'Hidden sizes of actor and critic',
    default: PPO_DEFAULTS.hidden,
  }),
  lr: s.number({ doc: 'Adam learning rate', default: PPO_DEFAULTS.lr, min: 0, exclusiveMin: true }),
  annealLr: s.boolean({ doc: 'Anneal the learning rate linearly to 0', default: PPO_DEFAULTS.annealLr }),
  gamma: s.number({ doc: 'Discount', default: PPO_DEFAULTS.gamma, min: 0, max: 1 }),
  gaeLambda: s.number({ doc: 'GAE lambda', default: PPO_DEFAULTS.gaeLambda, min: 0, max: 1 }),
  numMinibatches: s.integer({ doc: 'Minibatches per epoch', default: PPO_DEFAULTS.numMinibatches, min: 1 }),
  updateEpochs: s.integer({ doc: 'Epochs per update', default: PPO_DEFAULTS.updateEpochs, min: 1 }),
  clipCoef: s.number({ doc: 'Surrogate (and value) clip range', default: PPO_DEFAULTS.clipCoef, min: 0 }),
  clipVloss: s.boolean({ doc: 'Clipped value loss', default: PPO_DEFAULTS.clipVloss }),
  entCoef: s.number({ doc: 'Entropy bonus', default: PPO_DEFAULTS.entCoef, min: 0 }),
  vfCoef: s.number({ doc: 'Value loss weight', default: PPO_DEFAULTS.vfCoef, min: 0 }),
  maxGradNorm: s.number({
    doc: 'Global gradient-norm clip',
    default: PPO_DEFAULTS.maxGradNorm,
    min: 0,
    exclusiveMin: true,
  }),
  normObs: s.boolean({ doc: 'Running observation normalisation', default: PPO_DEFAULTS.normObs }),
  normReward: s.boolean({
    doc: 'Reward scaling by the discounted-return std',
    default: PPO_DEFAULTS.normReward,
  }),
  inputDim: s.integer({
    doc: 'Networks read the first N observation values; 0 = all (Ant-v5: 27 leaves out contact forces)',
    default: PPO_DEFAULTS.inputDim,
    min: 0,
  }),
  math: s.enum(['tfjs', 'js'] as const, {
    doc: 'Network matmuls: tfjs (float32, fast) or js (float64 loops, exact)',
    default: PPO_DEFAULTS.math,
  }),
  evalEvery: s.integer({ doc: 'Updates between evaluations; 0 only at the end', default: 10, min: 0 }),
  evalEpisodes: s.integer({ doc: 'Episodes per evaluation', default: 10, min: 1 }),
  evalStochastic: s.boolean({ doc: 'Evaluate sampled actions (else the mean action)', default: true }),
  evalRecord: s.boolean({
    doc: 'Record the first, best and worst episode of each evaluation: rollouts/step-<env step>/rollouts.arrow and replay.html artifacts (issue 18)',
    default: false,
  }),
  evalVideo: s.boolean({
    doc: 'Also log an MP4 per recorded episode, like CleanRL capture_video (implies evalRecord; needs chromium and ffmpeg)',
    default: false,
  }),
  stopBelow: s.number({
    doc: 'Early stop when an evaluation return is in [stopAbove, stopBelow]; 0 turns it off',
    default: 0,
  }),
  stopAbove: s.number({ doc: 'Lower end of the early-stop band', default: 0 }),
  out: s.string({ doc: "Also write the policy file here ('' only logs it as an artifact)", default: '' }),
};

export type PpoConfig = InferFields<typeof fields>;

async function run(ctx: RecipeContext<PpoConfig>): Promise<void> {
  const c = ctx.config;
  const ref = referenceScores({ envId: c.env });
  const init = ctx.resume ? (ctx.resume.state as unknown as PolicyJSON) : undefined;
  const progress = ctx.progress(`ppo ${c.env}`, c.totalSteps);
  let best: { policy: PolicyJSON; mean: number } | undefined;
  // evalRecord / evalVideo: logged in the background (a video takes seconds), awaited at the end
  const uploads = new RolloutUploads((local, path) => ctx.tracker.file(local, path), {
    video: c.evalVideo,
    who: 'ppo.evalVideo',
  });
  const evaluate = (json: PolicyJSON, step: number) => {
    // Measure the saved (float32) weights, as a user loading the file would.
    const policy = new PpoPolicy(JSON.parse(JSON.stringify(json)) as PolicyJSON);
    const recorder = c.evalRecord || c.evalVideo ? new RolloutRecorder() : undefined;
    const ev = evaluatePolicy(policy, {
      episodes: c.evalEpisodes,
      seed: 10_000,
      stochastic: c.evalStochastic,
      signal: ctx.signal,
      recorder,
    });
    if (recorder?.episodesSeen) uploads.add(step, recorder.result({ run: ctx.runId, step: String(step) }));
    ctx.tracker.metrics({ 'eval/return_mean': ev.mean, 'eval/return_std': ev.std }, step);
    if (ref) ctx.tracker.metric('eval/normalized_score', normalizedScore(ev.mean, ref), step);
    const mode = c.evalStochastic ? 'stochastic' : 'deterministic';
    const withEval: PolicyJSON = {
      ...json,
      evaluation: {
        seed: 10_000,
        [mode]: ev,
        datasetMode: mode,
        ...(ref ? { normalizedScore: normalizedScore(ev.mean, ref) } : {}),
      },
    };
    if (!best || ev.mean > best.mean) best = { policy: withEval, mean: ev.mean };
    return { ev, withEval };
  };
  let final: PolicyJSON | undefined;
  // The config is the trainer's options (same names, defaults from PPO_DEFAULTS) plus the
  // recipe's own evaluation and output keys.
  const {
    env,
    evalEvery,
    evalEpisodes,
    evalStochastic,
    evalRecord,
    evalVideo,
    stopBelow,
    stopAbove,
    out,
    ...options
  } = c;
  const res = await trainPpo({
    envId: env,
    seed: ctx.seed,
    ...options,
    init,
    signal: ctx.signal,
    onEpisode: (ret, len, step) => {
      ctx.tracker.metrics({ 'train/episode_return': ret, 'train/episode_length': len }, step);
    },
    onUpdate: async (u, tr) => {
      ctx.tracker.metrics(
        {
          'train/policy_loss': u.policyLoss,
          'train/value_loss': u.valueLoss,
          'train/entropy': u.entropy,
          'train/approx_kl': u.approxKl,
          'train/clipfrac': u.clipFrac,
          'train/explained_variance': Number.isFinite(u.explainedVariance) ? u.explainedVariance : 0,
          'train/lr': u.lr,
          'perf/steps_per_sec': u.stepsPerSec,
        },
        u.envStep,
      );
      progress.update(u.envStep, { return: u.episodeReturn });
      if (ctx.checkpoints.due(u.update))
        await ctx.checkpoints.save({ step: u.update, state: tr.policyJSON(true) as never, tensors: {} });
      if (c.evalEvery > 0 && u.update % c.evalEvery === 0) {
        const { ev, withEval } = evaluate(tr.policyJSON(), u.envStep);
        if (c.stopBelow > 0 && ev.mean >= c.stopAbove && ev.mean <= c.stopBelow) {
          ctx.log(`eval return ${ev.mean.toFixed(1)} in [${c.stopAbove}, ${c.stopBelow}]: stopping`);
          final = withEval;
          return 'stop';
        }
      }
      return undefined;
    },
  });
  progress.finish();
  await ctx.checkpoints.save({
    step: res.trainer.updates,
    state: res.trainer.policyJSON(true) as never,
    tensors: {},
  });
  if (ctx.signal.aborted) {
    await uploads.done();
    return;
  }
  final ??= evaluate(res.policy, res.trainer.envStep).withEval;
  await uploads.done();
  const text = JSON.stringify(final);
  await ctx.tracker.content('policy.json', text);
  if (best) await ctx.tracker.content('policy-best.json', JSON.stringify(best.policy));
  if (c.out) writeFileAtomic(c.out, text);
}

export const ppoRecipe: Recipe<PpoConfig> = {
  name: 'ppo',
  describe: 'PPO behaviour policy on a registered env (rl/ppo.ts); saves the policy file',
  schema: s.object(fields, { doc: 'PPO (CleanRL ppo_continuous_action-like)' }),
  run,
};
