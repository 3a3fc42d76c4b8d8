/**
 * Action distributions over a policy network's output, with the hand-written gradients PPO's loss
 * needs: a Gaussian over means (B, K) with a state-independent log-std (K) (CleanRL's
 * ppo_continuous_action), and a categorical over logits (B, K) (CleanRL's ppo). Each gives
 * log π(a) and the mean entropy for a batch, and backward turns dLoss/dlogπ (B) and the entropy
 * coefficient into dLoss/dOut (B, K).
 */
import type { Rng } from '../../common/index.js';

export const LOG_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);

/** Log-probabilities (B) of the taken actions and the batch's mean entropy. */
export interface HeadLogProb {
  logp: Float64Array;
  entropy: number;
}

/** Gaussian head: actions (B, K) under N(out, exp(logStd)²), dimensions independent. */
export function gaussianLogProb(
  out: Float64Array,
  actions: Float64Array,
  logStd: Float64Array,
  B: number,
): HeadLogProb {
  const K = logStd.length;
  const logp = new Float64Array(B);
  for (let r = 0; r < B; r++) {
    let lp = 0;
    for (let i = 0; i < K; i++) {
      const z = (actions[r * K + i] - out[r * K + i]) / Math.exp(logStd[i]);
      lp += -0.5 * z * z - logStd[i] - LOG_SQRT_2PI;
    }
    logp[r] = lp;
  }
  let entropy = 0;
  for (let i = 0; i < K; i++) entropy += 0.5 + LOG_SQRT_2PI + logStd[i];
  return { logp, entropy };
}

/**
 * dOut (B, K) of Σ_r dLogp_r·log π_r − entCoef·H; the log-std's gradient is added to gLogStd (K).
 * dlogπ/dμ = (a − μ)/σ², dlogπ/dlogσ = z² − 1, dH/dlogσ = 1.
 */
export function gaussianBackward(
  out: Float64Array,
  actions: Float64Array,
  logStd: Float64Array,
  dLogp: Float64Array,
  entCoef: number,
  B: number,
  gLogStd: Float64Array,
): Float64Array {
  const K = logStd.length;
  const dOut = new Float64Array(B * K);
  for (let r = 0; r < B; r++)
    for (let i = 0; i < K; i++) {
      const sd = Math.exp(logStd[i]);
      const z = (actions[r * K + i] - out[r * K + i]) / sd;
      dOut[r * K + i] = (dLogp[r] * z) / sd;
      gLogStd[i] += dLogp[r] * (z * z - 1);
    }
  for (let i = 0; i < K; i++) gLogStd[i] -= entCoef;
  return dOut;
}

/** Categorical head: action indices (B) under softmax(out) (B, K); `probs` (B, K) for backward. */
export function categoricalLogProb(
  out: Float64Array,
  actions: Float64Array,
  B: number,
  K: number,
): HeadLogProb & { probs: Float64Array } {
  const logp = new Float64Array(B);
  const probs = new Float64Array(B * K);
  let entropy = 0;
  for (let r = 0; r < B; r++) {
    const p = probs.subarray(r * K, (r + 1) * K);
    const lse = softmax(out.subarray(r * K, (r + 1) * K), p);
    logp[r] = out[r * K + actions[r]] - lse;
    for (let k = 0; k < K; k++) if (p[k] > 0) entropy -= p[k] * Math.log(p[k]);
  }
  return { logp, entropy: entropy / B, probs };
}

/** dOut (B, K) of Σ_r dLogp_r·log π_r − entCoef·H: dlogπ(a)/dz_k = 1[k = a] − p_k, dH/dz_k = −p_k (log p_k + H). */
export function categoricalBackward(
  probs: Float64Array,
  actions: Float64Array,
  dLogp: Float64Array,
  entCoef: number,
  B: number,
  K: number,
): Float64Array {
  const dOut = new Float64Array(B * K);
  for (let r = 0; r < B; r++) {
    const p = probs.subarray(r * K, (r + 1) * K);
    let H = 0;
    for (let k = 0; k < K; k++) if (p[k] > 0) H -= p[k] * Math.log(p[k]);
    for (let k = 0; k < K; k++) {
      const dlp = (k === actions[r] ? 1 : 0) - p[k];
      const dH = p[k] > 0 ? -p[k] * (Math.log(p[k]) + H) : 0;
      dOut[r * K + k] = dLogp[r] * dlp - (entCoef * dH) / B;
    }
  }
  return dOut;
}

/** Softmax of logits into p, returning log Σ exp. */
export function softmax(logits: ArrayLike<number>, p: Float64Array): number {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) m = Math.max(m, logits[i]);
  let s = 0;
  for (let i = 0; i < logits.length; i++) {
    p[i] = Math.exp(logits[i] - m);
    s += p[i];
  }
  for (let i = 0; i < logits.length; i++) p[i] /= s;
  return m + Math.log(s);
}

/** An index drawn from softmax(logits) by inverse CDF on one uniform. */
export function sampleCategorical(logits: ArrayLike<number>, rng: Rng): number {
  const p = new Float64Array(logits.length);
  softmax(logits, p);
  let u = rng.next();
  for (let i = 0; i < p.length; i++) {
    u -= p[i];
    if (u < 0) return i;
  }
  return p.length - 1;
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Samples a = μ + σ·ε (K) into `into` and returns log π(a); sd = exp(logStd), computed once per rollout. */
export function gaussianSample(
  mean: Float64Array,
  logStd: Float64Array,
  sd: Float64Array,
  rng: Rng,
  into: Float64Array,
): number {
  let lp = 0;
  for (let j = 0; j < logStd.length; j++) {
    const eps = rng.normal();
    into[j] = mean[j] + sd[j] * eps;
    lp += -0.5 * eps * eps - logStd[j] - LOG_SQRT_2PI;
  }
  return lp;
}

/** Samples an index from softmax(logits); returns [index, log π(index)]. */
export function categoricalSample(logits: Float64Array, rng: Rng): [number, number] {
  const lse = softmax(logits, new Float64Array(logits.length));
  const act = sampleCategorical(logits, rng);
  return [act, logits[act] - lse];
}

/**
 * The critic's loss 0.5·vfCoef·mean(e²) over values v (B), e = v − R, or with `clip` CleanRL's
 * clipped form max((v − R)², (v_old + clip(v − v_old, ±clip) − R)²); dV (B) is its gradient. The
 * returned loss leaves vfCoef out (CleanRL logs v_loss unweighted).
 */
export function valueLoss(
  v: Float64Array,
  oldV: Float64Array,
  returns: Float64Array,
  clip: number | undefined,
  vfCoef: number,
  B: number,
): { loss: number; dV: Float64Array } {
  let loss = 0;
  const dV = new Float64Array(B);
  for (let r = 0; r < B; r++) {
    const e1 = v[r] - returns[r];
    if (clip !== undefined) {
      const dv = v[r] - oldV[r];
      const inRange = Math.abs(dv) <= clip;
      const e2 = oldV[r] + Math.max(-clip, Math.min(clip, dv)) - returns[r];
      if (e1 * e1 >= e2 * e2) {
        loss += e1 * e1;
        dV[r] = e1;
      } else {
        loss += e2 * e2;
        dV[r] = inRange ? e2 : 0;
      }
    } else {
      loss += e1 * e1;
      dV[r] = e1;
    }
    dV[r] *= vfCoef / B; // d(0.5 vfCoef e²/B)/dv
  }
  return { loss: (0.5 * loss) / B, dV };
}
