/** Interoperability with the real Python packages (pyarrow, minari, h5py) from the test venv. */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { importD4rl, importMinari, openDataset, writeEpisodes } from '../../datasets/index.js';
import { description, freshSeed, randomEpisodes, runPyScript, tempDir } from './helpers.js';

const f32 = (xs: number[]) => Array.from(Float32Array.from(xs));

describe('Python interop', () => {
  const seed = freshSeed();
  test(`pyarrow and minari read what we write, same values (seed ${seed})`, () => {
    const dir = tempDir();
    const { episodes, obsDim, actDim } = randomEpisodes(seed, 4, { maxLen: 15, infos: true });
    const file = join(dir, 'd.arrow');
    writeEpisodes(file, description(obsDim, actDim, 'test/interop-v0'), episodes, { batchRows: 10 });
    const pa = JSON.parse(runPyScript('read_ours.py', ['pyarrow', file]));
    assert.equal(pa.metadata.total_episodes, 4);
    assert.equal(pa.episodes.length, 4);
    for (const [i, e] of episodes.entries()) {
      const got = pa.episodes[i];
      const T = e.rewards.length;
      assert.deepEqual(
        got.steps,
        Array.from({ length: T + 1 }, (_, t) => t),
      );
      assert.deepEqual(got.observations.flat(), Array.from(e.observations));
      assert.deepEqual(got.actions.flat().slice(0, T * actDim), Array.from(e.actions));
      assert.deepEqual(got.rewards.slice(0, T), Array.from(e.rewards));
    }
    const root = join(dir, 'minari');
    writeEpisodes(join(root, 'test/interop-v0'), description(obsDim, actDim, 'test/interop-v0'), episodes, {
      layout: 'minari',
    });
    const mn = JSON.parse(runPyScript('read_ours.py', ['minari', root, 'test/interop-v0']));
    assert.equal(mn.total_episodes, 4);
    assert.equal(mn.env_id, 'Test-v0');
    for (const [i, e] of episodes.entries()) {
      const got = mn.episodes[i];
      assert.deepEqual(got.observations.flat(), Array.from(e.observations));
      assert.deepEqual(got.actions.flat(), Array.from(e.actions));
      assert.deepEqual(got.rewards, Array.from(e.rewards));
      assert.deepEqual(got.terminations, Array.from(e.terminations, Boolean));
      assert.deepEqual(got.truncations, Array.from(e.truncations, Boolean));
      assert.deepEqual(got.infos.qpos.flat(), Array.from(e.infos?.qpos ?? []));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  for (const format of ['arrow', 'hdf5'] as const) {
    test(`a dataset Python minari wrote (${format} storage) loads in ours (seed ${seed})`, async () => {
      const dir = tempDir();
      const want = JSON.parse(
        runPyScript('make_minari.py', [dir, format, String(seed % 1000), 'test/pend-v0']),
      );
      const check = (ds: ReturnType<typeof openDataset>) => {
        assert.equal(ds.numEpisodes, want.episodes.length);
        for (const [i, e] of want.episodes.entries()) {
          const got = ds.episode(i);
          assert.deepEqual(Array.from(got.observations), f32(e.observations.flat()));
          assert.deepEqual(Array.from(got.actions), f32(e.actions.flat()));
          assert.deepEqual(Array.from(got.rewards), e.rewards);
          assert.deepEqual(Array.from(got.terminations, Boolean), e.terminations);
          assert.deepEqual(Array.from(got.truncations, Boolean), e.truncations);
        }
        assert.equal(ds.info.refMinScore, -1500);
        assert.equal(ds.info.envId, 'Pendulum-v1');
      };
      if (format === 'arrow') {
        const ds = openDataset(join(dir, 'test/pend-v0'));
        check(ds);
        ds.close();
      }
      // Import by id through MINARI_DATASETS_PATH, as `exp data import minari` does.
      const saved = process.env.MINARI_DATASETS_PATH;
      process.env.MINARI_DATASETS_PATH = dir;
      try {
        const res = await importMinari('test/pend-v0', { out: join(dir, 'imported.arrow') });
        assert.equal(res.totalEpisodes, want.episodes.length);
      } finally {
        if (saved === undefined) delete process.env.MINARI_DATASETS_PATH;
        else process.env.MINARI_DATASETS_PATH = saved;
      }
      const ds = openDataset(join(dir, 'imported.arrow'));
      check(ds);
      ds.close();
      rmSync(dir, { recursive: true, force: true });
    });
  }

  for (const withTimeouts of [true, false]) {
    test(`a D4RL file written by h5py (bool enum, gzip chunks, timeouts=${withTimeouts}) imports with the right episodes`, async () => {
      const dir = tempDir();
      const h5 = join(dir, 'hopper-test-v2.hdf5');
      const s = seed % 1000;
      const want = JSON.parse(runPyScript('make_d4rl.py', [h5, String(s), withTimeouts ? '1' : '0', '40']));
      const res = await importD4rl(h5, { out: join(dir, 'd.arrow'), maxEpisodeSteps: 40, chunkRows: 37 });
      assert.equal(res.totalSteps, want.N);
      const ds = openDataset(join(dir, 'd.arrow'));
      assert.equal(ds.numEpisodes, want.episodes.length);
      assert.equal(ds.info.datasetId, 'd4rl/hopper-test-v0');
      for (const [i, e] of want.episodes.entries()) {
        const got = ds.episode(i);
        assert.equal(got.length, e.length, `episode ${i} length`);
        assert.equal(got.terminations[e.length - 1], e.terminal ? 1 : 0);
        assert.equal(got.truncations[e.length - 1], e.truncated ? 1 : 0, `episode ${i} truncated`);
        assert.ok(Math.abs(ds.returns()[i] - e.return) < 1e-6);
        assert.deepEqual(
          Array.from(got.observations.subarray(0, e.length * 5)),
          f32(want.observations.slice(e.start, e.start + e.length).flat()),
        );
        assert.deepEqual(Array.from(got.observations.subarray(e.length * 5)), f32(e.final_obs));
        assert.equal(got.infos?.qpos.length, (e.length + 1) * 2);
      }
      ds.close();
      rmSync(dir, { recursive: true, force: true });
    });
  }
});
