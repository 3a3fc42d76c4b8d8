/** The env API: spaces, registry, bad input, wrappers, checkEnv on every registered env (issue 4). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Box,
  CartPoleEnv,
  ClipAction,
  checkEnv,
  DictSpace,
  Discrete,
  type Env,
  InvalidAction,
  InvalidArgument,
  make,
  MultiDiscrete,
  NormalizeObservation,
  parseSpaceJSON,
  RecordEpisodeStatistics,
  RescaleAction,
  ResetNeeded,
  registeredIds,
  spaceFromJSON,
  TimeLimit,
  UnregisteredEnv,
} from '../../../rl/envs/index.js';

describe('spaces', () => {
  test('Box: sample within bounds, contains, seeding, JSON round trip', () => {
    const box = new Box([-1, 0, -Infinity], [1, Infinity, 2], [3], 'float32', 5);
    for (let i = 0; i < 200; i++) assert.ok(box.contains(box.sample()));
    box.seed(3);
    const a = box.sample();
    box.seed(3);
    assert.deepEqual(box.sample(), a);
    assert.equal(box.explain([0, 1]), 'expected 3 values (shape [3]); got 2');
    assert.equal(box.explain([0, Number.NaN, 0]), 'element 1 is NaN');
    assert.match(box.explain([2, 0, 0]) ?? '', /element 0 = 2 is outside \[-1, 1\]/);
    const json = box.toJSON();
    assert.deepEqual(json.type === 'Box' && json.high, [1, 'inf', 2]);
    assert.deepEqual(spaceFromJSON(JSON.parse(JSON.stringify(json))).toJSON(), json);
    assert.equal(box.toString(), 'Box([-1 0 -inf], [1 inf 2], (3,), float32)');
  });

  test('Discrete, MultiDiscrete, Dict: sample, contains, JSON', () => {
    const d = new Discrete(3, 1, 0);
    for (let i = 0; i < 50; i++) assert.ok(d.contains(d.sample()));
    assert.ok(!d.contains(0) && !d.contains(4) && !d.contains(1.5));
    const md = new MultiDiscrete([2, 5], [0, -2], 0);
    for (let i = 0; i < 50; i++) assert.ok(md.contains(md.sample()));
    assert.ok(!md.contains([2, 0]));
    const dict = new DictSpace({ b: d, a: new Box(0, 1, [2], 'float64') }, 1);
    assert.deepEqual(Object.keys(dict.spaces), ['a', 'b']);
    assert.ok(dict.contains(dict.sample()));
    assert.match(dict.explain({ a: [0, 0] }) ?? '', /key "b" is missing/);
    assert.equal(dict.seed(4).length, 3);
    for (const s of [d, md, dict]) assert.deepEqual(spaceFromJSON(s.toJSON()).toJSON(), s.toJSON());
  });

  test("parseSpaceJSON reads Minari's text with Python Infinity tokens", () => {
    const s = parseSpaceJSON(
      '{"type": "Box", "dtype": "float64", "shape": [2], "low": [-Infinity, 0.0], "high": [Infinity, 1.0]}',
    );
    assert.equal(s.toString(), 'Box([-inf 0], [inf 1], (2,), float64)');
  });

  test('bad space input is an InvalidArgument', () => {
    assert.throws(() => new Box(1, 0, [1]), InvalidArgument);
    assert.throws(() => new Discrete(0), InvalidArgument);
    assert.throws(
      () => spaceFromJSON({ type: 'Tuple' }),
      /expected one of Box, Discrete, MultiDiscrete, Dict/,
    );
  });
});

describe('registry and bad input', () => {
  test('make: ids, spaces, time limits and keywords as Gymnasium v5', () => {
    const cases: [string, Record<string, unknown>, number, number][] = [
      ['Ant-v5', {}, 105, 8],
      ['Ant-v5', { include_cfrc_ext_in_observation: false }, 27, 8],
      ['Ant-v5', { exclude_current_positions_from_observation: false }, 107, 8],
      ['HalfCheetah-v5', {}, 17, 6],
      ['Hopper-v5', {}, 11, 3],
      ['Walker2d-v5', {}, 17, 6],
      ['Pendulum-v1', {}, 3, 1],
    ];
    for (const [id, kwargs, obs, act] of cases) {
      const env = make(id, kwargs);
      assert.equal((env.observationSpace as Box).size, obs, `${id} obs`);
      assert.equal((env.actionSpace as Box).size, act, `${id} action`);
      assert.equal(env.spec?.maxEpisodeSteps, id.endsWith('v5') ? 1000 : 200);
      env.close();
    }
    assert.equal(make('CartPole-v1').spec?.maxEpisodeSteps, 500);
    assert.equal(make('Hopper-v5', {}, { maxEpisodeSteps: 7 }).spec?.maxEpisodeSteps, 7);
  });

  test('unknown id, version or keyword: UnregisteredEnv naming what exists', () => {
    assert.throws(
      () => make('Antt-v5'),
      (e: Error) => e instanceof UnregisteredEnv && /Did you mean: Ant\?/.test(e.message),
    );
    assert.throws(() => make('Ant-v4'), /version v4 for environment Ant doesn't exist; it provides Ant-v5/);
    assert.throws(
      () => make('Ant-v5', { bogus: 1 }),
      /unexpected keyword argument "bogus"; it takes xml_file/,
    );
    assert.throws(
      () => make('Ant-v5', { healthy_z_range: [1, 0] }),
      /healthy_z_range expects a pair \[low, high\] with low <= high/,
    );
    assert.throws(() => make('Ant-v5', { frame_skip: 0 }), /frame_skip expects a positive integer; got 0/);
  });

  test('bad actions: wrong length, NaN, out of bounds, wrong Discrete value', () => {
    const env = make('Ant-v5');
    env.reset({ seed: 0 });
    assert.throws(
      () => env.step(new Float32Array(7)),
      (e: Error) => e instanceof InvalidAction && /expected \(8,\); got \(7,\)/.test(e.message),
    );
    assert.throws(() => env.step(Float32Array.of(0, 0, 0, Number.NaN, 0, 0, 0, 0)), /element 3 is NaN/);
    assert.throws(() => env.step([0, 0, 0, 0, 0, 0, 0, 1.5]), /element 7 = 1.5 is outside \[-1, 1\]/);
    env.close();
    const cp = make<Float32Array, number>('CartPole-v1');
    cp.reset({ seed: 0 });
    assert.throws(() => cp.step(2), /action not in Discrete\(2\): 2 is outside \{0, ..., 1\}/);
  });

  test('step before reset and after the episode ended: ResetNeeded', () => {
    const env = make<Float32Array, number>('CartPole-v1');
    assert.throws(
      () => env.step(0),
      (e: Error) => e instanceof ResetNeeded && /before calling reset/.test(e.message),
    );
    env.reset({ seed: 0 });
    let done = false;
    while (!done) {
      const [, , term, trunc] = env.step(1);
      done = term || trunc;
    }
    assert.throws(() => env.step(1), /after the episode ended .* call reset\(\) first/);
    env.reset();
    env.step(1);
  });

  test('bad seed and reset options', () => {
    const env = make('Pendulum-v1');
    assert.throws(() => env.reset({ seed: -1 }), /seed must be greater or equal to zero/);
    assert.throws(() => env.reset({ seed: 1.5 }), /seed must be a non-negative integer/);
    assert.throws(
      () => make('CartPole-v1').reset({ options: { low: 'x' } }),
      /option low .* could not be converted/,
    );
  });
});

describe('MuJoCo tasks', () => {
  test('Ant-v5: reset noise, healthy termination, info keys, truncation at the time limit', () => {
    const env = make('Ant-v5', { max_episode_steps: 5 });
    const [obs, info] = env.reset({ seed: 1 });
    assert.equal(obs.length, 105);
    assert.deepEqual(Object.keys(info), ['x_position', 'y_position', 'distance_from_origin']);
    const zero = new Float32Array(8);
    let last: [unknown, number, boolean, boolean, Record<string, unknown>] | null = null;
    for (let i = 0; i < 5; i++) last = env.step(zero);
    assert.equal(last?.[3], true, 'truncated at step 5');
    assert.ok(
      ['reward_forward', 'reward_ctrl', 'reward_contact', 'reward_survive', 'x_velocity'].every(
        (k) => k in (last?.[4] ?? {}),
      ),
    );
    // Lifted above the healthy range (z > 1): terminated on the next step, survive reward 0.
    const raw = make('Ant-v5');
    raw.reset({ seed: 1 });
    const u = raw.unwrapped as unknown as {
      setState(q: ArrayLike<number>, v: ArrayLike<number>): void;
      data: { qpos: Float64Array; qvel: Float64Array };
    };
    const q = Float64Array.from(u.data.qpos);
    q[2] = 3;
    u.setState(q, new Float64Array(u.data.qvel.length));
    const [, , term, , inf] = raw.step(zero);
    assert.equal(term, true);
    assert.equal(inf.reward_survive, 0);
  });

  test('HalfCheetah never terminates; reward = forward − 0.1‖a‖²', () => {
    const env = make('HalfCheetah-v5');
    env.reset({ seed: 2 });
    const a = Float32Array.of(1, -1, 1, -1, 1, -1);
    const [, r, term, , info] = env.step(a);
    assert.equal(term, false);
    assert.ok(Math.abs(r - ((info.reward_forward as number) + (info.reward_ctrl as number))) < 1e-12);
    assert.ok(Math.abs((info.reward_ctrl as number) + 0.6) < 1e-6);
  });
});

describe('wrappers', () => {
  test('TimeLimit truncates, RecordEpisodeStatistics reports r/l/t', () => {
    const env = new RecordEpisodeStatistics(new TimeLimit(new CartPoleEnv(), 3));
    env.reset({ seed: 0 });
    let out = env.step(0);
    out = env.step(1);
    out = env.step(0);
    assert.equal(out[3], true);
    const ep = out[4].episode as { r: number; l: number; t: number };
    assert.equal(ep.r, 3);
    assert.equal(ep.l, 3);
    assert.ok(ep.t >= 0);
    assert.deepEqual(env.returnQueue, [3]);
  });

  test('NormalizeObservation: running statistics, frozen for evaluation', () => {
    const env = new NormalizeObservation(make('Pendulum-v1') as Env<ArrayLike<number>, ArrayLike<number>>);
    env.reset({ seed: 0 });
    for (let i = 0; i < 50; i++) env.step([0]);
    const count = env.obsRms.count;
    assert.ok(count > 50);
    env.freeze();
    const [o] = env.step([0]);
    assert.equal(env.obsRms.count, count, 'frozen statistics do not move');
    assert.ok(o instanceof Float32Array);
    assert.equal(env.observationSpace.toString(), 'Box(-inf, inf, (3,), float32)');
  });

  test('ClipAction clips; RescaleAction maps [-1, 1] onto [-2, 2]', () => {
    const clip = new ClipAction(make('Pendulum-v1'));
    clip.reset({ seed: 0 });
    clip.step([100]);
    assert.equal(clip.actionSpace.toString(), 'Box(-inf, inf, (1,), float32)');
    const base = make('Pendulum-v1');
    const scaled = new RescaleAction(base, -1, 1);
    const ref = make('Pendulum-v1');
    scaled.reset({ seed: 4 });
    ref.reset({ seed: 4 });
    const [o1, r1] = scaled.step([0.5]);
    const [o2, r2] = ref.step([1.0]);
    assert.deepEqual(o1, o2);
    assert.equal(r1, r2);
    assert.throws(() => scaled.step([1.5]), /action not in Box\(-1, 1, \(1,\), float32\)/);
  });
});

describe('checkEnv', () => {
  for (const id of registeredIds())
    test(`checkEnv passes on ${id} (made and unwrapped)`, () => {
      const made = checkEnv(make<unknown, unknown>(id));
      assert.ok(made.passed.includes('invalid actions rejected'));
      const raw = make<unknown, unknown>(id).unwrapped;
      // The bare env cannot know about episode ends, but still validates actions itself.
      checkEnv(raw);
    });

  test('checkEnv names the violation: a reset that ignores its seed', () => {
    class Unseeded extends CartPoleEnv {
      override reset() {
        this.state = Float64Array.from({ length: 4 }, () => Math.random() * 0.1 - 0.05);
        return [Float32Array.from(this.state), {}] as [Float32Array, Record<string, unknown>];
      }
    }
    assert.throws(
      () => checkEnv(new Unseeded() as unknown as Env<unknown, unknown>),
      /reset\(\{ seed: 123 \}\) twice gave different observations/,
    );
  });

  test('checkEnv names the violation: an observation outside the space', () => {
    class Escaping extends CartPoleEnv {
      override reset(args = {}) {
        const [o, i] = super.reset(args);
        o[0] = 100;
        return [o, i] as [Float32Array, Record<string, unknown>];
      }
    }
    assert.throws(
      () => checkEnv(new Escaping() as unknown as Env<unknown, unknown>),
      /observation returned by reset\(\) is not within Box.*element 0 = 100 is outside/,
    );
  });
});
