/**
 * The collector and the ant-medium default dataset (issue 6): same seed → same digest whatever the
 * thread interleaving, the dataset loads with the env's spaces and metadata, the step budget cuts
 * the last episode as truncated, `exp data collect` works end to end, and `ensureAntMediumDataset`
 * generates once and then returns the cached file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openDataset } from '../../datasets/index.js';
import { collectDataset, ensureAntMediumDataset, PpoPolicy, PpoTrainer } from '../../rl/index.js';

const dir = mkdtempSync(join(tmpdir(), 'rl-collect-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const EXP = fileURLToPath(new URL('../../../bin/exp.js', import.meta.url));

/** An untrained (freshly initialised) Ant-v5 policy: enough to exercise the collector. */
function antPolicy(seed: number): PpoPolicy {
  return new PpoPolicy(new PpoTrainer({ envId: 'Ant-v5', seed, totalSteps: 1, math: 'js' }).policyJSON());
}

test('collect Ant-v5: same seed → same digest (2 worker threads, run twice), other seed differs; spaces and metadata', () => {
  const policy = antPolicy(1);
  const run = (name: string, seed: number, numEnvs: number) =>
    collectDataset({ policy, out: join(dir, name), steps: 600, seed, stochastic: true, numEnvs });
  const a = run('a.arrow', 5, 2);
  const b = run('b.arrow', 5, 2);
  const c = run('c.arrow', 6, 2);
  assert.equal(a.digest, b.digest);
  assert.notEqual(a.digest, c.digest);
  assert.equal(a.totalSteps, 600);
  const ds = openDataset(a.path);
  try {
    assert.equal(ds.obsDim, 105);
    assert.equal(ds.actDim, 8);
    assert.equal(ds.totalSteps, 600);
    assert.equal(ds.info.envId, 'Ant-v5');
    assert.equal(ds.info.refMinScore, -325.6);
    assert.equal(ds.info.refMaxScore, 3879.7);
    assert.equal(ds.info.source, 'ppo');
    assert.match(ds.info.algorithmName ?? '', /PPO Ant-v5 MLP 105-64-64 tanh, stochastic/);
    const sp = ds.info.actionSpace;
    assert.ok(sp.type === 'Box' && sp.shape[0] === 8);
    // The budget cut: the last episode ends truncated, not terminated.
    const last = ds.episode(ds.numEpisodes - 1);
    assert.equal(last.truncations[last.length - 1], 1);
    assert.equal(last.terminations[last.length - 1], 0);
    // Actions are the clipped policy actions; every observation is finite (values against a
    // hand-stepped env: collect-alignment.test.ts).
    const ep = ds.episode(0);
    assert.ok(ep.actions.every((x) => x >= -1 && x <= 1));
    assert.equal(ep.observations.length, (ep.length + 1) * 105);
    assert.ok(ep.observations.every(Number.isFinite));
  } finally {
    ds.close();
  }
  // Episode mode, one thread, deterministic actions.
  const d = collectDataset({ policy, out: join(dir, 'd.arrow'), episodes: 3, seed: 5, numEnvs: 1 });
  assert.equal(d.totalEpisodes, 3);
});

test('exp data collect: writes a dataset and prints its digest; bad input exits 2', () => {
  const policyFile = join(dir, 'ant0.json');
  writeFileSync(policyFile, JSON.stringify(antPolicy(2).json));
  const out = join(dir, 'cli.arrow');
  const args = [
    'data',
    'collect',
    '--policy',
    policyFile,
    '--steps',
    '300',
    '--out',
    out,
    '--seed',
    '3',
    '--json',
    '--quiet',
  ];
  const r = spawnSync(process.execPath, [EXP, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout) as { totalSteps: number; digest: string };
  assert.equal(res.totalSteps, 300);
  const again = spawnSync(process.execPath, [EXP, ...args], { encoding: 'utf8' });
  assert.equal((JSON.parse(again.stdout) as { digest: string }).digest, res.digest);
  const bad = spawnSync(process.execPath, [EXP, ...args, '--env', 'Hopper-v5'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /trained on Ant-v5; got Hopper-v5/);
  const both = spawnSync(process.execPath, [EXP, ...args, '--episodes', '2'], { encoding: 'utf8' });
  assert.equal(both.status, 2);
  assert.match(both.stderr, /exactly one of --episodes N or --steps N/);
});

test('ensureAntMediumDataset: regenerated from rl/behavior/ant-medium.json on first use, cached after', async () => {
  const saved = process.env.MINARI_DATASETS_PATH;
  const savedD4rl = process.env.D4RL_DATASET_DIR;
  // Empty roots: the test must not pick up a Minari or D4RL copy on this machine.
  process.env.MINARI_DATASETS_PATH = join(dir, 'no-minari');
  process.env.D4RL_DATASET_DIR = join(dir, 'no-d4rl');
  try {
    const cacheDir = join(dir, 'cache');
    const first = await ensureAntMediumDataset({ cacheDir, steps: 400, seed: 0 });
    assert.equal(first.source, 'ppo');
    assert.equal(first.created, true);
    const second = await ensureAntMediumDataset({ cacheDir, steps: 400, seed: 0 });
    assert.deepEqual(second, { ...first, created: false });
    const ds = openDataset(first.path);
    try {
      assert.equal(ds.totalSteps, 400);
      assert.equal(ds.info.datasetId, 'ring/ant-medium-ppo-v0');
      const digest = ds.info.digest;
      rmSync(first.path);
      const third = await ensureAntMediumDataset({ cacheDir, steps: 400, seed: 0 });
      const ds3 = openDataset(third.path);
      assert.equal(ds3.info.digest, digest, 'regeneration is deterministic');
      ds3.close();
    } finally {
      ds.close();
    }
  } finally {
    if (saved === undefined) delete process.env.MINARI_DATASETS_PATH;
    else process.env.MINARI_DATASETS_PATH = saved;
    if (savedD4rl === undefined) delete process.env.D4RL_DATASET_DIR;
    else process.env.D4RL_DATASET_DIR = savedD4rl;
  }
});
