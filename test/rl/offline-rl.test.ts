// `exp run` with the offline-rl recipe end to end on a small Pendulum dataset written here:
// AT (ring, 2 devices), DT (blockwise) and BC each train a few steps, evaluate, checkpoint and
// log to a temporary MLflow file store; bad input fails before training.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Rng } from '../../common/index.js';
import { boxSpace, writeEpisodes } from '../../datasets/index.js';
import { make } from '../../rl/envs/index.js';
import { exp, repoRoot } from '../helpers/cli.js';

let dir: string;
let dataset: string;

function pendulumEpisodes(n: number, seed: number) {
  const rng = new Rng(seed);
  const env = make<Float64Array, Float32Array>('Pendulum-v1', {}, { maxEpisodeSteps: 40 });
  const out = [];
  for (let e = 0; e < n; e++) {
    const obs: number[] = [...env.reset({ seed: seed + e })[0]];
    const actions: number[] = [];
    const rewards: number[] = [];
    const term: number[] = [];
    const trunc: number[] = [];
    for (;;) {
      const a = Float32Array.of(Math.max(-2, Math.min(2, rng.normal())));
      const [o, r, te, tr] = env.step(a);
      obs.push(...o);
      actions.push(a[0]);
      rewards.push(r);
      term.push(te ? 1 : 0);
      trunc.push(tr ? 1 : 0);
      if (te || tr) break;
    }
    out.push({ observations: obs, actions, rewards, terminations: term, truncations: trunc });
  }
  env.close();
  return out;
}

function metricLines(root: string, key: string): string[] {
  const hits: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith(join('metrics', ...key.split('/'))))
        hits.push(...readFileSync(p, 'utf8').trim().split('\n'));
    }
  };
  walk(root);
  return hits;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'offline-rl-'));
  dataset = join(dir, 'pendulum.arrow');
  writeEpisodes(
    dataset,
    {
      datasetId: 'test/pendulum-random-v0',
      observationSpace: boxSpace(3),
      actionSpace: boxSpace(1, 'float32', -2, 2),
      envId: 'Pendulum-v1',
      source: 'test',
    },
    pendulumEpisodes(12, 5),
  );
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const common = (extra: string[]) => [
  'run',
  join(repoRoot, 'test/fixtures/offline-rl-tiny.yaml'),
  '--set',
  `offline-rl.dataset=${'DATASET'}`,
  ...extra,
];

describe('offline-rl recipe', () => {
  for (const [name, extra] of [
    [
      'AT on a ring of 2 devices',
      [
        '--set',
        'offline-rl.algo=at',
        '--set',
        'offline-rl.model.attention=ring',
        '--set',
        'offline-rl.model.devices=2',
      ],
    ],
    ['DT with blockwise attention', ['--set', 'offline-rl.algo=dt']],
    ['BC', ['--set', 'offline-rl.algo=bc']],
  ] as const) {
    test(name, () => {
      const args = common([...extra]).map((a) => a.replace('DATASET', dataset));
      const r = exp(args, { cwd: dir, env: { MLFLOW_TRACKING_URI: '' }, timeoutMs: 300_000 });
      assert.equal(r.code, 0, r.stderr);
      const losses = metricLines(join(dir, 'mlruns'), 'train/loss');
      assert.ok(losses.length >= 6, `train/loss points: ${losses.length}`);
      assert.ok(
        metricLines(join(dir, 'mlruns'), 'summary/normalized_score_last').length > 0 ||
          metricLines(join(dir, 'mlruns'), 'eval/return_mean').length > 0,
      );
      rmSync(join(dir, 'mlruns'), { recursive: true, force: true });
    });
  }

  test('a dataset from another env is refused before training', () => {
    const r = exp(
      common(['--set', 'offline-rl.env=CartPole-v1']).map((a) => a.replace('DATASET', dataset)),
      { cwd: dir, env: { MLFLOW_TRACKING_URI: '' } },
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /dataset was collected on Pendulum-v1; the config evaluates on CartPole-v1/);
  });

  test('a context the attention cannot hold in the budget is refused before training', () => {
    const r = exp(
      common(['--set', 'offline-rl.algo=at', '--set', 'offline-rl.model.memoryBudgetMiB=0.5']).map((a) =>
        a.replace('DATASET', dataset),
      ),
      { cwd: dir, env: { MLFLOW_TRACKING_URI: '' } },
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /tokens per sequence need [\d.]+ MiB per device with blockwise; the budget is 0.5 MiB/,
    );
  });
});
