/**
 * Parity with Python Gymnasium 1.4 + MuJoCo 3.14 (native) for the MuJoCo tasks (issue 4).
 *
 * "Same seeds" across languages: numpy's PCG64 and our mulberry32 give different numbers for one
 * seed, so the TypeScript side draws everything random — the initial state from
 * `reset({ seed })` and the actions from `actionSpace.sample()` after `seed(seed)` — and Python
 * replays it: `set_state(qpos, qvel)` then the same float32 actions. Each seed thus names the same
 * episode on both sides, and any difference is physics or reward code, not sampling.
 *
 * Tolerances: observations and rewards within rtol 1e-6 (|a − b| ≤ 1e-9 + 1e-6·|b|) for the
 * first 50 steps (the issue's bar); same length, terminated and truncated flags over 100 steps
 * (one case with a 30-step time limit sets truncated; issue 21); mean return
 * of 20 random-policy episodes within 5 %.
 *
 * Drift: wasm and native MuJoCo 3.14 agree bit for bit at reset and differ by ~1e-15 after the
 * first steps (libm and FMA differences between the two builds). Contact dynamics are chaotic, so
 * that grows ~10× every 5–8 steps in Ant and HalfCheetah and passes 1e-6 near step 55–100, then
 * O(1) by step ~150. Native MuJoCo against itself with one qpos entry moved by one ulp diverges
 * at the same rate (measured, see README "Environments"), so this is float chaos, not a
 * modelling difference; Hopper and Walker2d episodes under a random policy end (≤ 50 steps)
 * before it shows. Steps past 50 are reported (t.diagnostic), not asserted.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type Env, make, type MujocoEnv } from '../../../rl/envs/index.js';
import { repoRoot } from '../../helpers/cli.js';
import { runScript, runScriptJSON } from './python_script.js';

interface PyEpisode {
  obs0: number[];
  obs: number[][];
  rewards: number[];
  terminated: boolean;
  truncated: boolean;
  length: number;
  return: number;
}
interface PyResult {
  mujoco_version: string;
  spaces: { observation: unknown; action: unknown };
  episodes: PyEpisode[];
}
interface Episode {
  qpos: number[];
  qvel: number[];
  actions: number[][];
  obs0: number[];
  obs: number[][];
  rewards: number[];
  terminated: boolean;
  truncated: boolean;
  length: number;
  return: number;
}

const RTOL = 1e-6;
/** Steps compared at RTOL (the issue asks for at least 50). */
const STRICT_STEPS = 50;
const ATOL = 1e-9;

/** Runs one episode here from reset({ seed }) with seeded random actions, recording everything. */
function runEpisode(env: Env, seed: number, maxSteps: number): Episode {
  const [obs0] = env.reset({ seed });
  const u = env.unwrapped as unknown as MujocoEnv;
  const qpos = Array.from(u.data.qpos);
  const qvel = Array.from(u.data.qvel);
  env.actionSpace.seed(seed);
  const ep: Episode = {
    qpos,
    qvel,
    actions: [],
    obs0: Array.from(obs0),
    obs: [],
    rewards: [],
    terminated: false,
    truncated: false,
    length: 0,
    return: 0,
  };
  for (let t = 0; t < maxSteps; t++) {
    const a = env.actionSpace.sample() as Float32Array;
    ep.actions.push(Array.from(a));
    const [obs, r, term, trunc] = env.step(a);
    ep.obs.push(Array.from(obs));
    ep.rewards.push(r);
    ep.return += r;
    ep.length += 1;
    if (term || trunc) {
      ep.terminated = term;
      ep.truncated = trunc;
      break;
    }
  }
  return ep;
}

/** Largest |a − b| / (ATOL + RTOL·|b|) over two arrays: ≤ 1 passes. */
function worst(a: number[], b: number[]): { ratio: number; abs: number; rel: number; at: number } {
  assert.equal(a.length, b.length, 'lengths differ');
  let out = { ratio: 0, abs: 0, rel: 0, at: -1 };
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    const ratio = d / (ATOL + RTOL * Math.abs(b[i]));
    if (ratio > out.ratio) out = { ratio, abs: d, rel: d / Math.max(Math.abs(b[i]), 1e-300), at: i };
  }
  return out;
}

