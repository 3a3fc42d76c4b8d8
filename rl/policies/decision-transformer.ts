/**
 * Decision Transformer (Chen et al. 2021). Each step is three tokens (R̂_t, s_t, a_t): the
 * return still to collect, the state, the action; the action is predicted from the state token
 * through tanh. Trained on K-step windows (K = 20) with mean squared error; at test time the
 * return-to-go starts at a target and decreases by each reward received.
 */
import * as tf from '@tensorflow/tfjs';
import type { DtBatch } from '../../datasets/index.js';
import { emptyTokenBatch, type TokenBatch } from './tokens.js';
import type { TrajectoryTransformer, TrajectoryTransformerConfig } from './trajectory-transformer.js';

export const DT_MODALITIES = { returnToGo: 0, state: 1, action: 2 } as const;

export function dtModelConfig(
  obsDim: number,
  actDim: number,
  o: Omit<TrajectoryTransformerConfig, 'modalities' | 'actionFrom' | 'actDim'>,
): TrajectoryTransformerConfig {
  return { ...o, modalities: [1, obsDim, actDim], actionFrom: DT_MODALITIES.state, actDim };
}

/** (B, K) windows → (B, 3K) tokens R̂, s, a per step; padding steps become padding tokens. */
export function dtTokens(w: DtBatch, maxTimestep: number): TokenBatch {
  const { batchSize: B, context: K, obsDim: S, actDim: A } = w;
  const F = Math.max(S, A, 1);
  const out = emptyTokenBatch(B, 3 * K, F, A);
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < K; k++) {
      const step = b * K + k;
      const real = w.mask[step] === 1;
      const t = Math.min(w.timesteps[step], maxTimestep - 1);
      for (let m = 0; m < 3; m++) {
        const tok = b * 3 * K + 3 * k + m;
        out.types[tok] = m;
        out.timesteps[tok] = t;
        out.segments[tok] = real ? 1 : 0;
      }
      const base = b * 3 * K + 3 * k;
      out.feats[base * F] = w.returnsToGo[step];
      out.feats.set(w.states.subarray(step * S, (step + 1) * S), (base + 1) * F);
      out.feats.set(w.actions.subarray(step * A, (step + 1) * A), (base + 2) * F);
      if (real) {
        out.targets.set(w.actions.subarray(step * A, (step + 1) * A), (base + 1) * A);
        out.weights[base + 1] = 1;
      }
    }
  }
  return out;
}

/** One episode's history for acting: normalised states, actions, returns-to-go, timesteps. */
export interface DtHistory {
  states: Float32Array[];
  actions: Float32Array[];
  returnsToGo: number[];
  timesteps: number[];
}

/** The action for the last state of `h`, from its last K steps (the current action is unknown: zeros). */
export function dtAct(
  model: TrajectoryTransformer,
  h: DtHistory,
  K: number,
  maxTimestep: number,
): Float32Array {
  const n = h.states.length;
  const from = Math.max(0, n - K);
  const S = h.states[0].length;
  const A = model.config.actDim;
  const window: DtBatch = {
    batchSize: 1,
    context: K,
    obsDim: S,
    actDim: A,
    states: new Float32Array(K * S),
    actions: new Float32Array(K * A),
    rewards: new Float32Array(K),
    returnsToGo: new Float32Array(K),
    timesteps: new Int32Array(K),
    mask: new Uint8Array(K),
    episodes: new Int32Array(1),
    starts: new Int32Array(1),
  };
  const pad = K - (n - from);
  for (let i = from; i < n; i++) {
    const k = pad + i - from;
    window.states.set(h.states[i], k * S);
    if (i < n - 1) window.actions.set(h.actions[i], k * A);
    window.returnsToGo[k] = h.returnsToGo[i];
    window.timesteps[k] = h.timesteps[i];
    window.mask[k] = 1;
  }
  const tokens = dtTokens(window, maxTimestep);
  // the prediction at the last state token; (1, 3K, A) → (1, 1, A)
  const last = tf.tidy(() => tf.slice(model.forward(tokens), [0, 3 * (K - 1) + 1, 0], [1, 1, A]));
  const action = (last.dataSync() as Float32Array).slice();
  last.dispose();
  return action;
}
