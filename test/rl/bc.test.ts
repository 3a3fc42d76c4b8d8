/**
 * Behaviour cloning's pieces (rl/policies/bc.ts, issue 21: no unit tests): the policy's forward
 * pass and loss against a plain float64 MLP (ReLU hidden layers, tanh output, mean squared
 * error) on fresh random inputs, `act` equal to the forward pass, weights round trip; and
 * `topEpisodes` (BC-x%) against hand-worked cases, ties broken by episode id.
 *
 * Checked to fail on: the output through ReLU instead of tanh, and topEpisodes keeping the lowest
 * returns (each by hand in rl/policies/bc.ts, then reverted).
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { initBackend } from '../../native/index.js';
import { BcPolicy, topEpisodes } from '../../rl/policies/bc.js';

before(async () => {
  await initBackend({ backend: 'wasm', notice: false });
});

/** The plain reference: x (S) through layers [w (in, out), b (out)], ReLU between, tanh last. */
function mlp(x: ArrayLike<number>, ws: Float32Array[], sizes: number[]): number[] {
  let h = Array.from(x);
  for (let l = 0; l < sizes.length - 1; l++) {
    const [nIn, nOut] = [sizes[l], sizes[l + 1]];
    const [w, b] = [ws[2 * l], ws[2 * l + 1]];
    const y = Array.from({ length: nOut }, (_, j) => {
      let s = b[j];
      for (let i = 0; i < nIn; i++) s += h[i] * w[i * nOut + j];
      return s;
    });
    h = l < sizes.length - 2 ? y.map((v) => Math.max(0, v)) : y.map(Math.tanh);
  }
  return h;
}

test('BcPolicy: forward, act and loss equal a plain float64 MLP (ReLU, tanh out, MSE)', () => {
  const seed = Date.now() >>> 0;
  const rng = new Rng(seed);
  const [S, A, B] = [5, 3, 7];
  const sizes = [S, 8, 6, A];
  const policy = new BcPolicy(S, A, [8, 6], rng);
  try {
    // Non-zero biases, so their place in the sum is checked too.
    const ws = policy.weights().map((w, k) => (k % 2 === 1 ? rng.normalArray(w.length, 0.3) : w));
    policy.setWeights(ws);
    assert.deepEqual(
      policy.weights().map((w) => Array.from(w)),
      ws.map((w) => Array.from(w)),
      'weights round trip',
    );
    const states = rng.normalArray(B * S);
    const actions = Float32Array.from({ length: B * A }, () => Math.tanh(rng.normal()));
    const ref = Array.from({ length: B }, (_, r) => mlp(states.subarray(r * S, (r + 1) * S), ws, sizes));
    const [out, loss] = tf.tidy(() => {
      const s = tf.tensor2d(states, [B, S]);
      return [
        policy.forward(s).dataSync() as Float32Array,
        policy.loss(s, tf.tensor2d(actions, [B, A])).dataSync()[0],
      ];
    });
    let mse = 0;
    for (let r = 0; r < B; r++)
      for (let j = 0; j < A; j++) {
        assert.ok(
          Math.abs(out[r * A + j] - ref[r][j]) < 1e-5,
          `seed ${seed}: row ${r} action ${j}: ${out[r * A + j]} vs ${ref[r][j]}`,
        );
        mse += (ref[r][j] - actions[r * A + j]) ** 2;
      }
    mse /= B * A;
    assert.ok(Math.abs(loss - mse) < 1e-5 * Math.max(1, mse), `loss ${loss} vs ${mse}`);
    const one = policy.act(states.subarray(0, S));
    assert.deepEqual(Array.from(one), Array.from(out.subarray(0, A)));
  } finally {
    policy.dispose();
  }
});

test('topEpisodes: the top x% by return (at least one), ids ascending, ties by lower id', () => {
  const returns = Float64Array.of(3, 1, 5, 2, 4);
  assert.deepEqual(topEpisodes(returns, 40), [2, 4]); // returns 5 and 4
  assert.deepEqual(topEpisodes(returns, 100), [0, 1, 2, 3, 4]);
  assert.deepEqual(topEpisodes(returns, 10), [2]); // round(0.5) = 1
  assert.deepEqual(topEpisodes(returns, 1), [2]); // at least one
  // Ties: equal returns 7 at ids 1 and 3; the top one keeps the lower id.
  assert.deepEqual(topEpisodes(Float64Array.of(0, 7, 2, 7), 25), [1]);
  assert.deepEqual(topEpisodes(Float64Array.of(0, 7, 2, 7), 50), [1, 3]);
});
