/**
 * Records episodes of a PPO policy file (rl/ppo-policy.ts's `ring-ppo-policy/1` JSON, e.g. the
 * shipped levels' snap-<update>.json): what `exp rollout video <policy>` replays (issue 18).
 */
import { readFileSync } from 'node:fs';
import { InputError, Rng } from '../../common/index.js';
import { make } from '../envs/index.js';
import { PpoPolicy } from '../ppo-policy.js';
import { type EpisodeLabel, RolloutRecorder, type Rollouts } from './recorder.js';

export interface RecordPolicyOptions {
  /** Episodes to run; episode e is reset with seed + e. */
  episodes: number;
  seed: number;
  /** Gaussian action samples (as the levels were scored) or the mean action. */
  stochastic: boolean;
  /** Cap on episode length (default: the env's registered limit). */
  maxEpisodeSteps?: number;
  keep?: EpisodeLabel[];
}

/** Runs the policy in `file` on its own env and returns the kept episodes. */
export function recordPolicy(file: string, o: RecordPolicyOptions): Rollouts {
  if (!Number.isInteger(o.episodes) || o.episodes < 1)
    throw new InputError(`recordPolicy: episodes must be a positive integer; got ${o.episodes}`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`${file}: cannot read the policy file: ${(err as Error).message}`);
  }
  const policy = PpoPolicy.fromJSONText(text, file);
  const env = make<ArrayLike<number>, number | Float32Array>(
    policy.json.envId,
    policy.json.envKwargs,
    o.maxEpisodeSteps !== undefined ? { maxEpisodeSteps: o.maxEpisodeSteps } : {},
  );
  const recorder = new RolloutRecorder(o.keep);
  const rng = new Rng(o.seed);
  try {
    for (let e = 0; e < o.episodes; e++) {
      let [obs] = env.reset({ seed: o.seed + e });
      recorder.reset(env, o.seed + e);
      for (;;) {
        const a = policy.act(obs, 1, o.stochastic, rng);
        const [next, reward, terminated, truncated] = env.step(policy.discrete ? a[0] : Float32Array.from(a));
        recorder.step(env, reward, terminated || truncated);
        obs = next;
        if (terminated || truncated) break;
      }
    }
  } finally {
    env.close();
  }
  return recorder.result({ policy: file, stochastic: String(o.stochastic) });
}
