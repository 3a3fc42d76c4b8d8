/**
 * The PPO policy file (format `ring-ppo-policy/1`, issue 6): what a saved policy holds, its
 * float32-in-base64 layer codec, `PpoPolicy` (load and act), the trainer's save/restore into that
 * file, and `evaluatePolicy` (episodes on the policy's own env through rl/evaluate.ts). The
 * shipped behaviour policies (rl/behavior/) are such files; the format must not change.
 */
import { InputError, Rng } from '../common/index.js';
import { Box, type Discrete, make, type RunningMeanStd } from './envs/index.js';
import { type EpisodeEnv, evaluateEpisodes, summarize } from './evaluate.js';
import type { RolloutRecorder } from './rollout/index.js';
import { argmax, Mlp, sampleCategorical } from './nets/index.js';

// ------------------------------------------------------------------------ the file

/** Format tag of a saved policy. */
export const POLICY_FORMAT = 'ring-ppo-policy/1';

/** One dense layer, weights (nIn, nOut) row-major, as little-endian float32 in base64. */
export interface LayerJSON {
  shape: [number, number];
  w: string;
  b: string;
}

/** What a return measurement reports (episode returns, undiscounted). */
export interface ReturnStats {
  episodes: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  meanLength: number;
  returns: number[];
}

/**
 * A saved policy: actor weights, log-std and observation statistics, small enough to live in the
 * repo (a 105-64-64-8 actor is ≈46 KB of float32, ≈61 KB as base64).
 */
export interface PolicyJSON {
  format: typeof POLICY_FORMAT;
  envId: string;
  envKwargs: Record<string, unknown>;
  obsDim: number;
  /**
   * The network sees the first `inputDim` observation values (default all). Ant-v5 behaviour
   * policies use 27: positions and velocities, leaving out the 78 contact forces (see README).
   */
  inputDim?: number;
  action: { type: 'box'; dim: number; low: number[]; high: number[] } | { type: 'discrete'; n: number };
  hidden: number[];
  activation: 'tanh';
  /** Observations are normalised as clip((o − mean) / sqrt(var + eps), ±clip) before the actor. */
  obsNorm: { mean: number[]; var: number[]; count: number; eps: number; clip: number };
  actor: { layers: LayerJSON[]; logStd?: number[] };
  /** The critic is kept only in training checkpoints; behaviour policies leave it out. */
  critic?: { layers: LayerJSON[] };
  training: {
    algorithm: 'ppo';
    envSteps: number;
    updates: number;
    seed: number;
    wallSec: number;
    options: Record<string, unknown>;
    /** Reward-scaling statistics (discounted-return variance), to continue training. */
    returnVar?: number;
    returnCount?: number;
  };
  /** Returns measured on the saved (float32) weights; `deterministic` uses the mean action. */
  evaluation?: {
    seed: number;
    stochastic?: ReturnStats;
    deterministic?: ReturnStats;
    /** D4RL-normalised mean score of the mode named by `datasetMode`, when refs are known. */
    normalizedScore?: number;
    datasetMode?: 'stochastic' | 'deterministic';
    command?: string;
    machine?: string;
  };
  description?: string;
}

function f32ToBase64(a: ArrayLike<number>): string {
  return Buffer.from(new Float32Array(a).buffer).toString('base64');
}

function base64ToF64(s: string, n: number, who: string): Float64Array {
  const buf = Buffer.from(s, 'base64');
  if (buf.length !== 4 * n)
    throw new InputError(`${who}: expected ${n} float32 values; got ${buf.length} bytes`);
  const f32 = new Float32Array(n);
  new Uint8Array(f32.buffer).set(buf);
  return Float64Array.from(f32);
}

/** An MLP's layers as the file's LayerJSON (float32 in base64). */
export function layersToJSON(net: Mlp): LayerJSON[] {
  return net.layers.map((L) => ({ shape: [L.nIn, L.nOut], w: f32ToBase64(L.w), b: f32ToBase64(L.b) }));
}

