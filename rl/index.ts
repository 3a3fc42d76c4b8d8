/**
 * rl/: behaviour policies and data (issue 6). PPO (rl/ppo.ts; its networks in rl/nets/, its
 * rollout buffer and GAE in rl/ppo-rollout.ts, its policy file in rl/ppo-policy.ts, a run with
 * evaluation and early stop in rl/ppo-run.ts), the collector and the ant-medium
 * default dataset (rl/collect.ts). The envs are in rl/envs/index.ts.
 */
export {
  type PpoOptions,
  PPO_DEFAULTS,
  PPO_OPTIONS,
  type PpoResult,
  PpoTrainer,
  type PpoUpdate,
  trainPpo,
} from './ppo.js';
export {
  PPO_RUN_OPTIONS,
  type PpoEvalOptions,
  type PpoRecording,
  type PpoRunConfig,
  type PpoRunOptions,
  type PpoRunResult,
  runPpo,
} from './ppo-run.js';
export { computeGae, type GaeRollout, type MinibatchData, RolloutBuffer } from './ppo-rollout.js';
export {
  evaluatePolicy,
  type EvaluateOptions,
  POLICY_FORMAT,
  type PolicyJSON,
  PpoPolicy,
  type ReturnStats,
  returnStats,
} from './ppo-policy.js';
export { Mlp } from './nets/index.js';
export {
  ANT_MEDIUM_DEFAULTS,
  ANT_MEDIUM_POLICY,
  type AntMediumDataset,
  type AntMediumOptions,
  type CollectOptions,
  collectDataset,
  collectMixedDataset,
  type MixedCollectOptions,
  datasetSpace,
  ensureAntMediumDataset,
  loadPolicy,
} from './collect.js';
export {
  d4rlReferenceScores,
  normalizedScore,
  type ReferenceScores,
  type ReferenceScoresQuery,
  referenceScores,
} from './score.js';
export {
  ensureLevelDataset,
  type LevelDataset,
  type LevelDatasetOptions,
  type LevelKind,
  levelDataset,
  levelDatasets,
  shareSteps,
} from './levels.js';
// the offline trainers of Table 5: AT, DT, BC (issue 13)
export {
  AT_DEFAULTS,
  type AtOptions,
  BC_DEFAULTS,
  type BcOptions,
  decodeOfflineCheckpoint,
  DT_DEFAULTS,
  type DtOptions,
  EVAL_DEFAULTS,
  type EvalPoint,
  encodeOfflineCheckpoint,
  evaluationTarget,
  MODEL_DEFAULTS,
  type OfflineCheckpoint,
  type OfflineCheckpointState,
  type OfflineData,
  type OfflineEvalOptions,
  type EvaluationRecording,
  type OfflineHooks,
  type OfflineResult,
  type OfflineTrainOptions,
  offlineData,
  POLICY_FILE_LOADER,
  TRAIN_DEFAULTS,
  type TrainedPolicy,
  type TransformerModelOptions,
  trainAt,
  trainBc,
  trainDt,
  writePolicyFiles,
} from './offline/index.js';
// the offline-rl run (dataset resolved, opened, checked, trained) and its documented options
export {
  OFFLINE_RUN_OPTIONS,
  type OfflineRunHooks,
  type OfflineRunOptions,
  runOffline,
} from './offline/index.js';
