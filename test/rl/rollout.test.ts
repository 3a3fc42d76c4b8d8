/**
 * Rollout recording (issue 18): the recorder keeps the first, best and worst episodes of an
 * evaluation (checked against returns computed by a plain loop), the recorded body poses are the
 * physics' own for the recorded qpos (each state replayed through a fresh model), the scene's
 * geoms are the MJCF file's, and the Arrow file reads back what was written.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Rng } from '../../common/index.js';
import { type MujocoEnv, make } from '../../rl/envs/index.js';
import { evaluateEpisodes, rolloutEnv } from '../../rl/evaluate.js';
import { readRollouts, RolloutRecorder, type Rollouts, writeRollouts } from '../../rl/rollout/index.js';

const dir = mkdtempSync(join(tmpdir(), 'rl-rollout-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type AnyEnv = ReturnType<typeof make<ArrayLike<number>, number | Float32Array>>;

/** Seeded uniform random actions in the action space (discrete: 0/1). */
function randomAction(env: AnyEnv, rng: Rng): number | Float32Array {
  const space = env.actionSpace as unknown as { n?: number; low?: Float32Array; high?: Float32Array };
  if (space.n !== undefined) return rng.int(space.n);
  const low = space.low!;
  const high = space.high!;
  return Float32Array.from(low, (lo, i) => lo + (high[i] - lo) * rng.next());
}

/** Runs `episodes` random episodes (reset seed + e), recording them; returns the returns too. */
function recordRandom(envId: string, episodes: number, seed: number, maxSteps: number) {
  const env = make<ArrayLike<number>, number | Float32Array>(envId, {}, { maxEpisodeSteps: maxSteps });
  const rec = new RolloutRecorder();
  const rng = new Rng(seed);
  const returns: number[] = [];
  for (let e = 0; e < episodes; e++) {
    env.reset({ seed: seed + e });
    rec.reset(env, seed + e);
    let total = 0;
    for (;;) {
      const [, r, term, trunc] = env.step(randomAction(env, rng));
      rec.step(env, r, term || trunc);
      total += r;
      if (term || trunc) break;
    }
    returns.push(total);
  }
  env.close();
  return { rollouts: rec.result(), returns };
}

describe('RolloutRecorder', () => {
  const seed = Date.now() % 100000;
  test(`keeps first, best and worst of CartPole-v1 random episodes (seed ${seed})`, () => {
    const { rollouts, returns } = recordRandom('CartPole-v1', 8, seed, 200);
    const best = returns.indexOf(Math.max(...returns));
    const worst = returns.indexOf(Math.min(...returns));
    const expected = new Map<number, string[]>();
    for (const [label, i] of [
      ['first', 0],
      ['best', best],
      ['worst', worst],
    ] as const)
      expected.set(i, [...(expected.get(i) ?? []), label]);
    assert.deepEqual(
      rollouts.episodes.map((e) => [e.index, e.labels]),
      [...expected.entries()].sort((a, b) => a[0] - b[0]),
    );
    for (const e of rollouts.episodes) {
      assert.equal(e.return, returns[e.index]);
      assert.equal(e.states.length, e.rewards.length + 1, 'a state after the reset and after each step');
      assert.equal(e.seed, seed + e.index);
    }
    assert.equal(rollouts.scene.kind, 'cartpole');
  });

  test('records through rolloutEnv: the same returns evaluateEpisodes reports', () => {
    const recorder = new RolloutRecorder(['first', 'best', 'worst']);
    const env = rolloutEnv({ envId: 'Pendulum-v1', maxEpisodeSteps: 15, recorder });
    const rng = new Rng(seed);
    const returns = evaluateEpisodes(env, 4, seed, () => () => Float32Array.of(4 * rng.next() - 2));
    env.close();
    const r = recorder.result();
    for (const e of r.episodes) {
      assert.equal(e.return, returns[e.index]);
      assert.equal(e.rewards.length, 15);
    }
    assert.equal(r.episodes[0].index, 0);
    assert.equal(r.envId, 'Pendulum-v1');
  });

  test('refuses a step before any reset and an unknown label', () => {
    assert.throws(() => new RolloutRecorder(['best', 'median' as 'best']), /median.*first, best, worst/);
    const env = make('CartPole-v1', {});
    assert.throws(() => new RolloutRecorder().step(env, 1, false), /no episode started/);
  });
});

