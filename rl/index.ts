/**
 * rl/: behaviour policies and data (issue 6). PPO (rl/ppo.ts), the collector and the ant-medium
 * default dataset (rl/collect.ts). The envs are in rl/envs/index.ts.
 */
export {
  evaluatePolicy,
  type EvaluateOptions,
  Mlp,
  POLICY_FORMAT,
  PPO_DEFAULTS,
  type PolicyJSON,
  type PpoOptions,
  PpoPolicy,
  type PpoResult,
  PpoTrainer,
  type PpoUpdate,
  type ReturnStats,
  returnStats,
  trainPpo,
} from './ppo.js';
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
