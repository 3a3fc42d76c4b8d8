/**
 * rl/rollout/: recording evaluation episodes for replay and video (issue 18). The recorder keeps
 * the chosen episodes' states; the Arrow codec stores them with the scene the page draws. The page
 * and the video are experiments/rollout/'s.
 */
export { readRollouts, ROLLOUT_FORMAT, rolloutsToIPC, writeRollouts } from './arrow.js';
export { recordPolicy, type RecordPolicyOptions } from './policy.js';
export {
  EPISODE_LABELS,
  type EpisodeLabel,
  type RecordedEpisode,
  RolloutRecorder,
  type Rollouts,
} from './recorder.js';
export {
  type CartPoleScene,
  GEOM_TYPES,
  type GeomType,
  type MujocoScene,
  type PendulumScene,
  replayableEnv,
  type Scene,
  type SceneGeom,
  sceneOf,
  snapshotOf,
  type StateSnapshot,
} from './scene.js';
