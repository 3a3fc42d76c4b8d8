/**
 * Evaluation of a policy on an rl/envs task: episodes with seeds, returns, D4RL-normalised scores
 * (rl/score.ts), mean ± std.
 */
import { InputError } from '../common/index.js';
import { make } from './envs/index.js';
import type { RolloutEnv } from './policies/agentic-transformer.js';
import type { RolloutRecorder } from './rollout/index.js';
import { normalizedScore, type ReferenceScores } from './score.js';

export interface EvalSummary {
  returns: number[];
  mean: number;
  std: number;
  normalizedMean?: number;
  normalizedStd?: number;
}

/**
 * Mean ± std of the returns and, when `refs` are known (see `referenceScores`), of their
 * normalised scores; without refs the normalised fields are absent, never guessed.
 */
export function summarize(refs: ReferenceScores | undefined, returns: number[]): EvalSummary {
  const mean = returns.reduce((a, b) => a + b, 0) / Math.max(1, returns.length);
  const std = Math.sqrt(returns.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, returns.length));
  if (refs === undefined) return { returns, mean, std };
  const norm = returns.map((r) => normalizedScore(r, refs));
  const nm = norm.reduce((a, b) => a + b, 0) / norm.length;
  const ns = Math.sqrt(norm.reduce((a, b) => a + (b - nm) ** 2, 0) / norm.length);
  return { returns, mean, std, normalizedMean: nm, normalizedStd: ns };
}

export interface EvalEnvOptions {
  envId: string;
  kwargs?: Record<string, unknown>;
  /** Cap on episode length (default: the env's registered limit). */
  maxEpisodeSteps?: number;
  /** Dataset state statistics: policies see (obs − mean) / std. */
  stateMean?: Float32Array;
  stateStd?: Float32Array;
  /** Keeps chosen episodes' states for replay and video (eval.record, issue 18). */
  recorder?: RolloutRecorder;
}

/** An env whose observations are normalised and whose `done` is terminated or truncated. */
export function rolloutEnv(
  o: EvalEnvOptions,
): RolloutEnv & { obsDim: number; actDim: number; close(): void } {
  const env = make<Float64Array, Float32Array>(o.envId, o.kwargs ?? {}, {
    maxEpisodeSteps: o.maxEpisodeSteps,
  });
  const obsShape = (env.observationSpace as unknown as { shape: number[] }).shape;
  const actShape = (env.actionSpace as unknown as { shape: number[] }).shape;
  const obsDim = obsShape[0];
  if (o.stateMean && o.stateMean.length !== obsDim)
    throw new InputError(
      `evaluate: ${o.envId} observations have ${obsDim} dims; the dataset's have ${o.stateMean.length}`,
    );
  const norm = (x: Float64Array) => {
    const out = new Float32Array(obsDim);
    for (let i = 0; i < obsDim; i++)
      out[i] = o.stateMean && o.stateStd ? (x[i] - o.stateMean[i]) / o.stateStd[i] : x[i];
    return out;
  };
  return {
    obsDim,
    actDim: actShape[0],
    reset(seed?: number) {
      const [obs] = env.reset({ seed });
      o.recorder?.reset(env, seed);
      return norm(obs);
    },
    step(action: Float32Array) {
      const [obs, reward, terminated, truncated] = env.step(action);
      o.recorder?.step(env, reward, terminated || truncated);
      return { obs: norm(obs), reward, done: terminated || truncated };
    },
    close() {
      env.close();
    },
  };
}

/** The env `evaluateEpisodes` steps: RolloutEnv's shape over any observation and action type. */
export interface EpisodeEnv<Obs, Act> {
  reset(seed?: number): Obs;
  step(action: Act): { obs: Obs; reward: number; done: boolean };
}

/**
 * Runs `episodes` episodes of `act` (a fresh per-episode policy state from `start`), episode e
 * reset with seed + e; returns the undiscounted returns. A RolloutEnv by default; PPO's
 * `evaluatePolicy` steps raw observations and discrete actions through it too.
 */
export function evaluateEpisodes<Obs = Float32Array, Act = Float32Array>(
  env: EpisodeEnv<Obs, Act>,
  episodes: number,
  seed: number,
  start: () => (obs: Obs, reward: number, t: number) => Act,
): number[] {
  const returns: number[] = [];
  for (let e = 0; e < episodes; e++) {
    const act = start();
    let obs = env.reset(seed + e);
    let total = 0;
    let reward = 0;
    for (let t = 0; ; t++) {
      const r = env.step(act(obs, reward, t));
      total += r.reward;
      reward = r.reward;
      obs = r.obs;
      if (r.done) break;
    }
    returns.push(total);
  }
  return returns;
}
