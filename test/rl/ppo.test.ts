/**
 * PPO (issue 6): the loss gradients against central finite differences (Gaussian and categorical
 * heads, clipped and unclipped), the tfjs math path against the js one, the saved policy round
 * trip, determinism from the seed, and that PPO learns CartPole-v1 within a bounded number of env
 * steps on the default math path. GAE: gae.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../common/index.js';
import { ppoRecipe } from '../../experiments/recipes/ppo.js';
import { initBackend } from '../../native/index.js';
import { type MinibatchData, PPO_DEFAULTS, PpoTrainer, trainPpo } from '../../rl/ppo.js';
import { evaluatePolicy, PpoPolicy } from '../../rl/ppo-policy.js';

/** A random minibatch for a trainer, with old log-probs near the current ones so ratios vary. */
function randomMinibatch(tr: PpoTrainer, B: number, rng: Rng): MinibatchData {
  const D = tr.inDim;
  const A = tr.actDim;
  const mb: MinibatchData = {
    size: B,
    obs: Float64Array.from({ length: B * D }, () => rng.normal()),
    actions: Float64Array.from({ length: B * A }, () =>
      tr.discrete ? rng.int((tr.actionSpace as { n: number }).n) : rng.normal() * 0.5,
    ),
    logp: new Float64Array(B),
    adv: Float64Array.from({ length: B }, () => rng.normal()),
    returns: Float64Array.from({ length: B }, () => rng.normal()),
    values: Float64Array.from({ length: B }, () => rng.normal() * 0.3),
  };
  return mb;
}

/** The scalar loss PPO minimises (and fills actor/critic grads), with lr 0 so nothing moves. */
function lossAndGrads(tr: PpoTrainer, mb: MinibatchData): number {
  const [pg, v, ent] = tr.minibatch(mb, 0);
  return pg - tr.h.entCoef * ent + tr.h.vfCoef * v;
}

for (const [envId, clipVloss] of [
  ['Pendulum-v1', true],
  ['Pendulum-v1', false],
  ['CartPole-v1', true],
] as const) {
  test(`gradients match finite differences: ${envId} clipVloss=${clipVloss}`, () => {
    const rng = new Rng(Date.now() >>> 0);
    const tr = new PpoTrainer({
      envId,
      seed: rng.int(1000),
      totalSteps: 1,
      numEnvs: 1,
      numSteps: 8,
      numMinibatches: 1,
      hidden: [5, 4],
      math: 'js',
      entCoef: 0.03,
      clipVloss,
      clipCoef: 0.2,
    });
    tr.actor.extra.fill(-0.3);
    const B = 6;
    const mb = randomMinibatch(tr, B, rng);
    // Old log-probs: the current ones plus noise, so some ratios fall outside 1 ± ε.
    const probe = { ...mb, logp: new Float64Array(B) };
    const cur = tr.minibatch(probe, 0); // warm; we need per-row logp, recomputed below
    void cur;
    for (let r = 0; r < B; r++) mb.logp[r] = rowLogp(tr, mb, r) + rng.normal() * 0.3;
    lossAndGrads(tr, mb);
    const ga = Float64Array.from(tr.actor.grads);
    const gc = Float64Array.from(tr.critic.grads);
    const h = 1e-6;
    for (const [net, g] of [
      [tr.actor, ga],
      [tr.critic, gc],
    ] as const) {
      for (let k = 0; k < net.params.length; k++) {
        const p0 = net.params[k];
        net.params[k] = p0 + h;
        const lp = lossAndGrads(tr, mb);
        net.params[k] = p0 - h;
        const lm = lossAndGrads(tr, mb);
        net.params[k] = p0;
        const num = (lp - lm) / (2 * h);
        assert.ok(
          Math.abs(num - g[k]) <= 1e-5 + 1e-4 * Math.abs(num),
          `param ${k}: analytic ${g[k]} vs numeric ${num}`,
        );
      }
    }
  });
}

