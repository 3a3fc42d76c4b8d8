/**
 * rl/offline/: the offline RL trainers of the paper's Table 5, one file per algorithm — Agentic
 * Transformer (at.ts), Decision Transformer (dt.ts), behaviour cloning (bc.ts) — each a typed
 * options object with its DEFAULTS and a `train*(data, options, hooks)` that runs the loop and
 * reports through train/'s logger. AT and DT share the ring's sequence-parallel loop
 * (ring-trainer.ts); all three share the options, schedule and eval logging of common.ts.
 */
export { AT_DEFAULTS, type AtOptions, trainAt } from './at.js';
export { BC_DEFAULTS, type BcOptions, trainBc } from './bc.js';
export {
  decodeOfflineCheckpoint,
  encodeOfflineCheckpoint,
  type OfflineCheckpointState,
} from './checkpoint.js';
export {
  EVAL_DEFAULTS,
  type EvalPoint,
  evaluationTarget,
  type OfflineCheckpoint,
  type OfflineData,
  type OfflineEvalOptions,
  type EvaluationRecording,
  type OfflineHooks,
  type OfflineResult,
  type OfflineTrainOptions,
  offlineData,
  TRAIN_DEFAULTS,
  type TrainedPolicy,
} from './common.js';
export { DT_DEFAULTS, type DtOptions, trainDt } from './dt.js';
export { POLICY_FILE_LOADER, writePolicyFiles } from './policy-file.js';
export { MODEL_DEFAULTS, type TransformerModelOptions } from './ring-trainer.js';
export { OFFLINE_RUN_OPTIONS, type OfflineRunHooks, type OfflineRunOptions, runOffline } from './run.js';
