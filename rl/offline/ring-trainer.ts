/**
 * The sequence-parallel training loop AT and DT share (paper §3): a trajectory transformer
 * replicated on the ring's devices (rl/policies/train-device.ts), each step's token batch sharded
 * over them in the ring's layout, gradients summed over the ring, AdamW on every replica. What
 * differs between the two — the sampler, the token layout, the model's heads and the evaluation
 * rollout — comes in as `RingTrainerSetup`; the loop, schedule, memory check and checkpoints are here.
 */
import { InputError, Rng } from '../../common/index.js';
import { RingGroup } from '../../cluster/index.js';
import type { ProbedPeak } from '../../native/index.js';
import { type AttentionImpl, type RingLayout, tokenIndices } from '../../ring/index.js';
import { type OptionRule, ringTask, type TrainingState } from '../../train/index.js';
import { padTokens, selectTokens, type TokenBatch } from '../policies/tokens.js';
import {
  type InitArgs,
  type StepArgs,
  type StepResult,
  trainMessageFloats,
} from '../policies/train-device.js';
import {
  TrajectoryTransformer,
  type TrajectoryTransformerConfig,
} from '../policies/trajectory-transformer.js';
import {
  checkLoss,
  type EvalPoint,
  evalsLeft,
  evaluatesAt,
  learningRate,
  type OfflineEvalOptions,
  type OfflineHooks,
  type OfflineTrainOptions,
  optionNamer,
  progressOf,
} from './common.js';

/** The transformer of AT and DT, and how it is spread over the ring. */
export interface TransformerModelOptions {
  /** Embedding width. */
  dModel: number;
  /** Transformer blocks. */
  layers: number;
  heads: number;
  attention: AttentionImpl;
  /** Ring devices N (attention: ring; 1 otherwise). */
  devices: number;
  layout: RingLayout;
  /** Block size of memeff/blockwise/ring and the FFN chunk. */
  blockSize: number;
  /** Timestep embedding size (longest episode + 1). */
  maxTimestep: number;
  /** Per-device memory budget checked before training (0: none). */
  memoryBudgetMiB: number;
  /**
   * The native block keeps its attention's q, k, v, output and LSE for the backward (faster, ≈ 4·dModel
   * more floats per token and layer) instead of only its input (BPT's full checkpointing).
   */
  keepAttention: boolean;
  /**
   * With keepAttention, the native block also keeps the FFN's activations (x1 and the
   * pre-activations: 5·dModel more floats per token and layer at the policies' 4× FFN), so the
   * backward does not recompute them.
   */
  keepFfn: boolean;
}

export const MODEL_DEFAULTS: Readonly<TransformerModelOptions> = {
  dModel: 128,
  layers: 3,
  heads: 1,
  attention: 'blockwise',
  devices: 1,
  layout: 'striped',
  blockSize: 128,
  maxTimestep: 1001,
  memoryBudgetMiB: 0,
  keepAttention: false,
  keepFfn: false,
};

/** The model's size options as the policies take them (the rest is the ring's business). */
export function transformerBase(m: TransformerModelOptions) {
  return {
    dModel: m.dModel,
    layers: m.layers,
    heads: m.heads,
    maxTimestep: m.maxTimestep,
    attention: m.attention,
    blockSize: m.blockSize,
    keepAttention: m.keepAttention,
    keepFfn: m.keepFfn,
  };
}

/** The model options' rules, for `checkOptions`. */
export function modelRules(m: TransformerModelOptions): [string, number, OptionRule][] {
  return [
    ['model.dModel', m.dModel, 'int1'],
    ['model.layers', m.layers, 'int1'],
    ['model.heads', m.heads, 'int1'],
    ['model.devices', m.devices, 'int1'],
    ['model.blockSize', m.blockSize, 'int1'],
    ['model.maxTimestep', m.maxTimestep, 'int1'],
    ['model.memoryBudgetMiB', m.memoryBudgetMiB, 'nonneg'],
  ];
}

/** A batch source whose generator state a checkpoint keeps. */
export interface TokenSampler {
  sample(): TokenBatch;
  rngState: number;
}

