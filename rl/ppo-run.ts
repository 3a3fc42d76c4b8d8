/**
 * A PPO run as the `ppo` recipe makes it (moved out of experiments/recipes/ppo.ts, issue 13):
 * `trainPpo` with CleanRL's metrics through a TrainContext's logger, checkpoints of the policy
 * with its critic, periodic evaluation of the saved (float32) weights, an optional early stop
 * when the evaluation return enters a band (how rl/behavior/ant-medium.json's "medium" level was
 * chosen), and the best evaluated policy kept beside the final one.
 *
 * Metrics: `train/episode_return`, `train/episode_length` (each training episode, stochastic
 * policy, step = env step); `train/policy_loss`, `train/value_loss`, `train/entropy`,
 * `train/approx_kl`, `train/clipfrac`, `train/explained_variance`, `train/lr`,
 * `perf/steps_per_sec` (per update, CleanRL's losses/ and charts/); `eval/return_mean`,
 * `eval/return_std`, `eval/normalized_score` (D4RL refs when known) at each evaluation.
 */
import { type CheckpointJson, type OptionValues, opt, type TrainContext } from '../train/index.js';
import { PPO_OPTIONS, type PpoOptions } from './ppo-options.js';
import { evaluatePolicy, type PolicyJSON, PpoPolicy, type ReturnStats } from './ppo-policy.js';
import type { RolloutRecorder } from './rollout/index.js';
import { trainPpo } from './ppo.js';
import { normalizedScore, referenceScores } from './score.js';

/**
 * The `ppo` recipe's config as data: the env, trainPpo's options (PPO_OPTIONS), evaluation,
 * recording (issue 18), early stop and where the policy file also goes.
 */
export const PPO_RUN_OPTIONS = opt.group('PPO (CleanRL ppo_continuous_action-like)', {
  env: opt.text('Registered env id (exp env list)', 'CartPole-v1', true),
  ...PPO_OPTIONS.fields,
  evalEvery: opt.number('Updates between evaluations; 0 only at the end', 10, 'int0'),
  evalEpisodes: opt.number('Episodes per evaluation', 10, 'int1'),
  evalStochastic: opt.flag('Evaluate sampled actions (else the mean action)', true),
  evalRecord: opt.flag(
    'Record the first, best and worst episode of each evaluation: rollouts/step-<env step>/rollouts.arrow and replay.html artifacts (issue 18)',
    false,
  ),
  evalVideo: opt.flag(
    'Also log an MP4 per recorded episode, like CleanRL capture_video (implies evalRecord; needs chromium and ffmpeg)',
    false,
  ),
  stopBelow: opt.number(
    'Early stop when an evaluation return is in [stopAbove, stopBelow]; 0 turns it off',
    0,
    'finite',
  ),
  stopAbove: opt.number('Lower end of the early-stop band', 0, 'finite'),
  out: opt.text("Also write the policy file here ('' only logs it as an artifact)", ''),
});
export type PpoRunConfig = OptionValues<typeof PPO_RUN_OPTIONS>;

/** Evaluation and early stop around a run (documented in PPO_RUN_OPTIONS). */
export type PpoEvalOptions = Pick<
  PpoRunConfig,
  'evalEvery' | 'evalEpisodes' | 'evalStochastic' | 'stopBelow' | 'stopAbove'
>;

/** The trainer's options less what the context supplies (seed, resume, signal) and the callbacks. */
export type PpoRunOptions = Omit<PpoOptions, 'seed' | 'init' | 'signal' | 'onUpdate' | 'onEpisode'> &
  PpoEvalOptions;

export interface PpoRunResult {
  /** The final policy with its evaluation (the stopping one on an early stop); absent if aborted. */
  final?: PolicyJSON;
  /** The best evaluated policy so far. */
  best?: PolicyJSON;
}

/** Seed of the first evaluation episode: fixed, so evaluations compare across runs and seeds. */
const EVAL_SEED = 10_000;