describe('recorded MuJoCo states', () => {
  for (const envId of ['Ant-v5', 'HalfCheetah-v5', 'Hopper-v5', 'Walker2d-v5']) {
    const seed = Date.now() % 100000;
    test(`${envId}: body poses are the physics' for the recorded qpos; scene geoms are the MJCF's (seed ${seed})`, () => {
      const { rollouts } = recordRandom(envId, 2, seed, 25);
      const scene = rollouts.scene;
      assert.equal(scene.kind, 'mujoco');
      if (scene.kind !== 'mujoco') return;
      // independent: a fresh model, each recorded qpos set with zero velocity, forward kinematics
      const fresh = make(envId, {}).unwrapped as MujocoEnv;
      const data = fresh.data as unknown as { xpos: Float64Array; xquat: Float64Array };
      let worst = 0;
      for (const ep of rollouts.episodes)
        for (const s of ep.states) {
          fresh.setState(s.qpos, new Float64Array(fresh.model.nv));
          for (let i = 0; i < data.xpos.length; i++)
            worst = Math.max(worst, Math.abs(data.xpos[i] - s.xpos![i]));
          for (let i = 0; i < data.xquat.length; i++)
            worst = Math.max(worst, Math.abs(data.xquat[i] - s.xquat![i]));
        }
      assert.ok(worst < 1e-12, `recorded poses differ from forward kinematics by ${worst}`);
      // the geoms, in order, are the <geom> elements of the model file (types as written there)
      const file = {
        'Ant-v5': 'ant.xml',
        'HalfCheetah-v5': 'half_cheetah.xml',
        'Hopper-v5': 'hopper.xml',
        'Walker2d-v5': 'walker2d_v5.xml',
      }[envId]!;
      const xml = readFileSync(new URL(`../../../rl/envs/assets/${file}`, import.meta.url), 'utf8')
        .replace(/<!--[\s\S]*?-->/g, '')
        .replace(/<default>[\s\S]*?<\/default>/g, '');
      const written = [...xml.matchAll(/<geom\b[^>]*>/g)].map(
        (m) => /type="(\w+)"/.exec(m[0])?.[1] ?? 'sphere',
      );
      assert.deepEqual(
        scene.geoms.map((g) => g.type),
        written,
      );
      assert.equal(scene.trackBody, 1, 'the root body is followed');
      fresh.close();
    });
  }
});

describe('rollout Arrow file', () => {
  const seed = Date.now() % 100000;
  test(`Hopper-v5 and CartPole-v1 read back what was written (seed ${seed})`, () => {
    for (const envId of ['Hopper-v5', 'CartPole-v1']) {
      const { rollouts } = recordRandom(envId, 3, seed, 30);
      rollouts.source = { test: 'yes' };
      const path = join(dir, `${envId}.arrow`);
      writeRollouts(path, rollouts);
      const back: Rollouts = readRollouts(path);
      assert.equal(back.envId, envId);
      assert.equal(back.dt, rollouts.dt);
      assert.deepEqual(back.scene, rollouts.scene);
      assert.deepEqual(back.source, { test: 'yes' });
      assert.equal(back.episodes.length, rollouts.episodes.length);
      back.episodes.forEach((e, i) => {
        const w = rollouts.episodes[i];
        assert.deepEqual([e.index, e.seed, e.labels, e.return], [w.index, w.seed, w.labels, w.return]);
        assert.deepEqual(e.rewards, w.rewards);
        e.states.forEach((s, t) => {
          assert.deepEqual(s.qpos, w.states[t].qpos, 'qpos kept in float64');
          // body poses are stored in float32: within its rounding
          if (w.states[t].xpos)
            for (let k = 0; k < s.xpos!.length; k++)
              assert.ok(
                Math.abs(s.xpos![k] - w.states[t].xpos![k]) <=
                  1e-6 * Math.max(1, Math.abs(w.states[t].xpos![k])),
              );
        });
      });
    }
  });

  test('a file that is not a rollout file is refused, naming it', () => {
    const bad = join(dir, 'not-rollouts.arrow');
    writeFileSync(bad, 'hello');
    assert.throws(
      () => readRollouts(bad),
      (e: Error) => e.message.includes(bad) && /rollout/.test(e.message),
    );
  });
});
