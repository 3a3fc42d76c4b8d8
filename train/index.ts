/**
 * train/: the training kit every trainer in rl/ and lm/ shares, written once. AdamW with
 * warmup-cosine and global-norm clipping; gradients summed over micro-batches and the ring's
 * devices in one buffer (GradientSum); the training state as named checkpoint tensors; the logger
 * trainers report through; and the metric vocabulary. Depends on ring/ and common/ only.
 */

export type {
  CheckpointJson,
  CheckpointSink,
  CheckpointTensor,
  ProgressBar,
  TrainCheckpoint,
  TrainContext,
} from './context.js';
export { GradientSum, type OptimizerStepOptions, stepOptimizer } from './gradients.js';
export { MemoryLogger, type TrainLogger } from './logger.js';
export {
  type MaxContextResult,
  type MaxContextSearch,
  searchMaxContext,
  trainingFlops,
} from './max-context.js';
export { isKnownMetric, METRICS, type MetricSpec } from './metrics.js';
export { AdamW, type AdamWOptions, clipByGlobalNorm, type OptimizerState, warmupCosine } from './optim.js';
// options as data (doc line, default, rule per field): rl/ and lm/ declare theirs next to their DEFAULTS
export {
  type ChoiceField,
  type FlagField,
  type GroupField,
  type ListField,
  type NumberField,
  type OptionField,
  type OptionFields,
  type OptionRule,
  type OptionValues,
  opt,
  type TextField,
} from './option-spec.js';
export { decodeTrainingState, encodeTrainingState, type NamedArray, type TrainingState } from './state.js';
export { type RingTask, ringTask, shardColumns } from './task.js';
// the smallest trainer on the kit: the toy regression that tests the runner end to end
export {
  type LossCurve,
  TOY_DEFAULTS,
  type ToyData,
  type ToyDataOptions,
  type ToyOptions,
  toyDatasets,
  toySineData,
  trainToy,
} from './toy.js';