/** log π(a_r | s_r) under the trainer's current actor. */
function rowLogp(tr: PpoTrainer, mb: MinibatchData, r: number): number {
  const D = tr.inDim;
  const cache = tr.actor.forward(mb.obs.subarray(r * D, (r + 1) * D), 1);
  const out = cache[cache.length - 1];
  if (tr.discrete) {
    const m = Math.max(...out);
    const lse = m + Math.log(out.reduce((s, z) => s + Math.exp(z - m), 0));
    return out[mb.actions[r]] - lse;
  }
  let lp = 0;
  for (let i = 0; i < out.length; i++) {
    const ls = tr.actor.extra[i];
    const z = (mb.actions[r * out.length + i] - out[i]) / Math.exp(ls);
    lp += -0.5 * z * z - ls - 0.5 * Math.log(2 * Math.PI);
  }
  return lp;
}

/**
 * CleanRL ppo.py's CartPole settings (4 envs × 128 steps, 4 minibatches, 4 epochs, ent 0.01), on
 * the default math path (PPO_DEFAULTS.math, tfjs; issue 21: the learning test ran on 'js' only).
 */
const CARTPOLE = {
  envId: 'CartPole-v1',
  numEnvs: 4,
  numSteps: 128,
  lr: 2.5e-4,
  numMinibatches: 4,
  updateEpochs: 4,
  entCoef: 0.01,
  normObs: false,
  normReward: false,
  vectorization: 'sync',
} as const;

test('the tfjs math path: a minibatch step equals the js path (float32 products)', async () => {
  await initBackend({ notice: false });
  const rng = new Rng(Date.now() >>> 0);
  const seed = rng.int(1000);
  for (const envId of ['Pendulum-v1', 'CartPole-v1']) {
    const make = (math: 'js' | 'tfjs') =>
      new PpoTrainer({
        envId,
        seed,
        totalSteps: 1,
        numEnvs: 1,
        numSteps: 8,
        numMinibatches: 1,
        hidden: [16, 16],
        math,
      });
    const [js, tfjs] = [make('js'), make('tfjs')];
    assert.deepEqual(tfjs.actor.params, js.actor.params, 'same initial weights');
    const mb = randomMinibatch(js, 12, rng);
    const a = js.minibatch(mb, 1e-3);
    const b = tfjs.minibatch(mb, 1e-3);
    for (const [q, x] of a.entries())
      assert.ok(
        Math.abs(x - b[q]) <= 1e-5 * Math.max(1, Math.abs(x)),
        `${envId} stat ${q}: js ${x} vs tfjs ${b[q]}`,
      );
    for (const [net, ref] of [
      [tfjs.actor, js.actor],
      [tfjs.critic, js.critic],
    ] as const)
      for (let k = 0; k < ref.params.length; k++)
        assert.ok(
          Math.abs(net.params[k] - ref.params[k]) <= 1e-6,
          `${envId} param ${k}: tfjs ${net.params[k]} vs js ${ref.params[k]}`,
        );
  }
});

