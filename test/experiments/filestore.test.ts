/**
 * The local file store: `exp run` writes ./mlruns in MLflow's layout and Python's MlflowClient
 * (MLFLOW_ALLOW_FILE_STORE=true) reads it back: params, metric histories with steps, tags, the
 * dataset input, artifacts (config, checkpoints, JSON + Arrow tables, SVG plot). A failing run ends
 * FAILED with the reason as a tag. `exp runs list/show` read the same runs.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pythonJson } from '../helpers/python.js';
import { outcome, runExp, tempDir, testEnv } from './util.js';

describe('file store: exp run → MLflow reads it', () => {
  const work = tempDir('filestore');
  const store = join(work, 'mlruns');
  const env = testEnv(work);
  let runId = '';

  before(async () => {
    const [ok, failed] = await Promise.all([
      runExp(
        [
          'run',
          'toy.yaml',
          '--tracking-uri',
          store,
          '--json',
          '--seed',
          '4',
          '--set',
          'toy.steps=40',
          '--set',
          'toy.evalEvery=10',
          '--set',
          'checkpoint.every=20',
          '--set',
          'tracking.systemMetricsEverySec=0.2',
          '--set',
          'toy.stepDelayMs=15',
          '--set',
          'runName=fs-ok',
        ],
        { env },
      ),
      runExp(
        [
          'run',
          'toy.yaml',
          '--tracking-uri',
          store,
          '--json',
          '--set',
          'toy.failAtStep=5',
          '--set',
          'runName=fs-fail',
        ],
        {
          env,
        },
      ),
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    runId = outcome(ok).run_id;
    assert.equal(failed.code, 1, `a failing recipe exits 1: ${failed.stderr}`);
    assert.match(failed.stderr, /toy: failing at step 5/);
  });

  test('Python MlflowClient reads params, metric histories, tags, inputs and artifacts', async () => {
    const py = await pythonJson<{
      status: string;
      name: string;
      params: Record<string, string>;
      tags: Record<string, string>;
      train: [number, number][];
      evalSteps: number[];
      system: string[];
      inputs: { name: string; digest: string; source_type: string; context: string[] }[];
      artifacts: string[];
      checkpoints: string[];
      arrow: { columns: string[]; rows: number; steps: number[] };
      df: { rows: number; hasLoss: boolean };
      failed: { status: string; reason: string; runs: number };
    }>(
      `
import json, mlflow, pyarrow as pa
from mlflow import MlflowClient
uri = ${JSON.stringify(`file://${store}`)}
c = MlflowClient(uri)
r = c.get_run(${JSON.stringify(runId)})
h = c.get_metric_history(r.info.run_id, "train/loss")
ev = c.get_metric_history(r.info.run_id, "eval/loss")
arts = [a.path for a in c.list_artifacts(r.info.run_id)] + [a.path for a in c.list_artifacts(r.info.run_id, "tables")] + [a.path for a in c.list_artifacts(r.info.run_id, "plots")]
ck = [a.path for a in c.list_artifacts(r.info.run_id, "checkpoints")]
local = c.download_artifacts(r.info.run_id, "tables/eval_curve.arrow")
t = pa.ipc.open_file(local).read_all()
exp = c.get_experiment_by_name("toy")
mlflow.set_tracking_uri(uri)
df = mlflow.search_runs(experiment_ids=[exp.experiment_id], filter_string="attributes.run_name = 'fs-ok'")
f = c.search_runs([exp.experiment_id], filter_string="attributes.run_name = 'fs-fail'")
print(json.dumps({
  "status": r.info.status, "name": r.info.run_name,
  "params": r.data.params, "tags": r.data.tags,
  "train": [[m.step, m.value] for m in h], "evalSteps": [m.step for m in ev],
  "system": sorted(k for k in r.data.metrics if k.startswith("system/")),
  "inputs": [{"name": d.dataset.name, "digest": d.dataset.digest, "source_type": d.dataset.source_type, "context": [t.value for t in d.tags if t.key == "mlflow.data.context"]} for d in r.inputs.dataset_inputs],
  "artifacts": arts, "checkpoints": ck,
  "arrow": {"columns": t.column_names, "rows": t.num_rows, "steps": t.column("step").to_pylist()},
  "df": {"rows": len(df), "hasLoss": "metrics.train/loss" in df.columns},
  "failed": {"status": f[0].info.status, "reason": f[0].data.tags.get("exp.status_reason", ""), "runs": len(f)},
}))
`,
      { env: { MLFLOW_ALLOW_FILE_STORE: 'true' } },
    );
    assert.equal(py.status, 'FINISHED');
    assert.equal(py.name, 'fs-ok');
    // flattened config as params
    assert.equal(py.params['toy.steps'], '40');
    assert.equal(py.params.seed, '4');
    assert.equal(py.params['checkpoint.every'], '20');
    assert.equal(py.params.recipe, 'toy');
    // tags
    assert.match(py.tags['mlflow.source.git.commit'], /^[0-9a-f]{40}$/);
    assert.ok(['true', 'false'].includes(py.tags['exp.git.dirty']));
    assert.equal(py.tags['exp.backend'], 'wasm');
    assert.equal(py.tags['exp.device_count'], '1');
    assert.ok(py.tags['exp.host']);
    assert.ok(py.tags['exp.version.tfjs']);
    assert.equal(py.tags['mlflow.runName'], 'fs-ok');
    // metric histories with steps
    assert.deepEqual(
      py.train.map(([s]) => s),
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
    assert.ok(py.train[39][1] < py.train[0][1], 'the loss goes down');
    assert.deepEqual(py.evalSteps, [10, 20, 30, 40]);
    // MLflow's own system metric names (issue 15; test/experiments/mlflow-interop.test.ts
    // checks them against MLflow's monitors), plus two per-process ones
    assert.deepEqual(py.system, [
      'system/cpu_utilization_percentage',
      'system/disk_available_megabytes',
      'system/disk_usage_megabytes',
      'system/disk_usage_percentage',
      'system/process_cpu_utilization_percentage',
      'system/process_memory_rss_megabytes',
      'system/system_memory_usage_megabytes',
      'system/system_memory_usage_percentage',
    ]);
    // dataset input
    assert.equal(py.inputs.length, 1);
    assert.equal(py.inputs[0].name, 'toy-sine');
    assert.match(py.inputs[0].digest, /^[0-9a-f]{16}$/);
    assert.deepEqual(py.inputs[0].context, ['training']);
    // artifacts
    for (const a of [
      'checkpoints',
      'config.yaml',
      'tables/eval_curve.json',
      'tables/eval_curve.arrow',
      'plots/learning_curve.svg',
    ])
      assert.ok(py.artifacts.includes(a), `artifact ${a} in ${py.artifacts}`);
    assert.deepEqual(py.checkpoints, ['checkpoints/step-00000020', 'checkpoints/step-00000040']);
    assert.deepEqual(py.arrow, { columns: ['step', 'eval_loss'], rows: 4, steps: [10, 20, 30, 40] });
    assert.deepEqual(py.df, { rows: 1, hasLoss: true });
    // the failing run
    assert.equal(py.failed.runs, 1);
    assert.equal(py.failed.status, 'FAILED');
    assert.match(py.failed.reason, /toy: failing at step 5/);
  });

  test('mlflow migrate-filestore converts the store to SQLite with runs, metrics and inputs intact', async () => {
    const db = join(work, 'migrated.db');
    const py = await pythonJson<{ runs: string[]; points: number; inputs: number }>(
      `
import json, subprocess, sys
from mlflow import MlflowClient
subprocess.run([sys.executable, "-m", "mlflow", "migrate-filestore", "--source", ${JSON.stringify(store)}, "--target", "sqlite:///${db}", "--no-progress"], check=True, stdout=subprocess.DEVNULL)
c = MlflowClient("sqlite:///${db}")
exp = c.get_experiment_by_name("toy")
runs = c.search_runs([exp.experiment_id])
ok = [r for r in runs if r.info.run_name == "fs-ok"][0]
print(json.dumps({"runs": sorted(f"{r.info.run_name} {r.info.status}" for r in runs),
  "points": len(c.get_metric_history(ok.info.run_id, "train/loss")), "inputs": len(ok.inputs.dataset_inputs)}))
`,
      { env: { MLFLOW_ALLOW_FILE_STORE: 'true' } },
    );
    assert.deepEqual(py, { runs: ['fs-fail FAILED', 'fs-ok FINISHED'], points: 40, inputs: 1 });
  });

  test('exp runs list / show read the runs back', async () => {
    const list = await runExp(['runs', 'list', '--tracking-uri', store, '--json', '--experiment', 'toy'], {
      env,
    });
    assert.equal(list.code, 0, list.stderr);
    const rows = JSON.parse(list.stdout) as { run_id: string; status: string; run_name: string }[];
    assert.deepEqual(rows.map((r) => `${r.run_name} ${r.status}`).sort(), [
      'fs-fail FAILED',
      'fs-ok FINISHED',
    ]);
    const show = await runExp(['runs', 'show', runId, '--tracking-uri', store, '--json'], { env });
    assert.equal(show.code, 0, show.stderr);
    const run = JSON.parse(show.stdout) as {
      params: Record<string, string>;
      metrics: Record<string, number>;
      artifacts: string[];
    };
    assert.equal(run.params['toy.steps'], '40');
    assert.ok(run.metrics['eval/loss'] > 0);
    assert.ok(run.artifacts.includes('config.yaml'));
    const text = await runExp(['runs', 'show', runId, '--tracking-uri', store], { env });
    assert.match(text.stdout, /metrics \(latest\):\n {2}eval\/loss = /);
    const missing = await runExp(['runs', 'show', 'f'.repeat(32), '--tracking-uri', store], { env });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /run 'f{32}' not found/);
  });

  after(() => {
    // temp folders are left for inspection on failure; nothing runs in the background
  });
});
