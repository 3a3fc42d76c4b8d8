/**
 * `recipe: ppo`: a behaviour policy trained with rl/ppo.ts (issue 6) on a registered env. The
 * config maps onto rl/ppo-run.ts's `runPpo` (the trainer's options, same names, defaults from
 * PPO_DEFAULTS: one source of truth, issue 13; plus evaluation and early stop); this file hands it
 * the run's tracker, checkpoints and resume, and saves the policy file (actor + observation
 * statistics) as an artifact and optionally to `out`.
 *
 * Metrics: rl/ppo-run.ts's `train/*`, `perf/steps_per_sec` and `eval/*`. Checkpoints hold the
 * policy with its critic and statistics (resume restarts Adam's moments).
 */
import { writeFileAtomic } from '../../common/index.js';
import { PPO_DEFAULTS, runPpo } from '../../rl/index.js';
import { type InferFields, s } from '../config/schema.js';
import { trainContext } from './train-context.js';
import type { Recipe, RecipeContext } from './types.js';

const D = PPO_DEFAULTS;
const int = (doc: string, d: number, min = 1) => s.integer({ doc, default: d, min });
const positive = (doc: string, d: number) => s.number({ doc, default: d, min: 0, exclusiveMin: true });
const nonNegative = (doc: string, d: number) => s.number({ doc, default: d, min: 0 });
const fraction = (doc: string, d: number) => s.number({ doc, default: d, min: 0, max: 1 });
const flag = (doc: string, d: boolean) => s.boolean({ doc, default: d });
const fields = {
  env: s.string({ doc: 'Registered env id (exp env list)', default: 'CartPole-v1', nonEmpty: true }),
  totalSteps: int('Env steps in total (all envs)', 100_000),
  numEnvs: int('Parallel envs', D.numEnvs),
  numSteps: int('Steps per env per rollout (batch = numEnvs × numSteps)', D.numSteps),
  vectorization: s.enum(['async', 'sync'] as const, {
    doc: 'async: envs on worker threads; sync: in the main thread',
    default: D.vectorization,
  }),
  hidden: s.list(s.integer({ doc: 'Units', min: 1 }), {
    doc: 'Hidden sizes of actor and critic',
    default: D.hidden,
  }),
  lr: positive('Adam learning rate', D.lr),
  annealLr: flag('Anneal the learning rate linearly to 0', D.annealLr),
  gamma: fraction('Discount', D.gamma),
  gaeLambda: fraction('GAE lambda', D.gaeLambda),
  numMinibatches: int('Minibatches per epoch', D.numMinibatches),
  updateEpochs: int('Epochs per update', D.updateEpochs),
  clipCoef: nonNegative('Surrogate (and value) clip range', D.clipCoef),
  clipVloss: flag('Clipped value loss', D.clipVloss),
  entCoef: nonNegative('Entropy bonus', D.entCoef),
  vfCoef: nonNegative('Value loss weight', D.vfCoef),
  maxGradNorm: positive('Global gradient-norm clip', D.maxGradNorm),
  normObs: flag('Running observation normalisation', D.normObs),
  normReward: flag('Reward scaling by the discounted-return std', D.normReward),
  inputDim: int(
    'Networks read the first N observation values; 0 = all (Ant-v5: 27 leaves out contact forces)',
    D.inputDim,
    0,
  ),
  math: s.enum(['tfjs', 'js'] as const, {
    doc: 'Network matmuls: tfjs (float32, fast) or js (float64 loops, exact)',
    default: D.math,
  }),
  evalEvery: int('Updates between evaluations; 0 only at the end', 10, 0),
  evalEpisodes: int('Episodes per evaluation', 10),
  evalStochastic: flag('Evaluate sampled actions (else the mean action)', true),
  stopBelow: s.number({
    doc: 'Early stop when an evaluation return is in [stopAbove, stopBelow]; 0 turns it off',
    default: 0,
  }),
  stopAbove: s.number({ doc: 'Lower end of the early-stop band', default: 0 }),
  out: s.string({ doc: "Also write the policy file here ('' only logs it as an artifact)", default: '' }),
};

export type PpoConfig = InferFields<typeof fields>;

async function run(ctx: RecipeContext<PpoConfig>): Promise<void> {
  const { env, out, ...options } = ctx.config;
  const { final, best } = await runPpo({ envId: env, ...options }, trainContext(ctx));
  if (!final) return; // aborted: the checkpoint is saved, nothing to publish
  const text = JSON.stringify(final);
  await ctx.tracker.content('policy.json', text);
  if (best) await ctx.tracker.content('policy-best.json', JSON.stringify(best));
  if (out) writeFileAtomic(out, text);
}

export const ppoRecipe: Recipe<PpoConfig> = {
  name: 'ppo',
  describe: 'PPO behaviour policy on a registered env (rl/ppo.ts); saves the policy file',
  schema: s.object(fields, { doc: 'PPO (CleanRL ppo_continuous_action-like)' }),
  run,
};
