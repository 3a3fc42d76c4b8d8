/**
 * Gradients of a replica, summed where they come from: over micro-batches on this device, then
 * over the ring's devices (sequence parallelism: every device holds the same parameters and a
 * shard of the tokens, so its gradients are partial sums). One flat float32 buffer holds every
 * variable's gradient followed by a few extra scalars (the loss shares), so one all-reduce moves
 * them all. Written once here; the RL policies, the LM finetune and the context-scaling model use it.
 */
import * as tf from '@tensorflow/tfjs';
import { allReduceMessageFloats, allReduceSum, type RingTransport } from '../ring/index.js';
import type { AdamW } from './optim.js';

export class GradientSum {
  /** Every gradient in variable order, then the extras: (Σ sizes + extras,). */
  readonly flat: Float32Array;
  private readonly offsets: number[];
  private readonly total: number;

  constructor(
    readonly vars: tf.Variable[],
    private readonly extraCount = 1,
  ) {
    this.offsets = [];
    let off = 0;
    for (const v of vars) {
      this.offsets.push(off);
      off += v.size;
    }
    this.total = off;
    this.flat = new Float32Array(off + extraCount);
  }

  /** The extra scalars' running sums (a view into `flat`). */
  get extras(): Float32Array {
    return this.flat.subarray(this.total);
  }

  /** Parameters counted (without the extras). */
  get parameters(): number {
    return this.total;
  }

  /**
   * Adds one micro-batch's gradients (by variable name, as `tf.variableGrads` returns them, or a
   * list in variable order) and extras. The caller keeps ownership of the tensors.
   */
  add(grads: tf.NamedTensorMap | tf.Tensor[], extras: number[] = []): void {
    if (extras.length > this.extraCount)
      throw new Error(`GradientSum.add: ${extras.length} extras given, room for ${this.extraCount}`);
    this.vars.forEach((v, i) => {
      const g = Array.isArray(grads) ? grads[i] : grads[v.name];
      if (!g) throw new Error(`GradientSum.add: no gradient for variable '${v.name}' (index ${i})`);
      const data = g.dataSync() as Float32Array;
      const off = this.offsets[i];
      for (let j = 0; j < data.length; j++) this.flat[off + j] += data[j];
    });
    extras.forEach((x, i) => {
      this.flat[this.total + i] += x;
    });
  }

  /** Sums over every device of the ring (in place; a no-op on one device). */
  allReduce(transport: RingTransport | undefined): void {
    if (transport && transport.worldSize > 1) allReduceSum(transport, this.flat);
  }

  /** Global L2 norm of the summed gradients, times `scale`. */
  norm(scale = 1): number {
    let sq = 0;
    for (let i = 0; i < this.total; i++) sq += this.flat[i] * this.flat[i];
    return Math.sqrt(sq) * scale;
  }

  /** Per-variable gradients × `scale`, in variable order (the caller disposes them). */
  tensors(scale = 1): tf.Tensor[] {
    return this.vars.map((v, i) => {
      const off = this.offsets[i];
      const g = new Float32Array(v.size);
      for (let j = 0; j < v.size; j++) g[j] = this.flat[off + j] * scale;
      return tf.tensor(g, v.shape);
    });
  }

  /** Starts a new sum (the buffer is reused between steps). */
  reset(): void {
    this.flat.fill(0);
  }

  /** The largest message the all-reduce sends: what the ring's channels must hold. */
  static messageFloats(parameters: number, extras: number, devices: number): number {
    return allReduceMessageFloats(parameters + extras, devices);
  }
}

export interface OptimizerStepOptions {
  lr: number;
  /** Global-norm clip of the mean gradient; 0 or less: no clipping. */
  clipNorm: number;
  /** Micro-batches summed (the gradient is their mean); default 1. */
  accumulate?: number;
  /** Added to the norm in the clip's scale clip/(‖g‖ + ε) (the RL policies' recipe: 1e-6); default 0. */
  clipEpsilon?: number;
}

/**
 * The mean gradient over `accumulate` micro-batches, clipped by global norm (scale
 * clip/(‖g‖ + ε) when over), applied by AdamW. Returns the norm before clipping.
 */
export function stepOptimizer(
  sum: GradientSum,
  optimizer: AdamW,
  o: OptimizerStepOptions,
): { gradNorm: number } {
  const mean = 1 / (o.accumulate ?? 1);
  const gradNorm = sum.norm(mean);
  const clip = o.clipNorm > 0 && gradNorm > o.clipNorm ? o.clipNorm / (gradNorm + (o.clipEpsilon ?? 0)) : 1;
  const grads = sum.tensors(mean * clip);
  optimizer.apply(grads, o.lr);
  tf.dispose(grads);
  return { gradNorm };
}
