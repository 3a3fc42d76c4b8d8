/**
 * `exp ui` as a user calls it (issue 15): after `exp run`, it starts MLflow's UI on ./mlruns,
 * prints the newest experiment's address in the model-training view, the UI serves that run and
 * the experiment carries the kind tag MLflow 3 reads; Ctrl-C stops MLflow with it. MLflow comes
 * from the test venv here (EXP_UI_MLFLOW) so CI does not install it twice; scripts/ui-env.sh is
 * what a user gets (checked by hand, see the README's Quick start).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { freePort } from '../helpers/mlflow.js';
import { venvBin } from '../helpers/python.js';
import { finished, outcome, runExp, spawnExp, tempDir, testEnv } from './util.js';

describe('exp ui', () => {
  const work = tempDir('ui');
  after(() => rmSync(work, { recursive: true, force: true }));

  test('after exp run: the UI shows the run in the training view; Ctrl-C stops MLflow', async () => {
    const r = await runExp(['run', 'toy.yaml', '--json', '--set', 'toy.steps=4'], {
      cwd: work,
      env: testEnv(work),
    });
    assert.equal(r.code, 0, r.stderr);
    const { run_id: runId, experiment_id: experimentId } = outcome(r);
    const port = await freePort();
    const child = spawnExp(['ui', '--no-open', '--port', String(port)], {
      cwd: work,
      env: testEnv(work, { EXP_UI_MLFLOW: join(venvBin(), 'mlflow') }),
    });
    let stdout = '';
    child.stdout?.on('data', (d) => {
      stdout += d;
    });
    const done = finished(child);
    const deadline = Date.now() + 150_000;
    while (!/MLflow UI: /.test(stdout) && Date.now() < deadline && child.exitCode === null)
      await new Promise((res) => setTimeout(res, 250));
    try {
      const url = /MLflow UI: (\S+)/.exec(stdout)?.[1];
      assert.equal(
        url,
        `http://127.0.0.1:${port}/#/experiments/${experimentId}?workflowType=machine_learning`,
      );
      const base = `http://127.0.0.1:${port}`;
      const html = await (await fetch(`${base}/`)).text();
      assert.match(html, /<title>MLflow<\/title>/i);
      const runs = (await (
        await fetch(`${base}/api/2.0/mlflow/runs/search`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ experiment_ids: [experimentId] }),
        })
      ).json()) as { runs: { info: { run_id: string } }[] };
      assert.deepEqual(
        runs.runs.map((x) => x.info.run_id),
        [runId],
      );
      const exp = (await (
        await fetch(`${base}/api/2.0/mlflow/experiments/get?experiment_id=${experimentId}`)
      ).json()) as {
        experiment: { tags?: { key: string; value: string }[] };
      };
      assert.deepEqual(
        exp.experiment.tags?.find((t) => t.key === 'mlflow.experimentKind'),
        { key: 'mlflow.experimentKind', value: 'custom_model_development' },
        'MLflow 3 opens an experiment without this tag in its GenAI view',
      );
    } finally {
      child.kill('SIGINT');
    }
    const end = await done;
    assert.equal(end.code, 0, end.stderr);
    // MLflow went with it: nothing answers on the port any more
    await assert.rejects(fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(3000) }));
  });

  test('no runs yet, or a bad port: exit 2 saying what to do', async () => {
    const empty = tempDir('ui-empty');
    const r = await runExp(['ui', '--no-open'], { cwd: empty, env: testEnv(empty) });
    rmSync(empty, { recursive: true, force: true });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /no runs at .*mlruns yet: run one first \(npx exp run toy\.yaml\)/);
    const p = await runExp(['ui', '--port', '70000'], { cwd: work, env: testEnv(work) });
    assert.equal(p.code, 2, p.stderr);
    assert.match(p.stderr, /--port: expected an integer in 1…65535; got 70000/);
  });
});
