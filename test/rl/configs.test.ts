// Every offline-RL config runs end to end for a few steps as a user calls it (`exp run <name>`
// with --set to shrink it), logging to a temporary MLflow store that the test reads back.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Rng } from '../../common/index.js';
import { boxSpace, writeEpisodes } from '../../datasets/index.js';
import { make } from '../../rl/envs/index.js';
import { exp } from '../helpers/cli.js';

let dir: string;

/** A few short random-action episodes of `envId`, as an Arrow dataset. */
function randomDataset(envId: string, path: string): void {
  const env = make<Float64Array, Float32Array>(envId, {}, { maxEpisodeSteps: 30 });
  const obsDim = (env.observationSpace as unknown as { shape: number[] }).shape[0];
  const actDim = (env.actionSpace as unknown as { shape: number[] }).shape[0];
  const rng = new Rng(1);
  const episodes = [];
  for (let e = 0; e < 3; e++) {
    const obs = [...env.reset({ seed: e })[0]];
    const actions: number[] = [];
    const rewards: number[] = [];
    const term: number[] = [];
    const trunc: number[] = [];
    for (;;) {
      const a = Float32Array.from({ length: actDim }, () => rng.next() * 2 - 1);
      const [o, r, te, tr] = env.step(a);
      obs.push(...o);
      actions.push(...a);
      rewards.push(r);
      term.push(te ? 1 : 0);
      trunc.push(tr ? 1 : 0);
      if (te || tr) break;
    }
    episodes.push({ observations: obs, actions, rewards, terminations: term, truncations: trunc });
  }
  env.close();
  writeEpisodes(
    path,
    {
      datasetId: `test/${envId.toLowerCase()}-random-v0`,
      observationSpace: boxSpace(obsDim),
      actionSpace: boxSpace(actDim, 'float32', -1, 1),
      envId,
    },
    episodes,
  );
}

/** The values logged for a metric (file store lines: timestamp value step); [] when none. */
function metricValues(root: string, key: string): number[] {
  const values: number[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith(join('metrics', ...key.split('/'))))
        for (const line of readFileSync(p, 'utf8').trim().split('\n'))
          values.push(Number(line.split(' ')[1]));
    }
  };
  if (existsSync(root)) walk(root);
  return values;
}

const hasMetric = (root: string, key: string) => metricValues(root, key).length > 0;

const SHRINK = [
  'offline-rl.train.steps=2',
  'offline-rl.train.evalEvery=0',
  'offline-rl.train.batchSize=2',
  'offline-rl.eval.episodes=1',
  'offline-rl.eval.maxEpisodeSteps=5',
  'offline-rl.at.contextSteps=8',
  'offline-rl.at.maxTrajectories=2',
  'offline-rl.at.trials=1',
  'offline-rl.model.dModel=16',
  'offline-rl.model.layers=1',
  'offline-rl.model.blockSize=16',
].flatMap((s) => ['--set', s]);

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'rl-configs-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('offline-RL configs run end to end (shrunk)', () => {
  const cases: [string, string[]][] = [
    ['ant-medium.yaml', ['--set', 'offline-rl.datasetSteps=1000']],
    [
      'ant-medium-paper.yaml',
      [
        '--backend',
        'wasm',
        '--set',
        'offline-rl.datasetSteps=1000',
        '--set',
        'offline-rl.model.devices=2',
        '--set',
        'offline-rl.model.heads=2',
      ],
    ],
    ['halfcheetah-medium.yaml', []],
    ['hopper-medium.yaml', []],
    ['walker2d-medium.yaml', []],
  ];
  for (const [config, extra] of cases) {
    test(config, () => {
      const args = ['run', config, ...SHRINK, ...extra];
      const envId = {
        'halfcheetah-medium.yaml': 'HalfCheetah-v5',
        'hopper-medium.yaml': 'Hopper-v5',
        'walker2d-medium.yaml': 'Walker2d-v5',
      }[config];
      if (envId) {
        const path = join(dir, `${envId}.arrow`);
        randomDataset(envId, path);
        args.push('--set', `offline-rl.dataset=${path}`);
      }
      const cwd = mkdtempSync(join(dir, 'run-'));
      const r = exp(args, { cwd, env: { MLFLOW_TRACKING_URI: '' }, timeoutMs: 300_000 });
      assert.equal(r.code, 0, r.stderr);
      const losses = metricValues(join(cwd, 'mlruns'), 'train/loss');
      assert.ok(losses.length > 0, 'no train/loss logged');
      // issue 21: a file that exists is not enough; NaN losses must fail
      assert.ok(losses.every(Number.isFinite), `train/loss: ${losses.join(' ')}`);
      assert.ok(hasMetric(join(cwd, 'mlruns'), 'summary/normalized_score_last'), 'no summary score logged');
    });
  }

  test('the halfcheetah config without its dataset says how to get one', () => {
    const r = exp(['run', 'halfcheetah-medium.yaml', ...SHRINK], {
      cwd: dir,
      env: { MLFLOW_TRACKING_URI: '' },
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /halfcheetah-medium\.arrow: no such file or directory/);
  });
});
