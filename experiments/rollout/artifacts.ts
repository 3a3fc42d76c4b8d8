/**
 * Rollouts as run artifacts (issue 18): an evaluation at training step N logs
 * `rollouts/step-<N>/rollouts.arrow` (the recorded states), `replay.html` (the page, which opens
 * from MLflow's artifact view) and, with `eval.video`, `episode-<index>.mp4` per kept episode.
 * `exp rollout view|video <run>` reads them back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../common/index.js';
import { type Rollouts, writeRollouts } from '../../rl/rollout/index.js';
import type { TrackingStore } from '../tracking/index.js';
import { writeReplayPage } from './page.js';
import { type BrowserTools, renderVideo, requireBrowserTools } from './video.js';

export const ROLLOUTS_ARTIFACT_DIR = 'rollouts';

export interface LogRolloutsOptions {
  /** Chromium and ffmpeg: also render and log an MP4 per kept episode (`eval.video`). */
  video?: BrowserTools;
  width?: number;
  height?: number;
}

/** Uploads a local file as a run artifact: RunTracker's `file`, or a store's `logArtifact` bound to a run. */
export type ArtifactSink = (localFile: string, artifactPath: string) => Promise<void>;

/** Logs `r` under `rollouts/step-<step>/` through `log`; returns the artifact paths logged. */
export async function logRollouts(
  log: ArtifactSink,
  step: number,
  r: Rollouts,
  o: LogRolloutsOptions,
): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ring-rollouts-'));
  const base = `${ROLLOUTS_ARTIFACT_DIR}/step-${step}`;
  const logged: string[] = [];
  try {
    const arrow = join(dir, 'rollouts.arrow');
    const page = join(dir, 'replay.html');
    writeRollouts(arrow, r);
    writeReplayPage(page, r);
    const files: [string, string][] = [
      [arrow, `${base}/rollouts.arrow`],
      [page, `${base}/replay.html`],
    ];
    if (o.video) {
      const tools = o.video;
      for (let i = 0; i < r.episodes.length; i++) {
        const mp4 = join(dir, `episode-${r.episodes[i].index}.mp4`);
        await renderVideo(
          page,
          mp4,
          { width: o.width ?? 480, height: o.height ?? 320, episode: i, every: 1, follow: true },
          tools,
        );
        files.push([mp4, `${base}/episode-${r.episodes[i].index}.mp4`]);
      }
    }
    for (const [local, path] of files) {
      await log(local, path);
      logged.push(path);
    }
    return logged;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The rollouts of a training run's evaluations, logged in the background (a video takes seconds,
 * training goes on) and awaited by `done`, which throws the first failure. With `video`, Chromium
 * and ffmpeg are found (or installed) when it is made: a machine without them fails before
 * training, not after.
 */
export class RolloutUploads {
  private readonly pending: Promise<void>[] = [];
  private failure?: unknown;
  private readonly options: LogRolloutsOptions;

  constructor(
    private readonly log: ArtifactSink,
    o: { video: boolean; who: string },
  ) {
    this.options = o.video ? { video: requireBrowserTools(o.who) } : {};
  }

  add(step: number, r: Rollouts): void {
    this.pending.push(
      logRollouts(this.log, step, r, this.options).then(
        () => undefined,
        (err) => {
          this.failure ??= err;
        },
      ),
    );
  }

  async done(): Promise<void> {
    await Promise.all(this.pending);
    if (this.failure) throw this.failure;
  }
}

/** The newest `rollouts/step-<N>/rollouts.arrow` of a run (largest N), or of step `step`. */
export async function findRolloutsArtifact(
  store: TrackingStore,
  runId: string,
  step?: number,
): Promise<string> {
  const dirs = (await store.listArtifacts(runId, ROLLOUTS_ARTIFACT_DIR).catch(() => []))
    .map((a) => ({ path: a.path, m: /step-(\d+)$/.exec(a.path) }))
    .filter((a) => a.m)
    .map((a) => ({ path: a.path, step: Number(a.m![1]) }))
    .sort((a, b) => b.step - a.step);
  if (!dirs.length)
    throw new InputError(
      `run ${runId} has no ${ROLLOUTS_ARTIFACT_DIR}/step-<N>/ artifacts: run it with eval.record: true (or record a policy file: exp rollout view <policy.json>)`,
    );
  const chosen = step === undefined ? dirs[0] : dirs.find((d) => d.step === step);
  if (!chosen)
    throw new InputError(`--step ${step}: run ${runId} recorded steps ${dirs.map((d) => d.step).join(', ')}`);
  return `${chosen.path}/rollouts.arrow`;
}
