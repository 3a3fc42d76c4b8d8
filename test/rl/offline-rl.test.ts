// `exp run` with the offline-rl recipe end to end on a small Pendulum dataset written here:
// AT (ring, 2 devices), DT (blockwise) and BC each train a few steps, evaluate, checkpoint and
// log to a temporary MLflow file store; bad input fails before training. Issue 21: every logged
// loss is finite, losses fall on a dataset whose actions the state determines, and corrupt data
// is refused at load (with the check off, the run stops at the first NaN loss).
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

/** Pendulum episodes acted by a fixed policy a = tanh(1.5·cos θ − 0.8·θ̇/8): actions the state determines. */
function learnableEpisodes(n: number, seed: number) {
  const env = make<Float64Array, Float32Array>('Pendulum-v1', {}, { maxEpisodeSteps: 40 });
  const out = [];
  for (let e = 0; e < n; e++) {
    let [o] = env.reset({ seed: seed + e });
    const obs: number[] = [...o];
    const actions: number[] = [];
    const rewards: number[] = [];
    const term: number[] = [];
    const trunc: number[] = [];
    for (;;) {
      const a = Float32Array.of(Math.tanh(1.5 * o[0] - 0.1 * o[2]));
      const [next, r, te, tr] = env.step(a);
      obs.push(...next);
      actions.push(a[0]);
      rewards.push(r);
      term.push(te ? 1 : 0);
      trunc.push(tr ? 1 : 0);
      o = next;
      if (te || tr) break;
    }
    out.push({ observations: obs, actions, rewards, terminations: term, truncations: trunc });
  }
  env.close();
  return out;
}

