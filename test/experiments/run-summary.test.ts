/**
 * The end of a run as a user reads it (issue 15): one status line on stdout with the final and
 * best score (also with --quiet), a summary on stderr saying where the run is and how to open
 * it; run names that say what differs; `exp runs list` with score, duration and the params that
 * differ; `exp runs show` by a unique start of the id.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { recipeByName } from '../../experiments/recipes/index.js';
import { FileStore } from '../../experiments/tracking/index.js';
import { outcome, runExp, tempDir, testEnv } from './util.js';

describe('end of a run, names, runs list/show', () => {
  const work = tempDir('summary');
  const store = join(work, 'mlruns');
  const env = testEnv(work);
  after(() => rmSync(work, { recursive: true, force: true }));
  const ids: string[] = [];

  test('one status line with the final and best score; a summary with where and how to open', async () => {
    const r = await runExp(
      ['run', 'toy.yaml', '--seed', '5', '--set', 'toy.steps=12', '--set', 'toy.evalEvery=4'],
      {
        cwd: work,
        env,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout.trim().split('\n');
    assert.equal(out.length, 1, `stdout: ${r.stdout}`);
    const m = /^([0-9a-f]{32}) FINISHED score (\S+) \(best (\S+), eval\/loss\)$/.exec(out[0]);
    assert.ok(m, out[0]);
    ids.push(m[1]);
    // the numbers are the run's eval/loss: the last point and the smallest
    const history = await new FileStore(store).getMetricHistory(m[1], 'eval/loss');
    assert.deepEqual(
      history.map((p) => p.step),
      [4, 8, 12],
    );
    const fmt = (v: number) => Number(v.toPrecision(4)).toString();
    assert.equal(m[2], fmt(history[2].value));
    assert.equal(m[3], fmt(Math.min(...history.map((p) => p.value))));
    assert.equal(`${r.stdout}${r.stderr}`.match(/FINISHED/g)?.length, 1, 'FINISHED printed once');
    assert.match(r.stderr, new RegExp(`run toy-seed5 \\(${m[1]}\\) took \\d+s`));
    assert.match(r.stderr, /score: \S+ \(best \S+, eval\/loss\)/);
    assert.match(r.stderr, /where: file:\/\/.*mlruns, experiment toy/);
    assert.match(r.stderr, new RegExp(`open: {2}npx exp ui {2}· {2}npx exp runs show ${m[1].slice(0, 8)}`));
  });

  test('--quiet still prints the score; --json carries it', async () => {
    const q = await runExp(['run', 'toy.yaml', '--quiet', '--seed', '6', '--set', 'toy.steps=8'], {
      cwd: work,
      env,
    });
    assert.equal(q.code, 0, q.stderr);
    assert.match(q.stdout, /^[0-9a-f]{32} FINISHED score \S+ \(best \S+, eval\/loss\)\n$/);
    assert.equal(q.stderr, '');
    ids.push(q.stdout.slice(0, 32));
    const j = await runExp(['run', 'toy.yaml', '--json', '--seed', '7', '--set', 'toy.steps=8'], {
      cwd: work,
      env,
    });
    const o = outcome(j) as ReturnType<typeof outcome> & {
      score?: { metric: string; final: number; best: number };
    };
    assert.equal(o.score?.metric, 'eval/loss');
    assert.ok(
      Number.isFinite(o.score?.final) && (o.score?.best ?? Infinity) <= (o.score?.final ?? -Infinity),
    );
    ids.push(o.run_id);
  });

  test('run names say what differs: AT, DT, BC and ring devices of offline-rl', () => {
    const recipe = recipeByName('offline-rl');
    // runLabel reads these three fields of the recipe's section
    const label = (algo: string, attention: string, devices: number) =>
      recipe?.runLabel?.({ algo, model: { attention, devices } });
    assert.equal(label('at', 'blockwise', 1), 'at-blockwise');
    assert.equal(label('dt', 'blockwise', 1), 'dt-blockwise');
    assert.equal(label('at', 'ring', 4), 'at-ring-n4');
    assert.equal(label('bc', 'blockwise', 1), 'bc');
  });

  test('checkpoints with a file store: one copy (the artifact), none left in the work folder', async () => {
    const r = await runExp(
      ['run', 'toy.yaml', '--json', '--seed', '8', '--set', 'toy.steps=8', '--set', 'checkpoint.every=4'],
      {
        cwd: work,
        env,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const { run_id: runId } = outcome(r);
    const arts = await new FileStore(store).listArtifacts(runId, 'checkpoints');
    assert.deepEqual(
      arts.map((a) => a.path),
      ['checkpoints/step-00000004', 'checkpoints/step-00000008'],
    );
    const local = join(work, '.exp', 'runs', runId, 'checkpoints');
    assert.deepEqual(existsSync(local) ? readdirSync(local) : [], [], `local copies in ${local}`);
    ids.push(runId);
  });

  test("checkpoint.keepArtifacts: the run's artifacts keep the newest 2 by default, 1 or all when asked", async () => {
    const kept = async (extra: string[]) => {
      const r = await runExp(
        ['run', 'toy.yaml', '--json', '--set', 'toy.steps=12', '--set', 'checkpoint.every=4', ...extra],
        { cwd: work, env },
      );
      assert.equal(r.code, 0, r.stderr);
      const arts = await new FileStore(store).listArtifacts(outcome(r).run_id, 'checkpoints');
      return arts.map((a) => Number(a.path.slice(-8)));
    };
    assert.deepEqual(await kept([]), [8, 12]);
    assert.deepEqual(await kept(['--set', 'checkpoint.keepArtifacts=1']), [12]);
    assert.deepEqual(await kept(['--set', 'checkpoint.keepArtifacts=0']), [4, 8, 12]);
  });

  test('exp runs list: score, duration and the params that differ; show by a unique id start', async () => {
    const list = await runExp(['runs', 'list', '--tracking-uri', store], { cwd: work, env });
    assert.equal(list.code, 0, list.stderr);
    const lines = list.stdout.trim().split('\n');
    assert.match(lines[0], /score .* took .* differs/);
    for (const id of ids) {
      const line = lines.find((l) => l.startsWith(id.slice(0, 8)));
      assert.ok(line, `run ${id} listed`);
      assert.match(line, /FINISHED +toy +toy-seed\d +\S+ eval\/loss +\d+s +\S+ +.*seed=\d.*steps=\d+/);
    }
    const show = await runExp(['runs', 'show', ids[0].slice(0, 7), '--tracking-uri', store], {
      cwd: work,
      env,
    });
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`^run ${ids[0]} \\(toy-seed5\\) FINISHED`));
    const none = await runExp(['runs', 'show', 'fffffffffff', '--tracking-uri', store], { cwd: work, env });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no run id starts with 'fffffffffff'/);
    // a one-digit start shared by two runs, if there is one, is refused naming them
    const first = ids.map((i) => i[0]).find((c, k, all) => all.indexOf(c) !== k);
    if (first) {
      const amb = await runExp(['runs', 'show', first, '--tracking-uri', store], { cwd: work, env });
      assert.equal(amb.code, 2);
      assert.match(amb.stderr, /is the start of \d+ run ids/);
    }
  });
});
