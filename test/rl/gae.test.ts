/**
 * PPO's generalised advantage estimates (rl/ppo-rollout.ts `computeGae`, issue 21): a rollout worked by
 * hand (a truncation bootstrapped from V(final obs), a termination that is not, NEXT_STEP reset
 * rows that carry nothing, the bootstrap from V(last obs) at the rollout's end, rows t·E + i of two
 * envs), and fresh random rollouts against the definition written as an explicit sum
 * A_t = Σ_k (γλ)^k δ_{t+k} over the rest of each episode.
 *
 * Checked to fail on: no bootstrap at truncation (nextV·(1 − done) in place of (1 − terminated)),
 * and λ carried across an episode's end (neither the (1 − done) on the carry nor the reset at
 * reset rows; either one alone suffices, since every done row is followed by a reset row), each
 * introduced by hand in rl/ppo.ts (where computeGae lived then) and reverted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../common/index.js';
import { computeGae, type GaeRollout } from '../../rl/ppo-rollout.js';

const TOL = 1e-12;

function close(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let k = 0; k < want.length; k++)
    assert.ok(
      Math.abs(got[k] - want[k]) <= TOL * Math.max(1, Math.abs(want[k])),
      `${what}[${k}]: ${got[k]} vs ${want[k]}`,
    );
}

test('GAE by hand: truncation bootstraps V(final obs), termination does not, reset rows are empty (2 envs)', () => {
  const [gamma, lambda] = [0.9, 0.8];
  // env 0, steps 0..5:  r      V     term done valid
  //   t0                1      0.5   0    0    1
  //   t1                2      0.4   0    1    1    truncated: bootstrap V(final obs) = V[t2]
  //   t2 (reset step)   0      0.3   0    0    0    V of episode 1's final observation
  //   t3                0.5    0.2   1    1    1    terminated: no bootstrap
  //   t4 (reset step)   0      9     0    0    0    V of a terminal observation: never used
  //   t5                1.5    0.6   0    0    1    rollout end: bootstrap lastValues[0] = 0.7
  // env 1: no episode ends; lastValues[1] = −1.
  const env0 = {
    r: [1, 2, 0, 0.5, 0, 1.5],
    v: [0.5, 0.4, 0.3, 0.2, 9, 0.6],
    term: [0, 0, 0, 1, 0, 0],
    done: [0, 1, 0, 1, 0, 0],
    valid: [1, 1, 0, 1, 0, 1],
  };
  const env1 = {
    r: [0, 1, 0, 1, 0, 1],
    v: [0, 0, 0, 0, 0, 0],
    term: [0, 0, 0, 0, 0, 0],
    done: [0, 0, 0, 0, 0, 0],
    valid: [1, 1, 1, 1, 1, 1],
  };
  const T = 6;
  const E = 2;
  const rows = <K extends keyof typeof env0>(k: K) =>
    Array.from({ length: T * E }, (_, row) => (row % E === 0 ? env0 : env1)[k][Math.floor(row / E)]);
  const g: GaeRollout = {
    numEnvs: E,
    numSteps: T,
    gamma,
    gaeLambda: lambda,
    rewards: Float64Array.from(rows('r')),
    values: Float64Array.from(rows('v')),
    lastValues: [0.7, -1],
    terminated: Uint8Array.from(rows('term')),
    done: Uint8Array.from(rows('done')),
    valid: Uint8Array.from(rows('valid')),
  };
  const adv = new Float64Array(T * E).fill(Number.NaN);
  computeGae(g, adv);
  // env 0 by hand:
  //   δ5 = 1.5 + 0.9·0.7 − 0.6 = 1.53                     A5 = 1.53
  //   δ3 = 0.5 − 0.2 = 0.3 (terminated)                    A3 = 0.3
  //   δ1 = 2 + 0.9·0.3 − 0.4 = 1.87 (truncated, no carry)  A1 = 1.87
  //   δ0 = 1 + 0.9·0.4 − 0.5 = 0.86                        A0 = 0.86 + 0.72·1.87 = 2.2064
  close(
    [0, 1, 2, 3, 4, 5].map((t) => adv[t * E]),
    [2.2064, 1.87, 0, 0.3, 0, 1.53],
    'env 0',
  );
  // env 1 by hand (V = 0 until the end): δ = r, δ5 = 1 + 0.9·(−1) = 0.1; A_t = δ_t + 0.72·A_{t+1}
  const a1 = new Array(T).fill(0);
  const d1 = [0, 1, 0, 1, 0, 0.1];
  for (let t = T - 1; t >= 0; t--) a1[t] = d1[t] + 0.72 * (t < T - 1 ? a1[t + 1] : 0);
  close(
    [0, 1, 2, 3, 4, 5].map((t) => adv[t * E + 1]),
    a1,
    'env 1',
  );
});

/** The definition: per episode segment, A_t = Σ_{k ≥ 0} (γλ)^k δ_{t+k} up to the segment's end. */
function referenceGae(g: GaeRollout): Float64Array {
  const { numEnvs: E, numSteps: T, gamma, gaeLambda: lambda } = g;
  const adv = new Float64Array(T * E);
  for (let i = 0; i < E; i++) {
    const row = (t: number) => t * E + i;
    // V(s_{t+1}): the next row's observation (the final one after a done step), or lastValues.
    const nextValue = (t: number) => (t === T - 1 ? g.lastValues[i] : g.values[row(t + 1)]);
    const delta = (t: number) =>
      g.rewards[row(t)] + (g.terminated[row(t)] ? 0 : gamma * nextValue(t)) - g.values[row(t)];
    for (let t = 0; t < T; t++) {
      if (!g.valid[row(t)]) continue;
      let sum = 0;
      for (let u = t; u < T; u++) {
        sum += (gamma * lambda) ** (u - t) * delta(u);
        if (g.done[row(u)]) break;
      }
      adv[row(t)] = sum;
    }
  }
  return adv;
}

test('GAE on fresh random rollouts equals the explicit sum (3 envs, 40 steps, episodes ending both ways)', () => {
  const seed = Date.now() >>> 0;
  const rng = new Rng(seed);
  for (let trial = 0; trial < 20; trial++) {
    const [E, T] = [3, 40];
    const g: GaeRollout = {
      numEnvs: E,
      numSteps: T,
      gamma: 0.5 + 0.5 * rng.next(),
      gaeLambda: rng.next(),
      rewards: new Float64Array(T * E),
      values: Float64Array.from({ length: T * E }, () => rng.normal()),
      lastValues: Float64Array.from({ length: E }, () => rng.normal()),
      terminated: new Uint8Array(T * E),
      done: new Uint8Array(T * E),
      valid: new Uint8Array(T * E),
    };
    let ends = 0;
    for (let i = 0; i < E; i++) {
      let resetNext = false;
      for (let t = 0; t < T; t++) {
        const row = t * E + i;
        if (resetNext) {
          resetNext = false; // NEXT_STEP reset row: no action, reward 0
          continue;
        }
        g.valid[row] = 1;
        g.rewards[row] = rng.normal();
        if (rng.next() < 0.2) {
          g.done[row] = 1;
          g.terminated[row] = rng.next() < 0.5 ? 1 : 0;
          resetNext = true;
          ends++;
        }
      }
    }
    assert.ok(ends > 0);
    const adv = new Float64Array(T * E);
    computeGae(g, adv);
    close(adv, referenceGae(g), `trial ${trial} (seed ${seed})`);
  }
});