/** The logged values of a metric (file store lines: timestamp value step), in step order. */
function metricValues(root: string, key: string): number[] {
  return metricLines(root, key)
    .map((l) => l.split(' ').map(Number))
    .sort((a, b) => a[2] - b[2])
    .map((f) => f[1]);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

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
      const losses = metricValues(join(dir, 'mlruns'), 'train/loss');
      assert.ok(losses.length >= 6, `train/loss points: ${losses.length}`);
      assert.ok(
        losses.every((x) => Number.isFinite(x) && x > 0),
        `train/loss: ${losses.join(' ')}`,
      );
      assert.match(r.stderr + r.stdout, /content digest [0-9a-f]{8} verified; values finite/);
      assert.ok(
        metricLines(join(dir, 'mlruns'), 'summary/normalized_score_last').length > 0 ||
          metricLines(join(dir, 'mlruns'), 'eval/return_mean').length > 0,
      );
      rmSync(join(dir, 'mlruns'), { recursive: true, force: true });
    });
  }

  // Losses on data whose actions the state determines: the mean of the last 8 of 48 steps must be
  // under a quarter of the first 8's (measured 0.019–0.027 of it for BC, DT, AT). NaN or flat losses fail.
  for (const [name, extra] of [
    [
      'AT ring N=2',
      [
        '--set',
        'offline-rl.algo=at',
        '--set',
        'offline-rl.model.attention=ring',
        '--set',
        'offline-rl.model.devices=2',
      ],
    ],
    ['DT', ['--set', 'offline-rl.algo=dt']],
    ['BC', ['--set', 'offline-rl.algo=bc']],
  ] as const) {
    test(`${name}: train/loss finite and falling on a learnable dataset (48 steps)`, () => {
      const learnable = join(dir, 'learnable.arrow');
      writeEpisodes(
        learnable,
        {
          datasetId: 'test/pendulum-policy-v0',
          observationSpace: boxSpace(3),
          actionSpace: boxSpace(1, 'float32', -2, 2),
          envId: 'Pendulum-v1',
          source: 'test',
        },
        learnableEpisodes(12, 9),
      );
      const cwd = mkdtempSync(join(dir, 'learn-'));
      const args = [
        ...common([...extra]),
        '--set',
        'offline-rl.train.steps=48',
        '--set',
        'offline-rl.train.evalEvery=0',
        '--set',
        'offline-rl.train.lr=0.003',
        '--set',
        'offline-rl.train.batchSize=8',
      ].map((a) => a.replace('DATASET', learnable));
      const r = exp(args, { cwd, env: { MLFLOW_TRACKING_URI: '' }, timeoutMs: 300_000 });
      assert.equal(r.code, 0, r.stderr);
      const losses = metricValues(join(cwd, 'mlruns'), 'train/loss');
      assert.equal(losses.length, 48);
      assert.ok(losses.every(Number.isFinite), `train/loss: ${losses.join(' ')}`);
      const [first, last] = [mean(losses.slice(0, 8)), mean(losses.slice(-8))];
      assert.ok(
        last < 0.25 * first,
        `train/loss ${first.toFixed(4)} (first 8) → ${last.toFixed(4)} (last 8)`,
      );
    });
  }

  test('a dataset with a changed reward byte is refused before training (exit 2), or with verifyData: never trains', () => {
    const bad = join(dir, 'corrupt.arrow');
    writeEpisodes(
      bad,
      {
        datasetId: 'test/pendulum-random-v0',
        observationSpace: boxSpace(3),
        actionSpace: boxSpace(1, 'float32', -2, 2),
        envId: 'Pendulum-v1',
        source: 'test',
      },
      pendulumEpisodes(4, 5).map((e, i) =>
        i === 1 ? { ...e, rewards: [1225.0078125, ...e.rewards.slice(1)] } : e,
      ),
    );
    const buf = readFileSync(bad);
    const at = buf.indexOf(Buffer.from(Float64Array.of(1225.0078125).buffer));
    assert.ok(at > 0);
    buf.set(new Uint8Array(Float64Array.of(Number.NaN).buffer), at);
    writeFileSync(bad, buf);
    const r = exp(
      common([]).map((a) => a.replace('DATASET', bad)),
      { cwd: dir, env: { MLFLOW_TRACKING_URI: '' } },
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /corrupt\.arrow: episode 1: key "rewards": expected finite values; got NaN at step 0/,
    );
    assert.equal(metricLines(join(dir, 'mlruns'), 'train/loss').length, 0, 'nothing trained');
    rmSync(join(dir, 'mlruns'), { recursive: true, force: true });
    // Unchecked, the NaN reaches the returns-to-go and the loss: the run stops at the first NaN loss.
    const unchecked = exp(
      common(['--set', 'offline-rl.verifyData=never']).map((a) => a.replace('DATASET', bad)),
      { cwd: dir, env: { MLFLOW_TRACKING_URI: '' } },
    );
    assert.notEqual(unchecked.code, 0);
    assert.match(unchecked.stderr, /train\/loss is NaN at step \d+; stopping \(not training on NaN\)/);
    rmSync(join(dir, 'mlruns'), { recursive: true, force: true });
  });

  test('a dataset from another env is refused before training', () => {
    const r = exp(
      common(['--set', 'offline-rl.env=CartPole-v1']).map((a) => a.replace('DATASET', dataset)),
      { cwd: dir, env: { MLFLOW_TRACKING_URI: '' } },
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /dataset was collected on Pendulum-v1; the config evaluates on CartPole-v1/);
  });

  test('a context the attention cannot hold in the budget is refused before training', (t) => {
    const r = exp(
      common(['--set', 'offline-rl.algo=at', '--set', 'offline-rl.model.memoryBudgetMiB=0.5']).map((a) =>
        a.replace('DATASET', dataset),
      ),
      { cwd: dir, env: { MLFLOW_TRACKING_URI: '' } },
    );
    assert.equal(r.code, 2, r.stderr);
    const said =
      /tokens per sequence need ([\d.]+) MiB per device \(real memory; ([\d.]+) MiB of it tensors\) with blockwise; the budget is 0.5 MiB/.exec(
        r.stderr,
      );
    assert.ok(said, r.stderr);
    // issue 20: the budget is on what the device holds, the runtime's fixed cost (≈ 40 MiB) included
    const [real, tensors] = [Number(said[1]), Number(said[2])];
    t.diagnostic(`real ${real} MiB, tensors ${tensors} MiB per device`);
    assert.ok(real > tensors + 20, `real ${real} MiB vs tensors ${tensors} MiB`);
  });
});
