/**
 * AdamW (Loshchilov & Hutter: Adam with decoupled weight decay), global-norm gradient clipping
 * and learning-rate schedules, for the models trained on the ring (RL policies, the LM). Its
 * state (moments and step count) round-trips through plain arrays for checkpoints and resume.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeAdamW } from '../native/optim.js';

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Which variables decay (default: matrices only — not gains, biases or embeddings' norms). */
  decays?: (v: tf.Variable) => boolean;
  /**
   * `clipAndApply` in one native call where the addon runs on wasm (native/optim.ts; default
   * true); false keeps the tfjs kernels (the reference the fused step is tested against).
   */
  native?: boolean;
}

export interface OptimizerState {
  step: number;
  /** Per variable, in the order given: first and second moments. */
  m: Float32Array[];
  v: Float32Array[];
}

/**
 * A zero variable shaped like `x`. NOTE: `tf.variable(t)` shares t's buffer and counts its bytes
 * a second time; t is disposed here, else every moment counted twice in tf.memory() and a
 * peak-bytes probe, and its buffer outlived `dispose()`.
 */
function zerosVariable(x: tf.Variable): tf.Variable {
  const zeros = tf.zerosLike(x);
  const v = tf.variable(zeros, false);
  zeros.dispose();
  return v;
}

export class AdamW {
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  /** The options with their defaults filled in, read by the tfjs and the native step alike. */
  private readonly h: Required<Omit<AdamWOptions, 'lr' | 'native'>>;
  step = 0;

  constructor(
    readonly vars: tf.Variable[],
    private readonly o: AdamWOptions,
  ) {
    this.m = vars.map(zerosVariable);
    this.v = vars.map(zerosVariable);
    this.h = {
      beta1: o.beta1 ?? 0.9,
      beta2: o.beta2 ?? 0.999,
      eps: o.eps ?? 1e-8,
      weightDecay: o.weightDecay ?? 0,
      decays: o.decays ?? ((x: tf.Variable) => x.rank >= 2),
    };
  }

  /** Applies gradients (one per variable, same order) with learning rate `lr` (default: options). */
  apply(grads: tf.Tensor[], lr = this.o.lr): void {
    const { beta1: b1, beta2: b2, eps, weightDecay: wd, decays } = this.h;
    this.step++;
    const bc1 = 1 - b1 ** this.step;
    const bc2 = 1 - b2 ** this.step;
    // NOTE: one tidy per variable: the temporaries of one update at a time, not of them all
    this.vars.forEach((x, i) => {
      tf.tidy(() => {
        const g = grads[i];
        this.m[i].assign(tf.add(tf.mul(this.m[i], b1), tf.mul(g, 1 - b1)));
        this.v[i].assign(tf.add(tf.mul(this.v[i], b2), tf.mul(tf.square(g), 1 - b2)));
        const update = tf.div(tf.div(this.m[i], bc1), tf.add(tf.sqrt(tf.div(this.v[i], bc2)), eps));
        // decoupled weight decay: shrink the weights, not the gradient
        const decayed = wd > 0 && decays(x) ? tf.mul(x, 1 - lr * wd) : x;
        x.assign(tf.sub(decayed, tf.mul(update, lr)));
      });
    });
  }

  /**
   * Clips `grads` (one per variable, same order) to global norm `maxNorm` (0: no clip) and
   * applies them: `clipByGlobalNorm` then `apply`, or the same in one native call over every
   * tensor (issue 14: the tfjs form runs about a dozen kernels per tensor). Consumes `grads`
   * (disposes them). Returns the global norm before clipping.
   */
  clipAndApply(grads: tf.Tensor[], maxNorm: number, lr = this.o.lr): number {
    if (this.o.native ?? true) {
      const { beta1, beta2, eps, weightDecay: wd, decays } = this.h;
      const norm = nativeAdamW({
        params: this.vars,
        grads,
        m: this.m,
        v: this.v,
        decay: this.vars.map((x) => wd > 0 && decays(x)),
        lr,
        beta1,
        beta2,
        eps,
        weightDecay: wd,
        step: this.step + 1,
        // NaN or ≤ 0: no clip, as clipByGlobalNorm
        maxNorm: Number.isFinite(maxNorm) && maxNorm > 0 ? maxNorm : 0,
      });
      if (norm !== undefined) {
        this.step++;
        tf.dispose(grads);
        return norm;
      }
    }
    const { grads: clipped, norm } = clipByGlobalNorm(grads, maxNorm);
    this.apply(clipped, lr);
    tf.dispose(clipped);
    return norm;
  }

  state(): OptimizerState {
    return {
      step: this.step,
      m: this.m.map((t) => t.dataSync() as Float32Array),
      v: this.v.map((t) => t.dataSync() as Float32Array),
    };
  }

  load(s: OptimizerState): void {
    this.step = s.step;
    this.m.forEach((t, i) => {
      t.assign(tf.tensor(s.m[i], t.shape));
    });
    this.v.forEach((t, i) => {
      t.assign(tf.tensor(s.v[i], t.shape));
    });
  }

  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
  }
}

/** Scales gradients so their global L2 norm is at most `maxNorm`; returns the norm before. */
export function clipByGlobalNorm(grads: tf.Tensor[], maxNorm: number): { grads: tf.Tensor[]; norm: number } {
  const sumOfSquares = tf.tidy(() => tf.addN(grads.map((g) => tf.sum(tf.square(g)))));
  const norm = Math.sqrt(sumOfSquares.dataSync()[0]);
  // the scalar outlives the tidy: disposed here, else one tensor leaked per step
  sumOfSquares.dispose();
  if (!(maxNorm > 0) || norm <= maxNorm) return { grads, norm };
  const scale = maxNorm / (norm + 1e-6);
  const clipped = grads.map((g) => tf.mul(g, scale));
  tf.dispose(grads);
  return { grads: clipped, norm };
}

/** Linear warmup to `lr`, then cosine decay to `minLr` at `total` steps (or constant if `total` is 0). */
export function warmupCosine(
  step: number,
  o: { lr: number; warmup: number; total: number; minLr?: number },
): number {
  if (o.warmup > 0 && step < o.warmup) return (o.lr * (step + 1)) / o.warmup;
  if (o.total <= 0 || step >= o.total) return o.total <= 0 ? o.lr : (o.minLr ?? 0);
  const progress = (step - o.warmup) / Math.max(1, o.total - o.warmup);
  const min = o.minLr ?? 0;
  return min + 0.5 * (o.lr - min) * (1 + Math.cos(Math.PI * progress));
}
