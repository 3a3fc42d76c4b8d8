/**
 * What Minari itself makes of datasets we write (issue 15): `recover_environment()` builds the
 * Gymnasium env (the env_spec names Gymnasium's entry point), and a dataset converted into the
 * Minari layout is listed by `list_local_datasets` (its id is its path below the Minari root).
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { boxSpace, writeEpisodes } from '../../datasets/index.js';
import { exp } from '../helpers/cli.js';
import { freshSeed, randomEpisodes, runPyScript, tempDir } from './helpers.js';

interface Listing {
  listed: string[];
  warnings: string[];
  datasets: Record<
    string,
    {
      total_episodes: number;
      dataset_id: string;
      env?: { id: string; entry_point: string; max_episode_steps: number; observation_shape: number[] };
      env_error?: string;
    }
  >;
}

const minari = (root: string, ids: string[]) =>
  JSON.parse(runPyScript('minari_listing.py', [root, ...ids])) as Listing;

describe('Minari reads what we write', () => {
  const seed = freshSeed();
  const dir = tempDir('ring-minari-');
  after(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'root');
  const { episodes } = randomEpisodes(seed, 3, { obsDim: 11, actDim: 3, maxLen: 12 });
  const hopper = {
    datasetId: 'ring/hopper-random-v0',
    observationSpace: boxSpace(11, 'float64'),
    actionSpace: boxSpace(3, 'float32', -1, 1),
    envId: 'Hopper-v5',
    maxEpisodeSteps: 1000,
  };

  test(`recover_environment() makes Gymnasium's Hopper-v5 from our env_spec (seed ${seed})`, () => {
    writeEpisodes(join(root, 'ring/hopper-random-v0'), hopper, episodes, { layout: 'minari' });
    const got = minari(root, ['ring/hopper-random-v0']).datasets['ring/hopper-random-v0'];
    assert.equal(got.env_error, undefined, `recover_environment raised: ${got.env_error}`);
    assert.deepEqual(got.env, {
      id: 'Hopper-v5',
      entry_point: 'gymnasium.envs.mujoco.hopper_v5:HopperEnv',
      max_episode_steps: 1000,
      observation_shape: [11],
      action_shape: [3],
    });
  });

  test('exp data convert --layout minari: the id follows the --out path, so Minari lists and loads it', () => {
    const file = join(dir, 'hopper.arrow');
    writeEpisodes(file, hopper, episodes);
    // a file written before issue 15 (env_spec entry_point null): convert repairs it
    const convertedRoot = join(dir, 'root2');
    const env = { MINARI_DATASETS_PATH: convertedRoot };
    const r1 = exp(
      ['data', 'convert', file, '--layout', 'minari', '--out', join(convertedRoot, 'mine/hop-v3'), '--quiet'],
      { env },
    );
    assert.equal(r1.code, 0, r1.stderr);
    const outside = join(dir, 'elsewhere', 'hop-v7');
    const r2 = exp(
      [
        'data',
        'convert',
        file,
        '--layout',
        'minari',
        '--out',
        outside,
        '--dataset-id',
        'other/named-v2',
        '--quiet',
      ],
      { env },
    );
    assert.equal(r2.code, 0, r2.stderr);
    const meta = JSON.parse(readFileSync(join(outside, 'data', 'metadata.json'), 'utf8'));
    assert.equal(meta.dataset_id, 'other/named-v2');
    // a folder placed in the root under its id is listed too (the id was given for that place)
    const placed = join(convertedRoot, 'other', 'named-v2');
    mkdirSync(join(convertedRoot, 'other'), { recursive: true });
    const r3 = exp(['data', 'convert', file, '--layout', 'minari', '--out', placed, '--quiet'], { env });
    assert.equal(r3.code, 0, r3.stderr);
    const m = minari(convertedRoot, ['mine/hop-v3', 'other/named-v2']);
    assert.deepEqual(m.warnings, []);
    assert.deepEqual(m.listed, ['mine/hop-v3', 'other/named-v2']);
    for (const id of ['mine/hop-v3', 'other/named-v2']) {
      assert.equal(m.datasets[id].dataset_id, id);
      assert.equal(m.datasets[id].total_episodes, 3);
      assert.equal(m.datasets[id].env?.id, 'Hopper-v5', m.datasets[id].env_error);
    }
  });

  test('convert repairs an env_spec written with a null entry point (older files)', () => {
    const old = join(root, 'ring/old-v0');
    writeEpisodes(old, { ...hopper, datasetId: 'ring/old-v0' }, episodes, { layout: 'minari' });
    const mdPath = join(old, 'data', 'metadata.json');
    const md = JSON.parse(readFileSync(mdPath, 'utf8'));
    md.env_spec = JSON.stringify({ ...JSON.parse(md.env_spec), entry_point: null });
    writeFileSync(mdPath, JSON.stringify(md));
    assert.match(minari(root, ['ring/old-v0']).datasets['ring/old-v0'].env_error ?? '', /entry_point/);
    const r = exp(
      ['data', 'convert', old, '--layout', 'minari', '--out', join(root, 'ring/old-v1'), '--quiet'],
      {
        env: { MINARI_DATASETS_PATH: root },
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      minari(root, ['ring/old-v1']).datasets['ring/old-v1'].env?.entry_point,
      'gymnasium.envs.mujoco.hopper_v5:HopperEnv',
    );
  });

  test('a folder under the Minari root whose path is not an id, or a bad --dataset-id: exit 2, nothing written', () => {
    const file = join(dir, 'h2.arrow');
    writeEpisodes(file, hopper, episodes);
    const bad = join(root, 'not_an_id');
    const r = exp(['data', 'convert', file, '--layout', 'minari', '--out', bad, '--quiet'], {
      env: { MINARI_DATASETS_PATH: root },
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /--out .*not_an_id \(a folder under the Minari root .*\): dataset id "not_an_id" is not of the form \(namespace\/\)name-v<version>/,
    );
    const r2 = exp([
      'data',
      'convert',
      file,
      '--layout',
      'minari',
      '--out',
      join(dir, 'x-v0'),
      '--dataset-id',
      'no version',
      '--quiet',
    ]);
    assert.equal(r2.code, 2, r2.stderr);
    assert.match(r2.stderr, /--dataset-id: dataset id "no version" is not of the form/);
  });
});