/** A dataset sampler seen through a token layout: `toTokens` of each batch it draws. */
export function tokenSampler<B>(
  sampler: { sample(): B; rngState: number },
  toTokens: (batch: B) => TokenBatch,
): TokenSampler {
  return {
    sample: () => toTokens(sampler.sample()),
    get rngState() {
      return sampler.rngState;
    },
    set rngState(state: number) {
      sampler.rngState = state;
    },
  };
}

export interface RingTrainerSetup {
  /** 'at' or 'dt': the progress label and error messages. */
  algo: 'at' | 'dt';
  config: TrajectoryTransformerConfig;
  model: TransformerModelOptions;
  train: OfflineTrainOptions;
  eval: OfflineEvalOptions;
  seed: number;
  sampler: TokenSampler;
  /** Evaluates these weights at `step`, logging its metrics; `onEpisode(e)` as episode e starts. */
  evaluate(weights: Float32Array[], step: number, onEpisode: (e: number) => void): EvalPoint;
}

const DEVICE_MODULE = new URL('../policies/train-device.js', import.meta.url);

/** Runs the loop; returns the evaluations and, when it reached the last step, the final weights. */
export async function trainOnRing(
  s: RingTrainerSetup,
  hooks: OfflineHooks,
): Promise<{ evals: EvalPoint[]; weights?: Float32Array[] }> {
  const { model: m, train: t } = s;
  const N = m.attention === 'ring' ? m.devices : 1;
  const option = optionNamer(hooks, s.algo);
  if (m.attention !== 'ring' && m.devices !== 1)
    throw new InputError(
      `${option('model.devices')}: ${m.attention} runs on one device; got ${m.devices} (use attention: ring)`,
    );
  const resume = hooks.resume;
  if (resume?.samplerRng !== undefined) s.sampler.rngState = resume.samplerRng;
  const group = await RingGroup.create({ devices: N, backend: hooks.backend });
  try {
    const first = s.sampler.sample();
    // (B, T): T padded to a multiple of N so every device holds T / N tokens of each sequence
    const seqLen = Math.ceil(first.length / N) * N;
    const probe = new TrajectoryTransformer(s.config, new Rng(0));
    const parameters = probe.parameterCount();
    probe.dispose();
    const messageFloats = trainMessageFloats(s.config, t.batchSize, seqLen / N, parameters, N);
    const sized = () => messageFloats;
    const initTrainer = ringTask<InitArgs, { parameters: number }>(DEVICE_MODULE, 'initTrainer', sized);
    const trainStep = ringTask<StepArgs, StepResult>(DEVICE_MODULE, 'trainStep', sized);
    const probeMemory = ringTask<StepArgs, ProbedPeak>(DEVICE_MODULE, 'probeMemory', sized);
    const trainerState = ringTask<null, TrainingState>(DEVICE_MODULE, 'trainerState', () => 1);
    const initArgs: InitArgs = {
      config: s.config,
      seed: s.seed,
      weightDecay: t.weightDecay,
      weights: resume?.training.weights,
      optimizer: resume?.training.optimizer,
    };
    await initTrainer.run(group, Array(N).fill(initArgs));
    hooks.params?.({ 'model.parameters': parameters, 'model.tokens_per_sequence': first.length });
    const start = (resume?.step ?? 0) + 1;
    const progress = progressOf(hooks, `${s.algo} ${m.attention}${N > 1 ? ` N=${N}` : ''}`, t.steps);
    progress.expectPhases('eval', evalsLeft(t, start - 1));
    const evals: EvalPoint[] = (resume?.evals ?? []).slice();
    const shardsOf = (b: TokenBatch, lr: number): StepArgs[] => {
      const padded = padTokens(b, seqLen - b.length);
      const totalWeight = padded.weights.reduce((a, x) => a + x, 0);
      return Array.from({ length: N }, (_, r) => ({
        tokens: N === 1 ? padded : selectTokens(padded, tokenIndices(r, N, seqLen, m.layout)),
        totalWeight,
        seqLen,
        layout: m.layout,
        lr,
        clip: t.clip,
      }));
    };
    if (m.memoryBudgetMiB > 0) {
      // NOTE: a context the attention cannot hold in the budget fails here, before training (issue 6)
      // NOTE: the budget is on what a device really holds (issue 20): the probe's real peak (the
      // replica and AdamW's moments are resident), plus on a ring the step's all-reduce buffer of
      // every gradient (4 B/parameter, JS) and the receive buffers; tensor bytes are logged beside
      const peaks = await probeMemory.run(group, shardsOf(first, 0));
      const ringBytes = N > 1 ? group.commBytesPerDevice + 4 * (parameters + 1) : 0;
      const need = (Math.max(...peaks.map((p) => p.realBytes)) + ringBytes) / 2 ** 20;
      const tensors = (Math.max(...peaks.map((p) => p.tensorBytes)) + ringBytes) / 2 ** 20;
      hooks.params?.({
        'model.probe_mib_per_device': need.toFixed(1),
        'model.probe_tensor_mib_per_device': tensors.toFixed(1),
      });
      if (need > m.memoryBudgetMiB)
        throw new InputError(
          `${option('model.memoryBudgetMiB')}: ${first.length} tokens per sequence need ${need.toFixed(1)} MiB per device (real memory; ${tensors.toFixed(1)} MiB of it tensors) with ${m.attention}${N > 1 ? ` on ${N} devices` : ''}; the budget is ${m.memoryBudgetMiB} MiB. Use attention: ring with more devices, or a shorter context`,
        );
    }
    let finalWeights: Float32Array[] | undefined;
    // NOTE: the next step's batch is drawn and sharded while the devices run this one (the main
    // thread was otherwise idle then, and the devices idle while it drew: ≈ 15% of an ant-medium
    // step); checkpoints keep the sampler's state from before that draw, so a resumed run draws
    // the same batches
    let shards = shardsOf(first, learningRate(t, start));
    let samplerBefore = s.sampler.rngState;
    for (let step = start; step <= t.steps; step++) {
      if (hooks.signal?.aborted) break;
      const lr = learningRate(t, step);
      const running = trainStep.run(group, shards);
      samplerBefore = s.sampler.rngState;
      if (step < t.steps) shards = shardsOf(s.sampler.sample(), learningRate(t, step + 1));
      const [res] = await running;
      hooks.logger.metrics(
        {
          'train/loss': res.loss,
          'train/lr': lr,
          'train/grad_norm': res.gradNorm,
          'perf/tokens_per_sec': (t.batchSize * seqLen) / (res.ms / 1000),
        },
        step,
      );
      progress.update(step, { loss: res.loss });
      checkLoss(res.loss, step);
      const evalNow = evaluatesAt(t, step);
      const saveNow = hooks.checkpoints?.due(step) || step === t.steps;
      if (evalNow || saveNow) {
        // device 0's replica: every replica applied the same update
        const [state] = await trainerState.run(group, Array(N).fill(null));
        if (evalNow) {
          progress.expectPhases('eval', evalsLeft(t, step - 1));
          progress.beginPhase('eval');
          evals.push(
            s.evaluate(state.weights, step, (e) =>
              progress.phaseDetail(`episode ${e + 1}/${s.eval.episodes}`),
            ),
          );
          progress.endPhase();
        }
        if (saveNow)
          await hooks.checkpoints?.save({ step, training: state, samplerRng: samplerBefore, evals });
        if (step === t.steps) finalWeights = state.weights;
      }
    }
    progress.finish();
    return { evals, weights: hooks.signal?.aborted ? undefined : finalWeights };
  } finally {
    await group.dispose();
  }
}

/**
 * The trained weights in a model for rollouts on this thread: incremental decoding with vanilla
 * attention over a KV cache is exact for every implementation, and holds only keys and values.
 */
export function inferenceModel(
  config: TrajectoryTransformerConfig,
  weights: Float32Array[],
): TrajectoryTransformer {
  const model = new TrajectoryTransformer({ ...config, attention: 'vanilla' }, new Rng(0));
  model.setWeights(weights);
  return model;
}
