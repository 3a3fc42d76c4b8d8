/**
 * Agentic Transformer (Liu & Abbeel 2023; the paper's Table 5). The context is a chain of
 * hindsight: n trajectories sorted by return, lowest first, each relabelled with the chain's best
 * return as its target; each step is four tokens (R̂ = target − reward so far, state, action,
 * completion flag d — 1 on the last step of a trajectory that reached the target). The action is
 * predicted from the state token. At test time the agent rolls out n trials one after another,
 * every earlier trial staying in context, and reports the last and the best.
 */
import * as tf from '@tensorflow/tfjs';
import type { AtBatch } from '../../datasets/index.js';
import { disposeKvCache, emptyKvCache, trimKvCache } from '../../ring/index.js';
import { emptyTokenBatch, type TokenBatch } from './tokens.js';
import type { TrajectoryTransformer, TrajectoryTransformerConfig } from './trajectory-transformer.js';

export const AT_MODALITIES = { returnToGo: 0, state: 1, action: 2, completion: 3 } as const;
const TOKENS_PER_STEP = 4;

export function atModelConfig(
  obsDim: number,
  actDim: number,
  o: Omit<TrajectoryTransformerConfig, 'modalities' | 'actionFrom' | 'actDim'>,
): TrajectoryTransformerConfig {
  return { ...o, modalities: [1, obsDim, actDim, 1], actionFrom: AT_MODALITIES.state, actDim };
}

/** (B, L) chain steps → (B, 4L) tokens R̂, s, a, d per step. */
export function atTokens(c: AtBatch, maxTimestep: number): TokenBatch {
  const { batchSize: B, contextSteps: L, obsDim: S, actDim: A } = c;
  const F = Math.max(S, A, 1);
  const out = emptyTokenBatch(B, TOKENS_PER_STEP * L, F, A);
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < L; l++) {
      const step = b * L + l;
      const real = c.mask[step] === 1;
      const base = b * TOKENS_PER_STEP * L + TOKENS_PER_STEP * l;
      const t = Math.min(c.timesteps[step], maxTimestep - 1);
      for (let m = 0; m < TOKENS_PER_STEP; m++) {
        out.types[base + m] = m;
        out.timesteps[base + m] = t;
        out.segments[base + m] = real ? 1 : 0;
      }
      out.feats[base * F] = c.returnsToGo[step];
      out.feats.set(c.states.subarray(step * S, (step + 1) * S), (base + 1) * F);
      out.feats.set(c.actions.subarray(step * A, (step + 1) * A), (base + 2) * F);
      out.feats[(base + 3) * F] = c.completions[step];
      if (real) {
        out.targets.set(c.actions.subarray(step * A, (step + 1) * A), (base + 1) * A);
        out.weights[base + 1] = 1;
      }
    }
  }
  return out;
}

/** One token for incremental rollouts (B = 1). */
function token(
  type: number,
  values: Float32Array | number[],
  timestep: number,
  F: number,
  A: number,
): TokenBatch {
  const t = emptyTokenBatch(1, 1, F, A);
  t.types[0] = type;
  t.timesteps[0] = timestep;
  t.segments[0] = 1;
  t.feats.set(values, 0);
  return t;
}

function concatTokens(parts: TokenBatch[]): TokenBatch {
  const { featDim: F, actDim: A } = parts[0];
  const out = emptyTokenBatch(1, parts.length, F, A);
  parts.forEach((p, i) => {
    out.types[i] = p.types[0];
    out.timesteps[i] = p.timesteps[0];
    out.segments[i] = 1;
    out.feats.set(p.feats, i * F);
  });
  return out;
}

/** What a rollout needs from the environment: reset and step, states already normalised. */
export interface RolloutEnv {
  reset(seed?: number): Float32Array;
  step(action: Float32Array): { obs: Float32Array; reward: number; done: boolean };
}

export interface AtRolloutOptions {
  trials: number;
  /** The target return of every trial, in the units of the dataset's returns. */
  target: number;
  /** Returns-to-go are divided by this (as in training). */
  returnScale: number;
  maxTimestep: number;
  seed: number;
  /**
   * Keep only the last `windowTokens` tokens in context (the training context length; positions
   * come from timestep embeddings only, so a sliding window is exact). 0: keep everything.
   */
  windowTokens?: number;
}

/**
 * n trials in one growing context (KV cache: each step costs one pass over the new tokens).
 * Returns each trial's return.
 */
export function atRollout(model: TrajectoryTransformer, env: RolloutEnv, o: AtRolloutOptions): number[] {
  const F = model.featDim;
  const A = model.config.actDim;
  const caches = Array.from({ length: model.layers }, emptyKvCache);
  const returns: number[] = [];
  try {
    for (let trial = 0; trial < o.trials; trial++) {
      let obs = env.reset(o.seed + trial);
      let collected = 0;
      for (let t = 0; ; t++) {
        const ts = Math.min(t, o.maxTimestep - 1);
        const rtg = (o.target - collected) / o.returnScale;
        const pred = model.step(concatTokens([token(0, [rtg], ts, F, A), token(1, obs, ts, F, A)]), caches);
        const last = tf.slice(pred, [0, 1, 0], [1, 1, A]);
        const action = (last.dataSync() as Float32Array).slice();
        tf.dispose([pred, last]);
        const r = env.step(action);
        collected += r.reward;
        const completion = r.done && collected >= o.target ? 1 : 0;
        model
          .step(concatTokens([token(2, action, ts, F, A), token(3, [completion], ts, F, A)]), caches)
          .dispose();
        if (o.windowTokens) for (const c of caches) trimKvCache(c, o.windowTokens);
        obs = r.obs;
        if (r.done) break;
      }
      returns.push(collected);
    }
  } finally {
    for (const c of caches) disposeKvCache(c);
  }
  return returns;
}
