/**
 * What the offline trainers (AT, DT, BC) share: the optimisation and evaluation options with their
 * defaults, the dataset's derived quantities, the hooks a caller gives a run (logger, progress,
 * checkpoints, resume) and the small steps every loop takes the same way (learning rate, eval
 * schedule, eval logging). The algorithms themselves are in at.ts, dt.ts and bc.ts.
 */
import { InputError, Progress } from '../../common/index.js';
import { type StateNorm, stateNorm, type TrajectoryDataset } from '../../datasets/index.js';
import type { BackendChoice } from '../../native/index.js';
import { type OptionRule, type TrainingState, type TrainLogger, warmupCosine } from '../../train/index.js';
import { type EvalSummary, rolloutEnv } from '../evaluate.js';
import type { RolloutRecorder } from '../rollout/index.js';
import { type ReferenceScores, referenceScores } from '../score.js';

/** Optimisation. AT and DT draw `batchSize` sequences a step; BC draws its own `batchSize` states. */
export interface OfflineTrainOptions {
  /** Gradient steps. */
  steps: number;
  /** Sequences per step (AT, DT). */
  batchSize: number;
  /** Peak learning rate (AdamW), reached after `warmup` steps, cosine-decayed to lr/10 at `steps`. */
  lr: number;
  weightDecay: number;
  warmup: number;
  /** Global-norm gradient clipping (0: none). */
  clip: number;
  /** Steps between evaluations (0: only at the end). */
  evalEvery: number;
}

export interface OfflineEvalOptions {
  /** Evaluation episodes (AT: each is `trials` trials). */
  episodes: number;
  /** Episode length cap (0: the env's limit). */
  maxEpisodeSteps: number;
  /** Target return the transformers are conditioned on (0: the dataset's best return). */
  targetReturn: number;
  /** Seed of the first evaluation episode. */
  seed: number;
}

export const TRAIN_DEFAULTS: Readonly<OfflineTrainOptions> = {
  steps: 2000,
  batchSize: 16,
  lr: 1e-4,
  weightDecay: 1e-4,
  warmup: 200,
  clip: 0.25,
  evalEvery: 500,
};

export const EVAL_DEFAULTS: Readonly<OfflineEvalOptions> = {
  episodes: 5,
  maxEpisodeSteps: 0,
  targetReturn: 0,
  seed: 1000,
};

/** An opened dataset and what every trainer derives from it. */
export interface OfflineData {
  dataset: TrajectoryDataset;
  /** Observation mean and std; policies see (obs − mean) / std, in training and evaluation. */
  norm: StateNorm;
  /** The best episode return in the data (the transformers' default target). */
  bestReturn: number;
  /** D4RL-style reference scores for `env` (the dataset's own when it has them), if known. */
  references?: ReferenceScores;
}

export function offlineData(dataset: TrajectoryDataset, env: string): OfflineData {
  return {
    dataset,
    norm: stateNorm(dataset),
    bestReturn: dataset.returns().reduce((a, b) => Math.max(a, b), -Infinity),
    references: referenceScores({ info: dataset.info, envId: env }),
  };
}

/** The return AT and DT are conditioned on at evaluation. */
export function evaluationTarget(data: OfflineData, o: OfflineEvalOptions): number {
  return o.targetReturn || data.bestReturn;
}

/** One evaluation: the step, its (normalised when references are known) score, AT's best trial. */
export interface EvalPoint {
  step: number;
  score: number;
  best?: number;
}

/** What a checkpoint of an offline run holds; the caller stores it (experiments/ in its checkpoints). */
export interface OfflineCheckpoint {
  /** Last completed step. */
  step: number;
  training: TrainingState;
  /** State of the generator batches are drawn from, so a resumed run draws the same batches. */
  samplerRng?: number;
  /** Evaluations so far (the summary covers them all). */
  evals: EvalPoint[];
}

/** How a run reports and persists; everything but `logger` is optional (a script needs none). */
/** Recording of evaluation episodes (eval.record, issue 18): a recorder per evaluation, handed back after it. */
export interface EvaluationRecording {
  /** The recorder of the evaluation about to run. */
  recorder(): RolloutRecorder;
  /** The evaluation at `step` (the last recorder's) has finished. */
  evaluated(step: number): void;
}

export interface OfflineHooks {
  /** Records evaluation episodes for replay (absent: nothing recorded). */
  rollouts?: EvaluationRecording;
  /** Metrics: `train/*`, `perf/*`, `eval/*` (train/metrics.ts). */
  logger: TrainLogger;
  /** Facts learnt while setting up (parameter counts, probed memory). */
  params?(values: Record<string, number | string>): void;
  /** One line for the run log (evaluation results). */
  log?(line: string): void;
  progress?(label: string, total: number): Progress;
  /** Aborted: the loop stops after the current step and returns. */
  signal?: AbortSignal;
  checkpoints?: {
    due(step: number): boolean;
    save(checkpoint: OfflineCheckpoint): Promise<void>;
  };
  /** Continue after this checkpoint's step. */
  resume?: OfflineCheckpoint;
  /**
   * Where the options came from, for error messages: `offline-rl` makes them name
   * `offline-rl.model.devices` (a config's key path); default `<algo> trainer: model.devices`.
   * The `model`, `train` and `eval` paths are the offline-rl recipe's; its schema checks the rest.
   */
  optionsPath?: string;
  /** tfjs backend of the ring's devices (AT, DT); default the ring's choice. */
  backend?: BackendChoice;
}

