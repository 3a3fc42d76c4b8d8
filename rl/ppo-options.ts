/**
 * PPO's options (CleanRL's `Args`): what `trainPpo` (rl/ppo.ts) takes, with one set of defaults,
 * `PPO_DEFAULTS`, which the `ppo` recipe's config schema derives from (issue 13).
 */
import { InputError } from '../common/index.js';
import { opt } from '../train/index.js';
import type { PolicyJSON, PpoTrainerView } from './ppo-policy.js';

export interface PpoOptions {
  /** Registered env id, e.g. 'Ant-v5', 'CartPole-v1'. */
  envId: string;
  envKwargs?: Record<string, unknown>;
  /** Total env steps (all envs together). */
  totalSteps: number;
  seed: number;
  /** Parallel envs; default 4. */
  numEnvs?: number;
  /** Steps per env per rollout; default 512 (batch = numEnvs · numSteps). */
  numSteps?: number;
  /** 'async' (worker threads, default) or 'sync'. */
  vectorization?: 'sync' | 'async';
  numWorkers?: number;
  hidden?: number[];
  /** Adam learning rate, default 3e-4, annealed linearly to 0 over totalSteps when `annealLr`. */
  lr?: number;
  annealLr?: boolean;
  gamma?: number;
  gaeLambda?: number;
  numMinibatches?: number;
  updateEpochs?: number;
  clipCoef?: number;
  clipVloss?: boolean;
  entCoef?: number;
  vfCoef?: number;
  maxGradNorm?: number;
  normAdv?: boolean;
  /** Running observation normalisation (CleanRL NormalizeObservation), clipped to ±10. */
  normObs?: boolean;
  /** Reward scaling by the std of the discounted return (CleanRL NormalizeReward), clipped ±10. */
  normReward?: boolean;
  /** Initial log-std of the Gaussian head; default 0. */
  initLogStd?: number;
  /** Network input: the first `inputDim` observation values; 0 (default) = all. */
  inputDim?: number;
  /**
   * Matrix products of the networks: 'tfjs' (default; float32 on the active tfjs backend, wasm
   * unless another was initialised) or 'js' (plain float64 loops, exact; the gradient tests).
   */
  math?: 'js' | 'tfjs';
  /**
   * Continue from a saved policy that includes its critic (`policyJSON(true)`): weights, obs and
   * return statistics, env-step and update counters (the lr schedule goes on from there). Adam's
   * moments restart at zero and the envs are reset (seeded with seed + updates).
   */
  init?: PolicyJSON;
  /** Called after every update; return 'stop' to end training early. */
  onUpdate?: (u: PpoUpdate, trainer: PpoTrainerView) => 'stop' | undefined | Promise<'stop' | undefined>;
  /** Called for every finished training episode (stochastic policy, raw rewards). */
  onEpisode?: (ret: number, length: number, envStep: number) => void;
  signal?: AbortSignal;
}

/** Statistics of one update (CleanRL's logged losses). */
export interface PpoUpdate {
  update: number;
  envStep: number;
  lr: number;
  policyLoss: number;
  valueLoss: number;
  entropy: number;
  approxKl: number;
  clipFrac: number;
  explainedVariance: number;
  /** Mean return of the training episodes finished during this update's rollout (NaN if none). */
  episodeReturn: number;
  stepsPerSec: number;
}

type Required2<T> = { [K in keyof T]-?: T[K] };
/** The options with defaults filled in, less the callbacks and the resume file. */
export type PpoHyper = Required2<
  Omit<PpoOptions, 'onUpdate' | 'onEpisode' | 'signal' | 'envKwargs' | 'numWorkers' | 'init'>
>;