const TASKS: { id: string; kwargs: Record<string, unknown>; horizon: number; maxEpisodeSteps?: number }[] = [
  { id: 'Ant-v5', kwargs: {}, horizon: 300 },
  {
    id: 'Ant-v5',
    kwargs: { include_cfrc_ext_in_observation: false, exclude_current_positions_from_observation: false },
    horizon: 100,
  },
  { id: 'HalfCheetah-v5', kwargs: {}, horizon: 300 },
  { id: 'Hopper-v5', kwargs: {}, horizon: 1000 },
  { id: 'Walker2d-v5', kwargs: {}, horizon: 1000 },
  // Random policies topple these two within 50 steps; without termination the 50 strict steps run.
  { id: 'Hopper-v5', kwargs: { terminate_when_unhealthy: false }, horizon: 100 },
  { id: 'Walker2d-v5', kwargs: { terminate_when_unhealthy: false }, horizon: 100 },
  // issue 15: Gymnasium's walker2d.xml is the v4 model (right foot friction 0.9), not v5's
  { id: 'Walker2d-v5', kwargs: { xml_file: 'walker2d.xml', terminate_when_unhealthy: false }, horizon: 100 },
  // issue 21: a time limit inside the 100 steps, so the truncated flag is compared where it is set
  { id: 'Hopper-v5', kwargs: { terminate_when_unhealthy: false }, horizon: 100, maxEpisodeSteps: 30 },
];

describe('MuJoCo models match Gymnasium’s compiled models', () => {
  test('every physics field of the five compiled models is identical (walker2d.xml and walker2d_v5.xml both)', () => {
    const out = JSON.parse(
      runScript('test/rl/envs/model_parity.py', [join(repoRoot, 'rl', 'envs', 'assets')]),
    ) as Record<string, string[][]>;
    for (const [file, diffs] of Object.entries(out))
      assert.deepEqual(diffs, [], `${file} differs: ${JSON.stringify(diffs)}`);
  });
});

describe('xml_file resolves as Gymnasium resolves it (issue 15)', () => {
  test('walker2d.xml (v4 model) and walker2d_v5.xml (the default) are different models', () => {
    const steps = (kwargs: Record<string, unknown>) =>
      runEpisode(make('Walker2d-v5', { terminate_when_unhealthy: false, ...kwargs }), 3, 100).obs.flat();
    const v5 = steps({});
    assert.deepEqual(steps({ xml_file: 'walker2d_v5.xml' }), v5, 'the default is walker2d_v5.xml');
    const v4 = steps({ xml_file: 'walker2d.xml' });
    assert.ok(
      v4.some((x, i) => Math.abs(x - v5[i]) > 1e-3),
      'walker2d.xml must not run the v5 model (so the parity case above can fail)',
    );
  });

  test('a name we do not ship is refused, naming what we ship; paths as Gymnasium takes them', () => {
    for (const name of ['humanoid.xml', 'walker2d_v4.xml', 'rl/envs/assets/hopper.xml'])
      assert.throws(
        () => make('Walker2d-v5', { xml_file: name }),
        new RegExp(
          `xml_file "${name}": no such model here; .*\\(ant\\.xml, half_cheetah\\.xml, hopper\\.xml, walker2d\\.xml, walker2d_v5\\.xml\\).*path starting with`,
        ),
      );
    // a path starts with '.' or '/' (Gymnasium's expand_model_path)
    const abs = join(repoRoot, 'rl', 'envs', 'assets', 'walker2d_v5.xml');
    for (const path of [abs, './rl/envs/assets/walker2d_v5.xml']) {
      const env = make('Walker2d-v5', { xml_file: path });
      env.reset({ seed: 0 });
      env.close();
    }
    assert.throws(
      () => make('Walker2d-v5', { xml_file: './missing/walker.xml' }),
      /xml_file "\.\/missing\/walker\.xml": cannot read/,
    );
  });
});