/** Loads LayerJSON into an MLP of the same sizes; `who` names the file and part in errors. */
export function loadLayersJSON(net: Mlp, layers: LayerJSON[], who: string): void {
  if (layers.length !== net.layers.length)
    throw new InputError(`${who}: expected ${net.layers.length} layers; got ${layers.length}`);
  net.layers.forEach((L, l) => {
    const j = layers[l];
    if (j.shape[0] !== L.nIn || j.shape[1] !== L.nOut)
      throw new InputError(`${who}: layer ${l}: expected shape [${L.nIn}, ${L.nOut}]; got [${j.shape}]`);
    L.w.set(base64ToF64(j.w, L.nIn * L.nOut, `${who}: layer ${l} w`));
    L.b.set(base64ToF64(j.b, L.nOut, `${who}: layer ${l} b`));
  });
}

/**
 * clip((x − mean)/sqrt(var + eps), ±clip) over the first n = mean.length values of each row of
 * x (rows, stride) → (rows, n).
 */
export function normalizeObs(
  x: ArrayLike<number>,
  rows: number,
  stride: number,
  s: { mean: ArrayLike<number>; var: ArrayLike<number> },
  eps: number,
  clip: number,
): Float64Array {
  const n = s.mean.length;
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < n; i++) {
      const z = (x[r * stride + i] - s.mean[i]) / Math.sqrt(s.var[i] + eps);
      out[r * n + i] = Math.max(-clip, Math.min(clip, z));
    }
  return out;
}

// ------------------------------------------------------------------------ policy (inference)

/**
 * A trained policy for acting: obs normalisation + actor. `act` takes a batch of raw observations
 * (B, obsDim) and returns env actions (B, actDim) clipped to the action box, or (B,) indices.
 */
export class PpoPolicy {
  readonly actor: Mlp;
  readonly obsDim: number;
  readonly inputDim: number;
  readonly discrete: boolean;
  readonly actDim: number;

  constructor(readonly json: PolicyJSON) {
    const who = `PpoPolicy(${json.envId})`;
    if (json.format !== POLICY_FORMAT)
      throw new InputError(`${who}: expected format "${POLICY_FORMAT}"; got ${JSON.stringify(json.format)}`);
    this.obsDim = json.obsDim;
    this.inputDim = json.inputDim ?? json.obsDim;
    if (!Number.isInteger(this.inputDim) || this.inputDim < 1 || this.inputDim > this.obsDim)
      throw new InputError(
        `${who}: inputDim must be an integer in [1, ${this.obsDim}]; got ${json.inputDim}`,
      );
    this.discrete = json.action.type === 'discrete';
    this.actDim = json.action.type === 'discrete' ? 1 : json.action.dim;
    const out = json.action.type === 'discrete' ? json.action.n : json.action.dim;
    this.actor = new Mlp([this.inputDim, ...json.hidden, out], this.discrete ? 0 : out);
    loadLayersJSON(this.actor, json.actor.layers, `${who}: actor`);
    if (!this.discrete) {
      if (json.actor.logStd?.length !== out)
        throw new InputError(
          `${who}: actor.logStd: expected ${out} values; got ${json.actor.logStd?.length}`,
        );
      this.actor.extra.set(json.actor.logStd.map(Math.fround));
    }
    if (json.obsNorm.mean.length !== this.inputDim || json.obsNorm.var.length !== this.inputDim)
      throw new InputError(`${who}: obsNorm: expected mean and var of ${this.inputDim} values`);
  }

  static fromJSONText(text: string, who = 'PpoPolicy'): PpoPolicy {
    let j: PolicyJSON;
    try {
      j = JSON.parse(text) as PolicyJSON;
    } catch (err) {
      throw new InputError(`${who}: not JSON: ${(err as Error).message}`);
    }
    return new PpoPolicy(j);
  }

  /** One-line description, for dataset metadata. */
  describe(stochastic: boolean): string {
    const j = this.json;
    const ev = j.evaluation?.[stochastic ? 'stochastic' : 'deterministic'];
    return `PPO ${j.envId} MLP ${[this.inputDim, ...j.hidden].join('-')} tanh${this.inputDim < j.obsDim ? ` (first ${this.inputDim} of ${j.obsDim} obs values)` : ''}, ${stochastic ? 'stochastic (Gaussian samples)' : 'deterministic (mean action)'}, ${j.training.envSteps} training steps${ev ? `, mean return ${ev.mean.toFixed(1)} ± ${ev.std.toFixed(1)} over ${ev.episodes} episodes` : ''}`;
  }

