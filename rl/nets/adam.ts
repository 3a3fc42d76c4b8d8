/**
 * Adam and global-norm clipping over one flat float64 buffer, for the hand-differentiated nets
 * here (PPO's actor and critic share one buffer, so one loss has one clip norm, as in CleanRL).
 *
 * NOTE: not train/'s AdamW: that one keeps tfjs float32 variables and moments, and these nets are
 * float64 buffers stepped in plain loops; routing them through float32 would change every
 * trained weight (same seed → same metrics, issue 13), so this small float64 copy stays.
 */
import type { Mlp } from './mlp.js';

/** Adam (PyTorch's: eps added to √v̂, bias-corrected moments) over one flat buffer of n values. */
export class FlatAdam {
  readonly m: Float64Array;
  readonly v: Float64Array;
  t = 0;
  constructor(
    readonly n: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly eps = 1e-5,
  ) {
    this.m = new Float64Array(n);
    this.v = new Float64Array(n);
  }

  /** One step on parameters p (n) with gradients g (n) at learning rate lr. */
  step(p: Float64Array, g: Float64Array, lr: number): void {
    this.t++;
    const bc1 = 1 - this.beta1 ** this.t;
    const bc2 = 1 - this.beta2 ** this.t;
    for (let k = 0; k < this.n; k++) {
      this.m[k] = this.beta1 * this.m[k] + (1 - this.beta1) * g[k];
      this.v[k] = this.beta2 * this.v[k] + (1 - this.beta2) * g[k] * g[k];
      p[k] -= (lr * (this.m[k] / bc1)) / (Math.sqrt(this.v[k] / bc2) + this.eps);
    }
  }
}

/** Scales g in place so its L2 norm is at most maxNorm (torch's clip_grad_norm_); returns the norm before. */
export function clipFlatGradNorm(g: Float64Array, maxNorm: number): number {
  let norm = 0;
  for (const x of g) norm += x * x;
  norm = Math.sqrt(norm);
  if (norm > maxNorm) {
    const s = maxNorm / (norm + 1e-6);
    for (let k = 0; k < g.length; k++) g[k] *= s;
  }
  return norm;
}

/**
 * Adam over several MLPs' parameters as one vector, clipped by one global norm (PPO's actor and
 * critic: one loss, one clip, as CleanRL). Clipping works on a copy, so the nets' own gradient
 * buffers keep the raw gradients (the gradient tests read them).
 */
export class MlpAdam {
  private readonly adam: FlatAdam;
  private readonly params: Float64Array;
  private readonly grads: Float64Array;

  constructor(readonly nets: Mlp[]) {
    const n = nets.reduce((s, net) => s + net.params.length, 0);
    this.params = new Float64Array(n);
    this.grads = new Float64Array(n);
    this.adam = new FlatAdam(n);
  }

  /** One step at learning rate lr on the nets' accumulated gradients, clipped to maxGradNorm. */
  step(lr: number, maxGradNorm: number): void {
    let o = 0;
    for (const net of this.nets) {
      this.grads.set(net.grads, o);
      this.params.set(net.params, o);
      o += net.params.length;
    }
    clipFlatGradNorm(this.grads, maxGradNorm);
    this.adam.step(this.params, this.grads, lr);
    o = 0;
    for (const net of this.nets) {
      net.params.set(this.params.subarray(o, o + net.params.length));
      o += net.params.length;
    }
  }
}