describe('parity with Python Gymnasium', () => {
  for (const task of TASKS) {
    const limit = task.maxEpisodeSteps;
    const label = `${task.id} ${JSON.stringify(task.kwargs)}${limit ? ` max_episode_steps=${limit}` : ''}`;
    test(`${label}: spaces, 100-step trajectories, termination and truncation step`, (t) => {
      const env = make(task.id, limit ? { ...task.kwargs, max_episode_steps: limit } : task.kwargs);
      const episodes = [1, 2, 3].map((s) => runEpisode(env, s, 100));
      if (limit)
        assert.ok(
          episodes.every((e) => e.truncated && e.length === limit),
          'every episode ends at the time limit',
        );
      const py = runScriptJSON<PyResult>('test/rl/envs/gym_parity.py', {
        env_id: task.id,
        kwargs: task.kwargs,
        ...(limit ? { max_episode_steps: limit } : {}),
        record: true,
        episodes: episodes.map(({ qpos, qvel, actions }) => ({ qpos, qvel, actions })),
      });
      assert.deepEqual(env.observationSpace.toJSON(), py.spaces.observation, 'observation space');
      assert.deepEqual(env.actionSpace.toJSON(), py.spaces.action, 'action space');
      let maxAbs = 0;
      let maxRel = 0;
      let steps = 0;
      const drift: string[] = [];
      episodes.forEach((ep, k) => {
        const p = py.episodes[k];
        const w0 = worst(ep.obs0, p.obs0);
        assert.ok(w0.ratio <= 1, `episode ${k}: initial obs[${w0.at}] differs by ${w0.abs}`);
        assert.equal(ep.length, p.length, `episode ${k}: length ${ep.length} here, ${p.length} in Gymnasium`);
        assert.equal(ep.terminated, p.terminated, `episode ${k}: terminated flag`);
        assert.equal(ep.truncated, p.truncated, `episode ${k}: truncated flag`);
        let firstOver = -1;
        let last = 0;
        for (let s = 0; s < ep.length; s++) {
          const w = worst(ep.obs[s], p.obs[s]);
          const r = worst([ep.rewards[s]], [p.rewards[s]]);
          last = Math.max(w.rel, r.rel);
          if (s < STRICT_STEPS) {
            assert.ok(
              w.ratio <= 1,
              `episode ${k} step ${s}: obs[${w.at}] = ${ep.obs[s][w.at]} vs ${p.obs[s][w.at]}`,
            );
            assert.ok(r.ratio <= 1, `episode ${k} step ${s}: reward ${ep.rewards[s]} vs ${p.rewards[s]}`);
            maxAbs = Math.max(maxAbs, w.abs, r.abs);
            maxRel = Math.max(maxRel, w.rel, r.rel);
            steps += 1;
          } else if (firstOver < 0 && (w.ratio > 1 || r.ratio > 1)) firstOver = s;
        }
        drift.push(
          `ep ${k}: ${ep.length} steps, ${firstOver < 0 ? 'within rtol to the end' : `past rtol from step ${firstOver}`}, final rel ${last.toExponential(1)}`,
        );
      });
      t.diagnostic(`${label}: drift ${drift.join('; ')}`);
      t.diagnostic(
        `${label}: first ${STRICT_STEPS} steps (${steps} compared), max |diff| ${maxAbs.toExponential(2)}, max rel ${maxRel.toExponential(2)}`,
      );
      env.close();
    });

    if (Object.keys(task.kwargs).length > 0 || limit) continue;
    test(`${task.id}: random-policy mean return over 20 episodes (horizon ${task.horizon}) within 5%`, (t) => {
      const env = make(task.id, { max_episode_steps: task.horizon });
      const episodes = Array.from({ length: 20 }, (_, s) => runEpisode(env, s, task.horizon));
      const py = runScriptJSON<PyResult>('test/rl/envs/gym_parity.py', {
        env_id: task.id,
        kwargs: {},
        max_episode_steps: task.horizon,
        record: false,
        episodes: episodes.map(({ qpos, qvel, actions }) => ({ qpos, qvel, actions })),
      });
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const ours = mean(episodes.map((e) => e.return));
      const theirs = mean(py.episodes.map((e) => e.return));
      const sameEnds = episodes.filter(
        (e: Episode, k: number) =>
          e.length === py.episodes[k].length &&
          e.terminated === py.episodes[k].terminated &&
          e.truncated === py.episodes[k].truncated,
      ).length;
      t.diagnostic(
        `${task.id}: mean return ${ours.toFixed(4)} here, ${theirs.toFixed(4)} Gymnasium (rel diff ${(Math.abs(ours - theirs) / Math.abs(theirs)).toExponential(2)}); ${sameEnds}/20 episodes end at the same step`,
      );
      assert.ok(Math.abs(ours - theirs) <= 0.05 * Math.abs(theirs), `mean return ${ours} vs ${theirs}`);
      env.close();
    });
  }
});
