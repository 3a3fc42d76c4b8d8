/**
 * Behaviour cloning: an MLP from (normalised) state to action through tanh, regressed on the
 * dataset's actions; "BC-10%" trains on the top 10% of trajectories by return only.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../common/index.js';
import { linear } from '../../ring/index.js';

export class BcPolicy {
  private readonly layers: { w: tf.Variable; b: tf.Variable }[];

  constructor(obsDim: number, actDim: number, hidden: number[], rng: Rng) {
    const sizes = [obsDim, ...hidden, actDim];
    this.layers = sizes.slice(1).map((out, i) => ({
      w: tf.variable(tf.tensor2d(rng.normalArray(sizes[i] * out, Math.sqrt(2 / sizes[i])), [sizes[i], out])),
      b: tf.variable(tf.zeros([out])),
    }));
  }

  variables(): tf.Variable[] {
    return this.layers.flatMap((l) => [l.w, l.b]);
  }

  /** states (B, S) → actions (B, A) in (−1, 1). */
  forward(states: tf.Tensor): tf.Tensor {
    let x = states;
    this.layers.forEach((l, i) => {
      x = tf.add(linear(x, l.w as unknown as tf.Tensor2D), l.b);
      x = i < this.layers.length - 1 ? tf.relu(x) : tf.tanh(x);
    });
    return x;
  }

  loss(states: tf.Tensor, actions: tf.Tensor): tf.Scalar {
    return tf.mean(tf.square(tf.sub(this.forward(states), actions))) as tf.Scalar;
  }

  act(obs: Float32Array): Float32Array {
    const y = tf.tidy(() => this.forward(tf.tensor2d(obs, [1, obs.length])));
    const a = (y.dataSync() as Float32Array).slice();
    y.dispose();
    return a;
  }

  weights(): Float32Array[] {
    return this.variables().map((v) => v.dataSync() as Float32Array);
  }

  setWeights(ws: Float32Array[]): void {
    this.variables().forEach((v, i) => {
      v.assign(tf.tensor(ws[i], v.shape));
    });
  }

  dispose(): void {
    tf.dispose(this.variables());
  }
}

/** Episode ids of the top `percent`% of episodes by return (at least one). */
export function topEpisodes(returns: Float64Array, percent: number): number[] {
  const order = Array.from(returns.keys()).sort((a, b) => returns[b] - returns[a] || a - b);
  const keep = Math.max(1, Math.round((order.length * percent) / 100));
  return order.slice(0, keep).sort((a, b) => a - b);
}
