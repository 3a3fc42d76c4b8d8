/**
 * experiments/rollout/: the replay page and videos of recorded evaluation episodes (issue 18).
 * Recording is rl/rollout/'s; this room turns a rollout file into a self-contained HTML page and,
 * through headless Chromium and ffmpeg, into MP4/GIF.
 */
export { type BrowserPage, HeadlessChromium, type LaunchOptions } from './chromium.js';
export { replayPage, writeReplayPage } from './page.js';
export {
  type BrowserTools,
  browserTools,
  renderVideo,
  requireBrowserTools,
  type VideoOptions,
  type VideoResult,
} from './video.js';
export {
  type ArtifactSink,
  findRolloutsArtifact,
  type LogRolloutsOptions,
  logRollouts,
  ROLLOUTS_ARTIFACT_DIR,
  RolloutUploads,
} from './artifacts.js';
export { type EvaluationRecorder, evaluationRecording } from './recording.js';