describe('PPO', () => {
  test('same seed → same policy; policy JSON round trip acts identically', async () => {
    const run = () => trainPpo({ ...CARTPOLE, seed: 7, totalSteps: 2048 });
    const [a, b] = [await run(), await run()];
    assert.deepEqual(a.policy.actor, b.policy.actor);
    assert.deepEqual(a.episodes, b.episodes);
    const p = PpoPolicy.fromJSONText(JSON.stringify(a.policy));
    const obs = [0.01, -0.02, 0.03, 0.04];
    assert.deepEqual(p.act(obs, 1, false), new PpoPolicy(b.policy).act(obs, 1, false));
    const pend = await trainPpo({
      envId: 'Pendulum-v1',
      seed: 3,
      totalSteps: 256,
      numEnvs: 2,
      numSteps: 64,
      numMinibatches: 2,
      vectorization: 'async',
    });
    const pp = PpoPolicy.fromJSONText(JSON.stringify(pend.policy));
    assert.equal(pp.json.obsNorm.mean.length, 3);
    const r1 = evaluatePolicy(pp, { episodes: 1, seed: 1, stochastic: true, maxEpisodeSteps: 50 });
    const r2 = evaluatePolicy(pp, { episodes: 1, seed: 1, stochastic: true, maxEpisodeSteps: 50 });
    assert.deepEqual(r1, r2);
  });

  // Stated bound: mean greedy return ≥ 400 over 10 episodes (max 500) after ≤ 100k env steps,
  // seed 1. Measured here: 415 at 100k with math 'js'; 471 with the default 'tfjs' (≈9 s).
  test('learns CartPole-v1 on the default math path (tfjs): greedy return ≥ 400 within 100k env steps (seed 1)', async () => {
    assert.equal(PPO_DEFAULTS.math, 'tfjs');
    const res = await trainPpo({ ...CARTPOLE, seed: 1, totalSteps: 100_000 });
    assert.equal(res.trainer.h.math, 'tfjs');
    const ev = evaluatePolicy(new PpoPolicy(res.policy), { episodes: 10, seed: 100, stochastic: false });
    assert.ok(ev.mean >= 400, `CartPole-v1 greedy return ${ev.mean.toFixed(1)} < 400 after 100k steps`);
  });

  test('exp run ppo-cartpole.yaml (a few updates): policy artifact, eval/ and train/ metrics', () => {
    const work = mkdtempSync(join(tmpdir(), 'rl-ppo-recipe-'));
    try {
      const root = fileURLToPath(new URL('../../../', import.meta.url));
      const out = join(work, 'cartpole.json');
      const r = spawnSync(
        process.execPath,
        [
          join(root, 'bin', 'exp.js'),
          'run',
          join(root, 'experiments', 'configs', 'ppo-cartpole.yaml'),
          '--set',
          'ppo.totalSteps=1024',
          '--set',
          'ppo.evalEvery=1',
          '--set',
          'ppo.evalEpisodes=2',
          '--set',
          `ppo.out=${out}`,
          '--set',
          `tracking.uri=${join(work, 'mlruns')}`,
        ],
        { cwd: work, encoding: 'utf8', env: { ...process.env, EXP_WORK_DIR: join(work, '.exp'), CI: '1' } },
      );
      assert.equal(r.status, 0, r.stderr);
      const policy = PpoPolicy.fromJSONText(readFileSync(out, 'utf8'));
      assert.equal(policy.json.envId, 'CartPole-v1');
      assert.equal(policy.json.training.envSteps, 1024);
      assert.ok(policy.json.evaluation?.deterministic);
      const [exp] = readdirSync(join(work, 'mlruns')).filter((d) => /^\d+$/.test(d) && d !== '0');
      const runDir = join(work, 'mlruns', exp);
      const [run] = readdirSync(runDir).filter((d) => existsSync(join(runDir, d, 'metrics')));
      for (const m of ['train/episode_return', 'train/policy_loss', 'eval/return_mean'])
        assert.ok(existsSync(join(runDir, run, 'metrics', m)), m);
      assert.ok(existsSync(join(runDir, run, 'artifacts', 'policy.json')));
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

test('recipe ppo: every trainer option in its schema defaults to PPO_DEFAULTS (one source of truth, issue 13)', () => {
  const fields = ppoRecipe.schema.fields;
  const shared = Object.keys(PPO_DEFAULTS).filter((k) => k in fields);
  // The recipe exposes all of PPO_DEFAULTS but normAdv and initLogStd.
  assert.deepEqual(
    Object.keys(PPO_DEFAULTS).filter((k) => !(k in fields)),
    ['normAdv', 'initLogStd'],
  );
  for (const k of shared)
    assert.deepEqual(fields[k].defaultValue, PPO_DEFAULTS[k as keyof typeof PPO_DEFAULTS], `ppo.${k}`);
});