  /** Actions for raw observations obs (B, obsDim); Gaussian samples from `rng` when stochastic. */
  act(obs: ArrayLike<number>, B: number, stochastic: boolean, rng?: Rng): Float64Array {
    const n = this.json.obsNorm;
    const x = normalizeObs(obs, B, this.obsDim, n, n.eps, n.clip);
    const cache = this.actor.forward(x, B);
    const out = cache[cache.length - 1];
    if (this.discrete) {
      const k = this.actor.outSize;
      const a = new Float64Array(B);
      for (let r = 0; r < B; r++) {
        const logits = out.subarray(r * k, (r + 1) * k);
        a[r] = stochastic ? sampleCategorical(logits, needRng(rng)) : argmax(logits);
      }
      return a;
    }
    const A = this.actDim;
    const { low, high } = this.json.action as { low: number[]; high: number[] };
    const a = new Float64Array(B * A);
    for (let r = 0; r < B; r++)
      for (let i = 0; i < A; i++) {
        let v = out[r * A + i];
        if (stochastic) v += Math.exp(this.actor.extra[i]) * needRng(rng).normal();
        a[r * A + i] = Math.max(low[i], Math.min(high[i], v));
      }
    return a;
  }
}

function needRng(rng: Rng | undefined): Rng {
  if (!rng) throw new Error('PpoPolicy.act: stochastic actions need an rng');
  return rng;
}

// ------------------------------------------------------------------------ trainer save/restore

/** Observation normalisation of trained policies: clip((o − mean)/sqrt(var + eps), ±clip). */
export const OBS_NORM = { eps: 1e-8, clip: 10 } as const;

/** What a policy file is written from and restored into (PpoTrainer is one). */
export interface PpoTrainerState {
  /** The trainer's options with defaults filled in, all written as `training.options`. */
  readonly h: {
    readonly envId: string;
    readonly seed: number;
    readonly hidden: number[];
    readonly normObs: boolean;
  };
  readonly envKwargs: Record<string, unknown>;
  readonly obsDim: number;
  readonly inDim: number;
  readonly actionSpace: Box | Discrete;
  readonly discrete: boolean;
  readonly actor: Mlp;
  readonly critic: Mlp;
  readonly obsStats: RunningMeanStd;
  readonly retStats: RunningMeanStd;
  envStep: number;
  updates: number;
  wallSec: number;
}

/** What a trainer's `onUpdate` callback sees: its state and its policy file. */
export interface PpoTrainerView extends PpoTrainerState {
  policyJSON(withCritic?: boolean): PolicyJSON;
}

/** The trainer's policy as a file (actor + obs statistics; the critic too when `withCritic`). */
export function trainerPolicyJSON(t: PpoTrainerState, withCritic: boolean): PolicyJSON {
  const { h, actionSpace: as } = t;
  const options: Record<string, unknown> = { ...h };
  return {
    format: POLICY_FORMAT,
    envId: h.envId,
    envKwargs: t.envKwargs,
    obsDim: t.obsDim,
    ...(t.inDim < t.obsDim ? { inputDim: t.inDim } : {}),
    action:
      as instanceof Box
        ? { type: 'box', dim: as.size, low: Array.from(as.low), high: Array.from(as.high) }
        : { type: 'discrete', n: as.n },
    hidden: h.hidden,
    activation: 'tanh',
    // Without normalisation the file holds the identity (var + eps = 1, no clip).
    obsNorm: h.normObs
      ? {
          mean: Array.from(t.obsStats.mean, Math.fround),
          var: Array.from(t.obsStats.var, Math.fround),
          count: t.obsStats.count,
          eps: OBS_NORM.eps,
          clip: OBS_NORM.clip,
        }
      : {
          mean: new Array(t.inDim).fill(0),
          var: new Array(t.inDim).fill(1 - OBS_NORM.eps),
          count: 0,
          eps: OBS_NORM.eps,
          clip: Number.MAX_VALUE,
        },
    actor: {
      layers: layersToJSON(t.actor),
      ...(t.discrete ? {} : { logStd: Array.from(t.actor.extra, Math.fround) }),
    },
    ...(withCritic ? { critic: { layers: layersToJSON(t.critic) } } : {}),
    training: {
      algorithm: 'ppo',
      envSteps: t.envStep,
      updates: t.updates,
      seed: h.seed,
      wallSec: Math.round(t.wallSec),
      options,
      returnVar: t.retStats.var[0],
      returnCount: t.retStats.count,
    },
  };
}