/** The trained policy, as the last step left it: what a policy file stores. */
export interface TrainedPolicy {
  algo: 'at' | 'dt' | 'bc';
  env: string;
  obsDim: number;
  actDim: number;
  /** The model's configuration (AT, DT: the transformer's; BC: its hidden sizes). */
  model: unknown;
  norm: StateNorm;
  /** AT, DT: the target return evaluation conditions on. */
  target?: number;
  /** Per variable, flat, in the model's variable order. */
  weights: Float32Array[];
}

export interface OfflineResult {
  evals: EvalPoint[];
  /** Present when the run reached its last step (not aborted). */
  policy?: TrainedPolicy;
}

export function progressOf(hooks: OfflineHooks, label: string, total: number): Progress {
  return hooks.progress?.(label, total) ?? new Progress({ label, total, silent: true });
}

/** Learning rate at 1-based `step`: linear warmup, then cosine to a tenth of the peak. */
export function learningRate(t: OfflineTrainOptions, step: number): number {
  return warmupCosine(step - 1, { lr: t.lr, warmup: t.warmup, total: t.steps, minLr: t.lr / 10 });
}

/** Whether `step` evaluates: every `evalEvery` steps and at the last. */
export function evaluatesAt(t: OfflineTrainOptions, step: number): boolean {
  return (t.evalEvery > 0 && step % t.evalEvery === 0) || step === t.steps;
}

/** Evaluations after `step` (every `evalEvery` steps and at the last): what the ETA still has to include. */
export function evalsLeft(t: OfflineTrainOptions, step: number): number {
  const every = t.evalEvery;
  const regular = every > 0 ? Math.floor(t.steps / every) - Math.floor(step / every) : 0;
  const last = every > 0 && t.steps % every === 0 ? 0 : step < t.steps ? 1 : 0;
  return regular + last;
}

/** The evaluation env: normalised observations, the episode cap of `o`. */
export function evaluationEnv(env: string, o: OfflineEvalOptions, norm: StateNorm, hooks?: OfflineHooks) {
  return rolloutEnv({
    envId: env,
    maxEpisodeSteps: o.maxEpisodeSteps || undefined,
    stateMean: norm.mean,
    stateStd: norm.std,
    recorder: hooks?.rollouts?.recorder(),
  });
}

/** Logs an evaluation's `eval/*` metrics and one line; `bestTrial` is AT's best-of-trials score. */
export function logEvaluation(hooks: OfflineHooks, step: number, s: EvalSummary, bestTrial?: number): void {
  hooks.rollouts?.evaluated(step);
  hooks.logger.metrics(
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
  hooks.log?.(
    `step ${step}: return ${s.mean.toFixed(1)} ± ${s.std.toFixed(1)}${s.normalizedMean !== undefined ? `, normalised ${s.normalizedMean.toFixed(1)}` : ''}`,
  );
}

const EXPECTED: Record<OptionRule, string> = {
  int1: 'an integer ≥ 1',
  int0: 'an integer ≥ 0',
  int: 'an integer',
  pos: 'a number > 0',
  nonneg: 'a number ≥ 0',
  finite: 'a finite number',
};

function satisfies(v: number, rule: OptionRule): boolean {
  if (!Number.isFinite(v)) return false;
  if (rule === 'int') return Number.isInteger(v);
  if (rule === 'int1' || rule === 'int0') return Number.isInteger(v) && v >= (rule === 'int1' ? 1 : 0);
  return rule === 'pos' ? v > 0 : rule === 'nonneg' ? v >= 0 : true;
}

/** How errors name an option: `offline-rl.model.devices` (hooks.optionsPath), else `at trainer: model.devices`. */
export function optionNamer(hooks: OfflineHooks, algo: string): (path: string) => string {
  return (path) => (hooks.optionsPath ? `${hooks.optionsPath}.${path}` : `${algo} trainer: ${path}`);
}

/**
 * Checks options at the boundary (a script passes them unchecked by any schema): the shared
 * `train` and `eval` ones and the trainer's own `more`; throws naming the first bad one, e.g.
 * `bc trainer: train.steps: expected an integer ≥ 1; got 0`.
 */
export function checkOptions(
  name: (path: string) => string,
  o: { train: OfflineTrainOptions; eval: OfflineEvalOptions },
  more: [path: string, value: number, rule: OptionRule][] = [],
): void {
  const rules: [string, number, OptionRule][] = [
    ['train.steps', o.train.steps, 'int1'],
    ['train.batchSize', o.train.batchSize, 'int1'],
    ['train.lr', o.train.lr, 'pos'],
    ['train.weightDecay', o.train.weightDecay, 'nonneg'],
    ['train.warmup', o.train.warmup, 'int0'],
    ['train.clip', o.train.clip, 'nonneg'],
    ['train.evalEvery', o.train.evalEvery, 'int0'],
    ['eval.episodes', o.eval.episodes, 'int1'],
    ['eval.maxEpisodeSteps', o.eval.maxEpisodeSteps, 'int0'],
    ['eval.targetReturn', o.eval.targetReturn, 'finite'],
    ['eval.seed', o.eval.seed, 'int0'],
    ...more,
  ];
  for (const [path, v, rule] of rules)
    if (!satisfies(v, rule)) throw new InputError(`${name(path)}: expected ${EXPECTED[rule]}; got ${v}`);
}

/** Stops on a non-finite loss: training on NaN only spreads it (issue 21). */
export function checkLoss(loss: number, step: number): void {
  if (!Number.isFinite(loss))
    throw new Error(`offline-rl: train/loss is ${loss} at step ${step}; stopping (not training on NaN)`);
}
