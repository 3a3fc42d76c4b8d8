/**
 * An offline RL run from one options object (what `recipe: offline-rl` configures): the dataset
 * resolved (a path, a mixed level dataset, or `auto`: ant-medium, issue 6), opened, checked
 * against the env, then trained by AT, DT or BC. `OFFLINE_RUN_OPTIONS` documents every option
 * once, its defaults the trainers' DEFAULTS; experiments/ derives the config schema from it.
 */
import { InputError } from '../../common/index.js';
import { openDataset, type TrajectoryDataset } from '../../datasets/index.js';
import { ATTENTION_IMPLS } from '../../ring/index.js';
import { ensureAntMediumDataset } from '../collect.js';
import { make } from '../envs/index.js';
import { ensureLevelDataset, levelDataset } from '../levels.js';
import { AT_DEFAULTS, trainAt } from './at.js';
import { BC_DEFAULTS, trainBc } from './bc.js';
import {
  evaluationTarget,
  type OfflineData,
  type OfflineHooks,
  type OfflineResult,
  offlineData,
  optionNamer,
} from './common.js';
import { DT_DEFAULTS, trainDt } from './dt.js';
import { type OptionValues, opt } from '../../train/index.js';

const [M, T, E] = [AT_DEFAULTS.model, AT_DEFAULTS.train, AT_DEFAULTS.eval];
const { number: n, choice, text, group } = opt;

export const OFFLINE_RUN_OPTIONS = group('Offline RL', {
  algo: choice(
    'Agentic Transformer, Decision Transformer or behaviour cloning',
    ['at', 'dt', 'bc'] as const,
    'at',
  ),
  env: text('Environment id the policy is evaluated on (must match the dataset)', AT_DEFAULTS.env),
  dataset: text(
    'Path to an Arrow trajectory dataset (file or Minari folder); auto: for Ant-v5 Minari’s mujoco/ant/medium-v0 or the dataset regenerated from rl/behavior/ant-medium.json; or a mixed dataset generated from the shipped PPO levels, e.g. hopper-medium-replay, hopper-medium-expert (exp data recipes lists them)',
    'auto',
  ),
  verifyData: choice(
    'Check the dataset on open: always: every value finite and the content digest; auto: the same up to 256 MiB of step data, else the rewards only (the run log says so); never: no check',
    ['auto', 'always', 'never'] as const,
    'auto',
  ),
  datasetSteps: n(
    'Steps of a generated dataset (dataset: auto, or a mixed dataset name)',
    100_000,
    'int1',
    1000,
  ),
  returnScale: n('Returns-to-go are divided by this (DT: 1000 for MuJoCo)', AT_DEFAULTS.returnScale, 'pos'),
  model: group('The transformer (AT, DT)', {
    dModel: n('Embedding width', M.dModel, 'int1'),
    layers: n('Transformer blocks', M.layers, 'int1'),
    heads: n('Attention heads', M.heads, 'int1'),
    attention: choice('Attention implementation', ATTENTION_IMPLS, M.attention),
    devices: n('Ring devices N (attention: ring)', M.devices, 'int1'),
    layout: choice('Ring token layout', ['contiguous', 'striped'] as const, M.layout),
    blockSize: n('Block size of memeff/blockwise/ring and the FFN chunk', M.blockSize, 'int1'),
    maxTimestep: n('Timestep embedding size (longest episode + 1)', M.maxTimestep, 'int1'),
    memoryBudgetMiB: n(
      'Per-device memory budget checked before training, on real memory (wasm heap, JS, native; an idle device holds about 40 MiB); 0: none',
      M.memoryBudgetMiB,
      'nonneg',
    ),
    keepAttention: opt.flag(
      "Native block: keep the attention's q, k, v, output and LSE for the backward (one attention forward fewer per step, ≈ 4·dModel more floats per token and layer) instead of only the block's input (BPT's full checkpointing)",
      M.keepAttention,
    ),
    keepFfn: opt.flag(
      "Native block, with keepAttention: also keep the FFN's activations for the backward (x1 and the pre-activations: its first product and the output projection are not recomputed; 5·dModel more floats per token and layer)",
      M.keepFfn,
    ),
  }),
  dt: group('Decision Transformer', { context: n('K, steps per window', DT_DEFAULTS.context, 'int1') }),
  at: group('Agentic Transformer', {
    maxTrajectories: n(
      'Most trajectories in a chain of hindsight',
      AT_DEFAULTS.chain.maxTrajectories,
      'int1',
    ),
    contextSteps: n(
      'Steps of context (the chain’s last steps are kept)',
      AT_DEFAULTS.chain.contextSteps,
      'int1',
    ),
    trials: n('Trials rolled out one after another at evaluation', AT_DEFAULTS.chain.trials, 'int1'),
  }),
  bc: group('Behaviour cloning', {
    topPercent: n(
      'Train on the top x% of trajectories by return (BC-10%: 10)',
      BC_DEFAULTS.topPercent,
      'pos',
    ),
    hidden: n('Hidden units per layer (two layers)', BC_DEFAULTS.hidden, 'int1'),
    batchSize: n(
      'States per step (train.batchSize counts sequences for the transformers); CORL uses 256',
      BC_DEFAULTS.batchSize,
      'int1',
    ),
  }),
  train: group('Optimisation', {
    steps: n('Gradient steps', T.steps, 'int1'),
    batchSize: n('Sequences per step (AT, DT); BC uses bc.batchSize', T.batchSize, 'int1'),
    lr: n('Peak learning rate (AdamW)', T.lr, 'pos'),
    weightDecay: n('AdamW weight decay', T.weightDecay, 'nonneg'),
    warmup: n('Linear warmup steps', T.warmup, 'int0'),
    clip: n('Gradient clipping (global norm; 0: none)', T.clip, 'nonneg'),
    evalEvery: n('Steps between evaluations (0: only at the end)', T.evalEvery, 'int0'),
  }),
  eval: group('Evaluation', {
    episodes: n('Evaluation episodes (AT: each is n trials)', E.episodes, 'int1'),
    maxEpisodeSteps: n('Episode length cap at evaluation (0: the env’s limit)', E.maxEpisodeSteps, 'int0'),
    targetReturn: n('Target return for AT/DT (0: the dataset’s best return)', E.targetReturn, 'finite'),
    seed: n('Seed of the first evaluation episode', E.seed, 'int0'),
    record: opt.flag(
      'Record the first, best and worst episode of each evaluation: rollouts/step-<N>/rollouts.arrow and replay.html artifacts (issue 18)',
      false,
    ),
    video: opt.flag(
      'Also log an MP4 per recorded episode (implies record; needs chromium and ffmpeg: scripts/browser-env.sh)',
      false,
    ),
  }),
});