/** Restores weights, statistics and counters of a policy saved with its critic into a trainer. */
export function loadTrainerState(t: PpoTrainerState, j: PolicyJSON): void {
  const who = `trainPpo: init (${j.envId})`;
  if (j.envId !== t.h.envId) throw new InputError(`${who}: expected a policy of ${t.h.envId}`);
  if (!j.critic) throw new InputError(`${who}: the policy has no critic (save it with policyJSON(true))`);
  loadLayersJSON(t.actor, j.actor.layers, `${who}: actor`);
  loadLayersJSON(t.critic, j.critic.layers, `${who}: critic`);
  if (j.actor.logStd) t.actor.extra.set(j.actor.logStd);
  t.obsStats.mean.set(j.obsNorm.mean);
  t.obsStats.var.set(j.obsNorm.var);
  t.obsStats.count = j.obsNorm.count;
  t.retStats.var[0] = j.training.returnVar ?? 1;
  t.retStats.count = j.training.returnCount ?? 1e-4;
  t.envStep = j.training.envSteps;
  t.updates = j.training.updates;
  t.wallSec = j.training.wallSec;
}

// ------------------------------------------------------------------------ evaluation

export interface EvaluateOptions {
  episodes: number;
  /** Episode k is reset with seed + k; the action noise Rng is seeded with `seed` too. */
  seed: number;
  stochastic: boolean;
  /** Overrides the env's time limit (tests use shorter episodes). */
  maxEpisodeSteps?: number;
  signal?: AbortSignal;
  /** Keeps chosen episodes' states for replay and video (evalRecord, issue 18). */
  recorder?: RolloutRecorder;
}

/** Summary statistics of a list of returns (mean and std by rl/evaluate.ts's `summarize`). */
export function returnStats(returns: number[], lengths: number[]): ReturnStats {
  const n = returns.length;
  // NOTE: no episodes (an abort before the first) stay NaN, never a made-up 0.
  const { mean, std } = n > 0 ? summarize(undefined, returns) : { mean: Number.NaN, std: Number.NaN };
  return {
    episodes: n,
    mean,
    std,
    min: Math.min(...returns),
    max: Math.max(...returns),
    meanLength: lengths.reduce((a, b) => a + b, 0) / n,
    returns,
  };
}

/**
 * Rolls a policy out for `episodes` episodes on one env (its own `envId`/`envKwargs`) and returns
 * the undiscounted returns. Deterministic given the seed.
 */
export function evaluatePolicy(policy: PpoPolicy, o: EvaluateOptions): ReturnStats {
  if (!Number.isInteger(o.episodes) || o.episodes < 1)
    throw new InputError(`evaluatePolicy: episodes must be a positive integer; got ${o.episodes}`);
  const made = make(
    policy.json.envId,
    policy.json.envKwargs,
    o.maxEpisodeSteps !== undefined ? { maxEpisodeSteps: o.maxEpisodeSteps } : {},
  );
  const env = made as {
    reset(a: { seed?: number }): [ArrayLike<number>, unknown];
    step(a: number | Float32Array): [ArrayLike<number>, number, boolean, boolean, unknown];
    close(): void;
  };
  const episodeEnv: EpisodeEnv<ArrayLike<number>, number | Float32Array> = {
    reset: (seed) => {
      const [obs] = env.reset({ seed });
      o.recorder?.reset(made, seed);
      return obs;
    },
    step: (action) => {
      const [obs, reward, terminated, truncated] = env.step(action);
      o.recorder?.step(made, reward, terminated || truncated);
      return { obs, reward, done: terminated || truncated };
    },
  };
  const rng = new Rng(o.seed);
  const returns: number[] = [];
  const lengths: number[] = [];
  try {
    // One episode per call (seeded seed + k), so an abort stops between episodes.
    for (let k = 0; k < o.episodes && !o.signal?.aborted; k++) {
      let length = 0;
      const [ret] = evaluateEpisodes(episodeEnv, 1, o.seed + k, () => (obs) => {
        length++;
        const a = policy.act(obs, 1, o.stochastic, rng);
        return policy.discrete ? a[0] : Float32Array.from(a);
      });
      returns.push(ret);
      lengths.push(length);
    }
  } finally {
    env.close();
  }
  return returnStats(returns, lengths);
}
