/**
 * rl/ppo-policy.ts and rl/nets/adam.ts (issue 13): evaluatePolicy, now stepped through
 * rl/evaluate.ts's evaluateEpisodes, against a plain episode loop (returns, lengths, seeds); an
 * aborted evaluation; and MlpAdam (two nets as one clipped vector) against plain Adam.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../common/index.js';
import { make } from '../../rl/envs/index.js';
import { Mlp, MlpAdam } from '../../rl/nets/index.js';
import { PpoTrainer } from '../../rl/ppo.js';
import { evaluatePolicy, PpoPolicy } from '../../rl/ppo-policy.js';

const seed = Date.now() >>> 0;
console.log(`ppo-policy seed ${seed}`);

/** An untrained policy of envId, from a trainer seeded `s` (orthogonal init, so actions vary). */
function randomPolicy(envId: string, s: number): PpoPolicy {
  const tr = new PpoTrainer({
    envId,
    seed: s,
    totalSteps: 1,
    numEnvs: 1,
    numSteps: 8,
    numMinibatches: 1,
    math: 'js',
  });
  tr.actor.extra.fill(-0.5);
  return new PpoPolicy(JSON.parse(JSON.stringify(tr.policyJSON())));
}

/** The reference: episode k reset with seed + k, actions from one Rng(seed), until done. */
function plainEvaluate(p: PpoPolicy, episodes: number, s: number, stochastic: boolean, maxSteps: number) {
  const env = make(p.json.envId, p.json.envKwargs, { maxEpisodeSteps: maxSteps }) as unknown as {
    reset(o: { seed: number }): [ArrayLike<number>, unknown];
    step(a: number | Float32Array): [ArrayLike<number>, number, boolean, boolean, unknown];
  };
  const rng = new Rng(s);
  const returns: number[] = [];
  const lengths: number[] = [];
  for (let k = 0; k < episodes; k++) {
    let [obs] = env.reset({ seed: s + k });
    let [ret, len] = [0, 0];
    for (;;) {
      const a = p.act(obs, 1, stochastic, rng);
      const [next, r, term, trunc] = env.step(p.discrete ? a[0] : Float32Array.from(a));
      ret += r;
      len++;
      obs = next;
      if (term || trunc) break;
    }
    returns.push(ret);
    lengths.push(len);
  }
  return { returns, lengths };
}

for (const [envId, stochastic, maxSteps] of [
  ['CartPole-v1', true, 60],
  ['Pendulum-v1', false, 25],
  ['Pendulum-v1', true, 25],
] as const) {
  test(`evaluatePolicy equals a plain episode loop: ${envId} stochastic=${stochastic} maxEpisodeSteps=${maxSteps}`, () => {
    const rng = new Rng(seed);
    const p = randomPolicy(envId, rng.int(1000));
    const s = rng.int(10_000);
    const ev = evaluatePolicy(p, { episodes: 4, seed: s, stochastic, maxEpisodeSteps: maxSteps });
    const ref = plainEvaluate(p, 4, s, stochastic, maxSteps);
    assert.deepEqual(ev.returns, ref.returns);
    assert.equal(ev.meanLength, ref.lengths.reduce((a, b) => a + b, 0) / 4);
    assert.equal(ev.episodes, 4);
    const mean = ref.returns.reduce((a, b) => a + b, 0) / 4;
    assert.ok(Math.abs(ev.mean - mean) <= 1e-12 * Math.max(1, Math.abs(mean)), `mean ${ev.mean} vs ${mean}`);
    assert.equal(ev.min, Math.min(...ref.returns));
    assert.equal(ev.max, Math.max(...ref.returns));
  });
}

test('evaluatePolicy: an already aborted evaluation runs no episode and reports NaN, never 0', () => {
  const p = randomPolicy('CartPole-v1', 3);
  const ac = new AbortController();
  ac.abort();
  const ev = evaluatePolicy(p, { episodes: 3, seed: 0, stochastic: false, signal: ac.signal });
  assert.equal(ev.episodes, 0);
  assert.ok(Number.isNaN(ev.mean) && Number.isNaN(ev.std), `mean ${ev.mean} std ${ev.std}`);
});

test('MlpAdam: two nets stepped as one vector, clipped by one global norm, equal plain Adam; raw grads kept', () => {
  const rng = new Rng(seed + 1);
  const nets = [new Mlp([3, 4, 2], 2), new Mlp([3, 5, 1])];
  for (const net of nets) {
    for (let k = 0; k < net.params.length; k++) net.params[k] = rng.normal();
  }
  const adam = new MlpAdam(nets);
  const n = nets[0].params.length + nets[1].params.length;
  const p = Float64Array.from([...nets[0].params, ...nets[1].params]);
  const [m, v] = [new Float64Array(n), new Float64Array(n)];
  const [lr, maxNorm, b1, b2, eps] = [1e-2, 0.5, 0.9, 0.999, 1e-5];
  for (let t = 1; t <= 3; t++) {
    for (const net of nets) for (let k = 0; k < net.grads.length; k++) net.grads[k] = rng.normal() * 0.3;
    const g = Float64Array.from([...nets[0].grads, ...nets[1].grads]);
    const raw = Float64Array.from(g);
    const norm = Math.sqrt(g.reduce((a, x) => a + x * x, 0));
    if (norm > maxNorm) for (let k = 0; k < n; k++) g[k] *= maxNorm / (norm + 1e-6);
    for (let k = 0; k < n; k++) {
      m[k] = b1 * m[k] + (1 - b1) * g[k];
      v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k];
      p[k] -= (lr * m[k]) / (1 - b1 ** t) / (Math.sqrt(v[k] / (1 - b2 ** t)) + eps);
    }
    adam.step(lr, maxNorm);
    const got = [...nets[0].params, ...nets[1].params];
    for (let k = 0; k < n; k++)
      assert.ok(Math.abs(got[k] - p[k]) <= 1e-12, `step ${t} param ${k}: ${got[k]} vs ${p[k]}`);
    assert.deepEqual([...nets[0].grads, ...nets[1].grads], [...raw], 'the nets keep their raw gradients');
  }
});
