/**
 * Evaluation recording as the offline-rl and ppo recipes give it to their trainers (issue 18),
 * written once: a fresh RolloutRecorder per evaluation; the episodes it saw are logged as
 * rollouts/step-<step>/ artifacts in the background (a video takes seconds, training goes on),
 * and `done` awaits them (throwing the first failure) before the run finishes.
 */
import { RolloutRecorder } from '../../rl/rollout/index.js';
import { type ArtifactSink, RolloutUploads } from './artifacts.js';

/**
 * Both trainers' hooks: rl/offline's `recorder()` + `evaluated(step)` (the last recorder's) and
 * rl/ppo-run.ts's `recorder(step)` + `recorded(step, recorder)`.
 */
export interface EvaluationRecorder {
  /** The recorder of the evaluation about to run (a fresh one each time). */
  recorder(): RolloutRecorder;
  /** The evaluation at `step` has finished: the last recorder's episodes, if any, are logged. */
  evaluated(step: number): void;
  /** The evaluation at `step` recorded into `recorder`: its episodes, if any, are logged. */
  recorded(step: number, recorder: RolloutRecorder): void;
  /** Awaits every upload; throws the first failure. */
  done(): Promise<void>;
}

/**
 * Recording for run `runId`, its artifacts through `log`; `video` also renders an MP4 per episode
 * (Chromium and ffmpeg are required now, before training: `who` names the config key in the error).
 */
export function evaluationRecording(
  log: ArtifactSink,
  runId: string,
  o: { video: boolean; who: string },
): EvaluationRecorder {
  const uploads = new RolloutUploads(log, o);
  let current: RolloutRecorder | undefined;
  const recorded = (step: number, r: RolloutRecorder | undefined) => {
    if (!r?.episodesSeen) return;
    uploads.add(step, r.result({ run: runId, step: String(step) }));
  };
  return {
    recorder: () => {
      current = new RolloutRecorder();
      return current;
    },
    evaluated: (step) => {
      const r = current;
      current = undefined;
      recorded(step, r);
    },
    recorded,
    done: () => uploads.done(),
  };
}
