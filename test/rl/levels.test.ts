/**
 * Mixed-quality datasets (issue 17): the level picker's rule, a mixed collection equals its
 * sources collected one by one and concatenated, the shipped Hopper levels reproduce the returns
 * levels.json recorded for them, the named datasets generate once and are cached, and the CLI
 * entry points (`exp data recipes`, pick-levels, offline-rl's dataset key) as a user calls them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { openDataset } from '../../datasets/index.js';
import { chooseLevels, type LevelEvaluation } from '../../rl/behavior/pick-levels.js';
import {
  collectDataset,
  collectMixedDataset,
  ensureLevelDataset,
  evaluatePolicy,
  levelDataset,
  levelDatasets,
  PpoPolicy,
  shareSteps,
} from '../../rl/index.js';
import { exp, repoRoot } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'rl-levels-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const load = (file: string) => PpoPolicy.fromJSONText(readFileSync(file, 'utf8'), file);

test('chooseLevels: medium is the first at a third of the expert reference, expert the best', () => {
  const ev = (update: number, mean: number): LevelEvaluation => ({
    update,
    envSteps: update * 2048,
    mean,
    std: 1,
    episodes: 5,
  });
  const evals = [ev(30, 900), ev(10, 200), ev(20, 1100), ev(40, 3000), ev(50, 2500)];
  const { medium, expert } = chooseLevels(evals, 3000);
  assert.equal(medium?.update, 20); // 1100 ≥ 1000, and earlier than 30 although listed later
  assert.equal(expert?.update, 40);
  assert.equal(chooseLevels([ev(10, 5)], 3000).medium, undefined);
});

test('shareSteps: floors, the remainder to the last, sums to the total', () => {
  assert.deepEqual(shareSteps([1 / 3, 1 / 3, 1 / 3], 1000), [333, 333, 334]);
  assert.deepEqual(shareSteps([0.5, 0.5], 7), [3, 4]);
});

for (const [short, envId] of [
  ['hopper', 'Hopper-v5'],
  ['ant', 'Ant-v5'],
] as const)
  describe(`the shipped ${envId} levels`, () => {
    const replay = levelDataset(`${short}-medium-replay`);
    const mixed = levelDataset(`${short}-medium-expert`);

    test('both named datasets exist, shares sum to 1, medium-replay ends at the medium policy', () => {
      assert.ok(replay && mixed, `levelDatasets(): ${levelDatasets().map((d) => d.name)}`);
      for (const d of [replay, mixed]) {
        assert.equal(d.envId, envId);
        assert.ok(Math.abs(d.sources.reduce((a, s) => a + s.share, 0) - 1) < 1e-12);
      }
      assert.equal(replay.sources.at(-1)?.file, mixed.sources[0].file);
      assert.ok(replay.sources.length >= 5, `${replay.sources.length} replay snapshots`);
    });

    test('the medium and expert policies reproduce the returns levels.json recorded', () => {
      const levels = JSON.parse(
        readFileSync(join(repoRoot, 'rl', 'behavior', 'levels', envId.toLowerCase(), 'levels.json'), 'utf8'),
      ) as {
        episodes: number;
        seed: number;
        medium: LevelEvaluation;
        expert: LevelEvaluation;
        expertReference: number;
      };
      assert.ok(mixed);
      for (const [level, src] of [
        [levels.medium, mixed.sources[0]],
        [levels.expert, mixed.sources[1]],
      ] as const) {
        assert.match(src.file, new RegExp(`snap-${level.update}\\.json$`));
        const s = evaluatePolicy(load(src.file), {
          episodes: levels.episodes,
          seed: levels.seed,
          stochastic: true,
        });
        assert.ok(
          Math.abs(s.mean - level.mean) < 1e-6 * Math.abs(level.mean),
          `${src.label}: ${s.mean} vs ${level.mean}`,
        );
      }
      // the levels are what their names say (D4RL: medium ≈ a third of expert; expert near 100%)
      assert.ok(
        levels.medium.mean >= levels.expertReference / 3 && levels.medium.mean < 0.6 * levels.expertReference,
      );
      assert.ok(levels.expert.mean > 0.9 * levels.expertReference);
    });
  });

describe('mixed collections (Hopper-v5 levels)', () => {
  const mixed = levelDataset('hopper-medium-expert');

  test('a mixed collection is its sources collected one by one, concatenated (seed + 100003·j)', () => {
    assert.ok(mixed);
    const seed = (Math.random() * 1e6) | 0;
    const [a, b] = mixed.sources.map((s) => load(s.file));
    const whole = collectMixedDataset({
      sources: [
        { policy: a, steps: 700, label: 'medium' },
        { policy: b, steps: 500, label: 'expert' },
      ],
      out: join(dir, `mixed-${seed}.arrow`),
      seed,
      stochastic: true,
      datasetId: 'ring/test-mixed-v0',
    });
    const parts = [
      collectDataset({ policy: a, out: join(dir, `a-${seed}.arrow`), steps: 700, seed, stochastic: true }),
      collectDataset({
        policy: b,
        out: join(dir, `b-${seed}.arrow`),
        steps: 500,
        seed: seed + 100_003,
        stochastic: true,
      }),
    ];
    assert.equal(whole.totalSteps, 1200);
    const ds = openDataset(whole.path);
    try {
      let k = 0;
      for (const part of parts) {
        const p = openDataset(part.path);
        try {
          for (let i = 0; i < p.numEpisodes; i++, k++) {
            const want = p.episode(i);
            const got = ds.episode(k);
            assert.deepEqual(got.observations, want.observations, `seed ${seed}: episode ${k} observations`);
            assert.deepEqual(got.actions, want.actions, `seed ${seed}: episode ${k} actions`);
            assert.deepEqual(got.rewards, want.rewards);
            assert.deepEqual(got.truncations, want.truncations);
          }
        } finally {
          p.close();
        }
      }
      assert.equal(k, ds.numEpisodes);
      assert.equal(ds.info.datasetId, 'ring/test-mixed-v0');
      assert.equal(ds.info.refMaxScore, 3234.3);
    } finally {
      ds.close();
    }
  });

  test('ensureLevelDataset: generated on first use with its id and refs, cached after', () => {
    const cacheDir = join(dir, 'cache');
    const first = ensureLevelDataset('hopper-medium-replay', { cacheDir, steps: 3000, seed: 3 });
    const again = ensureLevelDataset('hopper-medium-replay', { cacheDir, steps: 3000, seed: 3 });
    assert.equal(first.created, true);
    assert.equal(again.created, false);
    assert.equal(again.path, first.path);
    const ds = openDataset(first.path, { verify: 'always' });
    try {
      assert.equal(ds.totalSteps, 3000);
      assert.equal(ds.info.datasetId, 'ring/hopper-medium-replay-v0');
      assert.equal(ds.info.envId, 'Hopper-v5');
      assert.equal(ds.info.refMinScore, -20.27);
    } finally {
      ds.close();
    }
    assert.throws(() => ensureLevelDataset('hopper-nope', { cacheDir, steps: 1000 }), /hopper-medium-replay/);
  });
});

describe('CLI', () => {
  test('exp data recipes --json lists auto and the Hopper levels; the text form names each', () => {
    const r = exp(['data', 'recipes', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const names = (JSON.parse(r.stdout) as { recipes: { name: string }[] }).recipes.map((x) => x.name);
    for (const n of [
      'auto',
      'hopper-medium-replay',
      'hopper-medium-expert',
      'ant-medium-replay',
      'ant-medium-expert',
    ])
      assert.ok(names.includes(n), n);
    const text = exp(['data', 'recipes']);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /hopper-medium-expert {2}\(ring\/hopper-medium-expert-v0, 2 policies\)/);
  });

  test('pick-levels: a missing --dir, a folder that is not a run, a bad --stride exit 2 naming the argument', () => {
    const script = join(repoRoot, 'dist', 'rl', 'behavior', 'pick-levels.js');
    const run = (...args: string[]) => spawnSync(process.execPath, [script, ...args], { encoding: 'utf8' });
    const empty = join(dir, 'not-a-run');
    mkdirSync(empty, { recursive: true });
    for (const [args, msg] of [
      [[], /--dir: required/],
      [['--dir', empty], /no log.jsonl/],
      [['--dir', empty, '--stride', '0'], /--stride: expected an integer ≥ 1, got '0'/],
    ] as const) {
      const r = run(...args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg);
    }
    writeFileSync(join(empty, 'log.jsonl'), '');
    const r = run('--dir', empty, '--stride', '10');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /no snap-10\.json/);
  });

  test('offline-rl: a Hopper dataset with env Ant-v5 exits 2 naming offline-rl.dataset', () => {
    const cwd = mkdtempSync(join(dir, 'run-'));
    const r = exp(['run', 'ant-medium.yaml', '--set', 'offline-rl.dataset=hopper-medium-expert'], {
      cwd,
      env: { MLFLOW_TRACKING_URI: '' },
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /offline-rl\.dataset: hopper-medium-expert is Hopper-v5 data; offline-rl\.env is Ant-v5/,
    );
  });
});