/** What a run does with recorded evaluation episodes (evalRecord, issue 18). */
export interface PpoRecording {
  /** The recorder for the evaluation at env step `step` (a fresh one each time). */
  recorder(step: number): RolloutRecorder;
  /** The evaluation at `step` recorded at least one episode into `recorder`. */
  recorded(step: number, recorder: RolloutRecorder): void;
}

/**
 * Trains with `trainPpo` (seed, resume and signal from `ctx`), logging and evaluating as above;
 * `recording` keeps chosen evaluation episodes for replay and video.
 */
export async function runPpo(
  options: PpoRunOptions,
  ctx: TrainContext,
  recording?: PpoRecording,
): Promise<PpoRunResult> {
  const { envId, evalEvery, evalEpisodes, evalStochastic, stopBelow, stopAbove, ...trainOptions } = options;
  const ref = referenceScores({ envId });
  const init = ctx.resume ? (ctx.resume.state as unknown as PolicyJSON) : undefined;
  const progress = ctx.progress?.(`ppo ${envId}`, options.totalSteps);
  const checkpoint = (step: number, policy: PolicyJSON) =>
    ctx.checkpoints?.save({ step, state: policy as unknown as CheckpointJson, tensors: {} });
  let best: { policy: PolicyJSON; mean: number } | undefined;
  const evaluate = (json: PolicyJSON, step: number): { ev: ReturnStats; withEval: PolicyJSON } => {
    // Measure the saved (float32) weights, as a user loading the file would.
    const policy = new PpoPolicy(JSON.parse(JSON.stringify(json)) as PolicyJSON);
    const recorder = recording?.recorder(step);
    const ev = evaluatePolicy(policy, {
      episodes: evalEpisodes,
      seed: EVAL_SEED,
      stochastic: evalStochastic,
      signal: ctx.signal,
      recorder,
    });
    if (recorder?.episodesSeen) recording?.recorded(step, recorder);
    ctx.logger.metrics({ 'eval/return_mean': ev.mean, 'eval/return_std': ev.std }, step);
    if (ref) ctx.logger.metrics({ 'eval/normalized_score': normalizedScore(ev.mean, ref) }, step);
    const mode = evalStochastic ? 'stochastic' : 'deterministic';
    const withEval: PolicyJSON = {
      ...json,
      evaluation: {
        seed: EVAL_SEED,
        [mode]: ev,
        datasetMode: mode,
        ...(ref ? { normalizedScore: normalizedScore(ev.mean, ref) } : {}),
      },
    };
    if (!best || ev.mean > best.mean) best = { policy: withEval, mean: ev.mean };
    return { ev, withEval };
  };
  let final: PolicyJSON | undefined;
  const res = await trainPpo({
    // NOTE: envId and seed first: the policy file's `training.options` keeps this key order
    envId,
    seed: ctx.seed,
    ...trainOptions,
    init,
    signal: ctx.signal,
    onEpisode: (ret, len, step) => {
      ctx.logger.metrics({ 'train/episode_return': ret, 'train/episode_length': len }, step);
    },
    onUpdate: async (u, tr) => {
      ctx.logger.metrics(
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
      progress?.update(u.envStep, { return: u.episodeReturn });
      if (ctx.checkpoints?.due(u.update)) await checkpoint(u.update, tr.policyJSON(true));
      if (evalEvery > 0 && u.update % evalEvery === 0) {
        const { ev, withEval } = evaluate(tr.policyJSON(), u.envStep);
        if (stopBelow > 0 && ev.mean >= stopAbove && ev.mean <= stopBelow) {
          ctx.log?.(`eval return ${ev.mean.toFixed(1)} in [${stopAbove}, ${stopBelow}]: stopping`);
          final = withEval;
          return 'stop';
        }
      }
      return undefined;
    },
  });
  progress?.finish();
  // The last update is always saved: at the end, on an early stop, and on Ctrl-C (for --resume).
  await checkpoint(res.trainer.updates, res.trainer.policyJSON(true));
  if (ctx.signal?.aborted) return { best: best?.policy };
  final ??= evaluate(res.policy, res.trainer.envStep).withEval;
  return { final, best: best?.policy };
}
