/**
 * rl/envs: a Gymnasium-style environment API (issue 4). Envs, spaces, the registry (`make`),
 * wrappers, vector envs (sync and worker threads), `checkEnv`, and the built-in tasks: MuJoCo
 * Ant-v5, HalfCheetah-v5, Hopper-v5, Walker2d-v5 on @mujoco/mujoco, and CartPole-v1, Pendulum-v1.
 */
export { AntEnv, type AntOptions, ANT_KWARGS } from './ant.js';
export { checkEnv, type CheckEnvOptions, type CheckEnvReport } from './checker.js';
export { CartPoleEnv, type CartPoleOptions, PendulumEnv, type PendulumOptions } from './classic.js';
export {
  assertAction,
  Env,
  type EnvMetadata,
  type EnvSpec,
  type Info,
  type ResetArgs,
  type StepResult,
  Wrapper,
} from './core.js';
export { EnvCheckError, InvalidAction, InvalidArgument, ResetNeeded, UnregisteredEnv } from './errors.js';
export { HalfCheetahEnv, type HalfCheetahOptions } from './half_cheetah.js';
export type { KwargKind, KwargSpec, KwargTable } from './kwargs.js';
export { assetPath, KinematicsScratch, MujocoEnv, mujocoVersion } from './mujoco_env.js';
export { PlanarWalkerEnv, type PlanarWalkerOptions } from './planar_walker.js';
export {
  type EnvRegistration,
  type MakeOptions,
  make,
  register,
  registeredIds,
  registration,
  spec,
} from './registry.js';
export {
  Box,
  type BoxDtype,
  type BoxValue,
  Discrete,
  DictSpace,
  type DictValue,
  type JSONNumber,
  MultiDiscrete,
  parseSpaceJSON,
  type Space,
  type SpaceJSON,
  spaceFromJSON,
  valuesEqual,
} from './spaces.js';
export {
  AsyncVectorEnv,
  type AsyncVectorEnvOptions,
  addInfo,
  type BatchObs,
  type EnvRecipe,
  makeVec,
  type MakeVecOptions,
  SyncVectorEnv,
  VectorEnv,
  type VectorInfo,
  type VectorResetArgs,
  type VectorStepResult,
} from './vector.js';
export {
  ClipAction,
  type EpisodeStatistics,
  NormalizeObservation,
  OrderEnforcing,
  RecordEpisodeStatistics,
  RescaleAction,
  RunningMeanStd,
  TimeLimit,
} from './wrappers.js';