export type OfflineRunOptions = OptionValues<typeof OFFLINE_RUN_OPTIONS>;

export interface OfflineRunHooks extends OfflineHooks {
  /** The dataset opened and checked, before training (a tracker logs it as the run's input). */
  onDataset?(file: string, dataset: TrajectoryDataset, data: OfflineData): Promise<void>;
}

/** Resolves, opens and checks the dataset, trains `o.algo` on it, closes it. */
export async function runOffline(
  o: OfflineRunOptions,
  seed: number,
  hooks: OfflineRunHooks,
): Promise<OfflineResult> {
  const name = optionNamer(hooks, o.algo);
  const file = await resolveDataset(o, hooks, name);
  const ds = openDataset(file, { verify: o.verifyData });
  try {
    // NOTE: corrupt data fails here, not as NaN losses later (issue 16 item 6)
    hooks.log?.(`dataset ${file}: ${ds.verification.note}`);
    checkDataset(ds, o.env, file, name);
    const data = offlineData(ds, o.env);
    await hooks.onDataset?.(file, ds, data);
    hooks.params?.({
      'data.episodes': ds.numEpisodes,
      'data.steps': ds.totalSteps,
      'data.best_return': data.bestReturn.toFixed(1),
      'data.verification': ds.verification.status,
      'eval.target': evaluationTarget(data, o.eval).toFixed(1),
    });
    const common = { env: o.env, seed, train: o.train, eval: o.eval };
    const transformer = { ...common, returnScale: o.returnScale, model: o.model };
    if (o.algo === 'at') return await trainAt(data, { ...transformer, chain: o.at }, hooks);
    if (o.algo === 'dt') return await trainDt(data, { ...transformer, context: o.dt.context }, hooks);
    return await trainBc(data, { ...common, ...o.bc }, hooks);
  } finally {
    ds.close();
  }
}

/** The dataset file: a path, a mixed level dataset (rl/levels.ts), or `auto` (ant-medium, issue 6). */
async function resolveDataset(o: OfflineRunOptions, hooks: OfflineHooks, name: (p: string) => string) {
  const generate = {
    steps: o.datasetSteps,
    signal: hooks.signal,
    onProgress: (line: string) => hooks.log?.(line),
  };
  const mixed = levelDataset(o.dataset);
  if (mixed) {
    if (mixed.envId !== o.env)
      throw new InputError(
        `${name('dataset')}: ${o.dataset} is ${mixed.envId} data; ${name('env')} is ${o.env} (set env: ${mixed.envId})`,
      );
    const made = ensureLevelDataset(o.dataset, generate);
    hooks.log?.(`dataset: ${made.path} (${mixed.datasetId}${made.created ? ', generated now' : ', cached'})`);
    return made.path;
  }
  if (o.dataset !== 'auto') return o.dataset;
  if (o.env !== 'Ant-v5')
    throw new InputError(
      `${name('dataset')}: auto has an embedded dataset for Ant-v5 only; for ${o.env} import one (exp data import minari|d4rl …, or exp data collect) and give its path`,
    );
  const found = await ensureAntMediumDataset(generate);
  hooks.log?.(`dataset: ${found.path} (${found.source}${found.created ? ', generated now' : ', cached'})`);
  return found.path;
}

/** The dataset must be the env's: same id when it records one, same observation and action sizes (issue 6). */
function checkDataset(ds: TrajectoryDataset, envId: string, file: string, name: (p: string) => string): void {
  const env = make<Float64Array, Float32Array>(envId);
  const [obsDim, actDim] = [env.observationSpace, env.actionSpace].map(
    (sp) => (sp as unknown as { shape: number[] }).shape[0],
  );
  env.close();
  if (ds.info.envId && ds.info.envId !== envId)
    throw new InputError(
      `${file}: dataset was collected on ${ds.info.envId}; the config evaluates on ${envId} (${name('env')})`,
    );
  if (ds.obsDim !== obsDim || ds.actDim !== actDim)
    throw new InputError(
      `${file}: dataset has observations of ${ds.obsDim} and actions of ${ds.actDim} dims; ${envId} has ${obsDim} and ${actDim}`,
    );
}