/** The one place PPO's defaults are declared (the `ppo` recipe's schema reads them). */
export const PPO_DEFAULTS: Omit<PpoHyper, 'envId' | 'totalSteps' | 'seed'> = {
  numEnvs: 4,
  numSteps: 512,
  vectorization: 'async',
  hidden: [64, 64],
  lr: 3e-4,
  annealLr: true,
  gamma: 0.99,
  gaeLambda: 0.95,
  numMinibatches: 32,
  updateEpochs: 10,
  clipCoef: 0.2,
  clipVloss: true,
  entCoef: 0,
  vfCoef: 0.5,
  maxGradNorm: 0.5,
  normAdv: true,
  normObs: true,
  normReward: true,
  initLogStd: 0,
  inputDim: 0,
  math: 'tfjs',
};

const D = PPO_DEFAULTS;

/**
 * The trainer's options a config sets, as data (train/option-spec.ts): doc line, default and rule
 * each, in the order of the policy file's `training.options`; rl/ppo-run.ts adds the run's.
 */
export const PPO_OPTIONS = opt.group("trainPpo's options", {
  totalSteps: opt.number('Env steps in total (all envs)', 100_000, 'int1'),
  numEnvs: opt.number('Parallel envs', D.numEnvs, 'int1'),
  numSteps: opt.number('Steps per env per rollout (batch = numEnvs × numSteps)', D.numSteps, 'int1'),
  vectorization: opt.choice(
    'async: envs on worker threads; sync: in the main thread',
    ['async', 'sync'] as const,
    D.vectorization,
  ),
  hidden: opt.list('Hidden sizes of actor and critic', D.hidden, 'Units', 'int1'),
  lr: opt.number('Adam learning rate', D.lr, 'pos'),
  annealLr: opt.flag('Anneal the learning rate linearly to 0', D.annealLr),
  gamma: opt.number('Discount', D.gamma, 'nonneg', undefined, 1),
  gaeLambda: opt.number('GAE lambda', D.gaeLambda, 'nonneg', undefined, 1),
  numMinibatches: opt.number('Minibatches per epoch', D.numMinibatches, 'int1'),
  updateEpochs: opt.number('Epochs per update', D.updateEpochs, 'int1'),
  clipCoef: opt.number('Surrogate (and value) clip range', D.clipCoef, 'nonneg'),
  clipVloss: opt.flag('Clipped value loss', D.clipVloss),
  entCoef: opt.number('Entropy bonus', D.entCoef, 'nonneg'),
  vfCoef: opt.number('Value loss weight', D.vfCoef, 'nonneg'),
  maxGradNorm: opt.number('Global gradient-norm clip', D.maxGradNorm, 'pos'),
  normObs: opt.flag('Running observation normalisation', D.normObs),
  normReward: opt.flag('Reward scaling by the discounted-return std', D.normReward),
  inputDim: opt.number(
    'Networks read the first N observation values; 0 = all (Ant-v5: 27 leaves out contact forces)',
    D.inputDim,
    'int0',
  ),
  math: opt.choice(
    'Network matmuls: tfjs (float32, fast) or js (float64 loops, exact)',
    ['tfjs', 'js'] as const,
    D.math,
  ),
});

/** Options with defaults filled in (undefined means default), checked; throws InputError. */
export function resolvePpoOptions(options: PpoOptions): PpoHyper {
  const h = { ...PPO_DEFAULTS, ...stripUndefined(options) } as PpoHyper;
  checkOptions(h);
  return h;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function checkOptions(h: PpoHyper): void {
  const posInt = ['totalSteps', 'numEnvs', 'numSteps', 'numMinibatches', 'updateEpochs'] as const;
  for (const k of posInt)
    if (!Number.isInteger(h[k]) || h[k] < 1)
      throw new InputError(`trainPpo: ${k} must be a positive integer; got ${String(h[k])}`);
  if (!Number.isInteger(h.seed) || h.seed < 0)
    throw new InputError(`trainPpo: seed must be a non-negative integer; got ${String(h.seed)}`);
  if (h.numEnvs * h.numSteps < h.numMinibatches)
    throw new InputError(
      `trainPpo: batch numEnvs·numSteps = ${h.numEnvs * h.numSteps} is smaller than numMinibatches = ${h.numMinibatches}`,
    );
}
