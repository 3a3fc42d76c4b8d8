/**
 * Keeps the states of chosen evaluation episodes (issue 18): the first, the best and the worst by
 * default, as Gymnasium's RecordVideo keeps chosen episodes. An evaluation calls `reset` after
 * each env reset and `step` after each env step; at most one episode per label plus the running
 * one is held in memory.
 */
import { InputError } from '../../common/index.js';
import { type Env, KinematicsScratch, MujocoEnv } from '../envs/index.js';
import { replayableEnv, type Scene, type StateSnapshot, sceneOf, snapshotOf } from './scene.js';

/** Which episodes to keep: the first evaluated, the highest return, the lowest. */
export const EPISODE_LABELS = ['first', 'best', 'worst'] as const;
export type EpisodeLabel = (typeof EPISODE_LABELS)[number];

export interface RecordedEpisode {
  /** 0-based index among the evaluation's episodes. */
  index: number;
  /** The seed its reset was given (absent: unseeded). */
  seed?: number;
  /** Why it was kept (an episode can be the first and the best). */
  labels: EpisodeLabel[];
  /** Undiscounted return: the sum of `rewards`. */
  return: number;
  /** (T + 1) states: after the reset, then after each of the T steps. */
  states: StateSnapshot[];
  /** (T,) the reward of each step. */
  rewards: number[];
}

/** An evaluation's recorded episodes, with what the replay needs to draw them. */
export interface Rollouts {
  envId: string;
  scene: Scene;
  /** Simulated seconds per env step (the page plays in real time at speed 1). */
  dt: number;
  episodes: RecordedEpisode[];
  /** Free-form provenance shown by the page: run id, training step, policy file. */
  source?: Record<string, string>;
}

export class RolloutRecorder {
  readonly keep: EpisodeLabel[];
  private scene?: Scene;
  private dt = 0;
  private envId = '';
  private current?: RecordedEpisode;
  /** Forward kinematics of the running episode's MuJoCo states (freed when it ends). */
  private scratch?: KinematicsScratch;
  private count = 0;
  private readonly kept = new Map<EpisodeLabel, RecordedEpisode>();

  constructor(keep: readonly EpisodeLabel[] = EPISODE_LABELS) {
    for (const k of keep)
      if (!EPISODE_LABELS.includes(k))
        throw new InputError(
          `RolloutRecorder: episode label '${k}': expected one of ${EPISODE_LABELS.join(', ')}`,
        );
    if (!keep.length) throw new InputError('RolloutRecorder: keep at least one of first, best, worst');
    this.keep = [...keep];
  }

  /** Call after `env.reset`: starts an episode (the previous one must have ended). */
  reset(env: Env<unknown, unknown>, seed?: number): void {
    const base = replayableEnv(env);
    if (this.scene === undefined) {
      this.scene = sceneOf(base);
      this.envId = env.spec?.id ?? base.name;
      this.dt =
        'dt' in base && typeof base.dt === 'number' ? base.dt : 'tau' in base ? Number(base.tau) : 0.05;
    }
    if (this.current)
      throw new InputError('RolloutRecorder.reset: the previous episode did not end (step with done)');
    this.scratch = base instanceof MujocoEnv ? new KinematicsScratch(base.model) : undefined;
    this.current = {
      index: this.count++,
      seed,
      labels: [],
      return: 0,
      states: [snapshotOf(base, this.scratch)],
      rewards: [],
    };
  }

  /** Call after `env.step`; `done` (terminated or truncated) ends the episode. */
  step(env: Env<unknown, unknown>, reward: number, done: boolean): void {
    const ep = this.current;
    if (!ep) throw new InputError('RolloutRecorder.step: no episode started (call reset first)');
    ep.states.push(snapshotOf(replayableEnv(env), this.scratch));
    ep.rewards.push(reward);
    ep.return += reward;
    if (done) this.finish(ep);
  }

  private finish(ep: RecordedEpisode): void {
    this.current = undefined;
    this.scratch?.delete();
    this.scratch = undefined;
    const better = (label: EpisodeLabel, old: RecordedEpisode | undefined) =>
      old === undefined ||
      (label === 'best' && ep.return > old.return) ||
      (label === 'worst' && ep.return < old.return);
    for (const label of this.keep)
      if (label !== 'first' || ep.index === 0)
        if (better(label, this.kept.get(label))) this.kept.set(label, ep);
  }

  /** Episodes recorded so far (finished ones). */
  get episodesSeen(): number {
    return this.count - (this.current ? 1 : 0);
  }

  /** The kept episodes in evaluation order, each once with all its labels. */
  result(source?: Record<string, string>): Rollouts {
    if (!this.scene || !this.kept.size)
      throw new InputError('RolloutRecorder.result: no finished episode recorded');
    const byIndex = new Map<number, RecordedEpisode>();
    for (const label of this.keep) {
      const ep = this.kept.get(label);
      if (!ep) continue;
      const kept = byIndex.get(ep.index) ?? { ...ep, labels: [] };
      kept.labels.push(label);
      byIndex.set(ep.index, kept);
    }
    const episodes = [...byIndex.values()].sort((a, b) => a.index - b.index);
    return { envId: this.envId, scene: this.scene, dt: this.dt, episodes, source };
  }
}
