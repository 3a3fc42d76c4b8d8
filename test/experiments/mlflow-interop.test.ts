/**
 * What MLflow's own Python API makes of a run we log to a real server (issue 15): the dataset
 * input's source and schema (`mlflow.data.get_source`, `Schema.from_json`), result tables
 * (`MlflowClient.load_table`), system metrics under MLflow's own names (checked against MLflow's
 * monitors) even for a run shorter than the sampling interval, and `RunInfo.user_id`.
 */
import assert from 'node:assert/strict';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Rng } from '../../common/index.js';
import { boxSpace, writeEpisodes } from '../../datasets/index.js';
import { type MlflowServer, startMlflowServer } from '../helpers/mlflow.js';
import { pythonJson } from '../helpers/python.js';
import { outcome, repoRoot, runExp, tempDir, testEnv } from './util.js';

/** Random Pendulum-shaped episodes (values only matter to the digest). */
function episodes(n: number, seed: number) {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const T = 10 + rng.int(10);
    return {
      observations: rng.normalArray((T + 1) * 3),
      actions: Float32Array.from({ length: T }, () => Math.tanh(rng.normal())),
      rewards: Float64Array.from({ length: T }, () => -rng.next()),
      terminations: Array.from({ length: T }, () => false),
      truncations: Array.from({ length: T }, (_, t) => t === T - 1),
    };
  });
}

interface LoggedModels {
  models: { name: string; type: string; status: string; run: string; id: string }[];
  outputs: string[];
  signature: { inputs: unknown; outputs: unknown };
  weights: number;
  lengths: number;
}

/** What MLflow's API says of the run's logged models (search, get_model_info, files, run outputs). */
const loggedModels = (uri: string, experimentId: string, runId: string) => `
import json, os, tempfile, mlflow
from mlflow import MlflowClient
mlflow.set_tracking_uri(${JSON.stringify(uri)})
c = MlflowClient()
ms = c.search_logged_models(experiment_ids=[${JSON.stringify(experimentId)}])
run = c.get_run(${JSON.stringify(runId)})
m = [x for x in ms if x.source_run_id == ${JSON.stringify(runId)}][0]
info = mlflow.models.get_model_info(f"models:/{m.model_id}")
d = mlflow.artifacts.download_artifacts(f"models:/{m.model_id}", dst_path=tempfile.mkdtemp())
policy = json.load(open(os.path.join(d, "policy.json")))
print(json.dumps({
  "models": [{"name": x.name, "type": x.model_type, "status": str(x.status), "run": x.source_run_id, "id": x.model_id} for x in ms],
  "outputs": [o.model_id for o in run.outputs.model_outputs] if run.outputs else [],
  "signature": info.signature.to_dict(),
  "weights": os.path.getsize(os.path.join(d, "weights.bin")),
  "lengths": sum(policy["weight_lengths"]),
}))
`;

function checkPolicyModel(py: LoggedModels, runId: string): void {
  assert.equal(py.models.length, 1, JSON.stringify(py.models));
  const [m] = py.models;
  assert.deepEqual(
    { name: m.name, type: m.type, status: m.status, run: m.run },
    {
      name: 'policy',
      type: 'behaviour-cloning',
      status: 'READY',
      run: runId,
    },
  );
  assert.deepEqual(py.outputs, [m.id], 'the model is an output of the run');
  assert.deepEqual(JSON.parse(py.signature.inputs as string), [
    { type: 'tensor', 'tensor-spec': { dtype: 'float32', shape: [-1, 3] }, name: 'observation' },
  ]);
  assert.deepEqual(JSON.parse(py.signature.outputs as string), [
    { type: 'tensor', 'tensor-spec': { dtype: 'float32', shape: [-1, 1] }, name: 'action' },
  ]);
  assert.ok(py.lengths > 0);
  assert.equal(py.weights, 4 * py.lengths, 'weights.bin holds every weight as float32');
}

interface Seen {
  source: { type: string; uri: string };
  schema: { name: string; type: string }[];
  userId: string;
  userTag: string;
  table: { columns: string[]; rows: number[][] };
  arrow: { columns: string[]; rows: number[][] };
  ours: string[];
  mlflowNames: string[];
  systemPoints: number;
  checkpoints: string[];
}

describe('MLflow reads our run as its own (server)', () => {
  const work = tempDir('mlflow-interop');
  let server: MlflowServer;
  const seed = Date.now() % 10000;
  const dataset = join(work, 'pendulum.arrow');

  before(async () => {
    server = await startMlflowServer(join(work, 'server'));
    writeEpisodes(
      dataset,
      {
        datasetId: 'test/pendulum-random-v0',
        observationSpace: boxSpace(3),
        actionSpace: boxSpace(1, 'float32', -2, 2),
        envId: 'Pendulum-v1',
      },
      episodes(8, seed),
    );
  });
  after(async () => {
    await server?.stop();
  });

  test(`offline-rl (BC) run: dataset source + schema, load_table, system metrics, user_id (seed ${seed})`, async () => {
    const r = await runExp(
      [
        'run',
        join(repoRoot, 'test/fixtures/offline-rl-tiny.yaml'),
        '--json',
        '--set',
        `offline-rl.dataset=${dataset}`,
        '--set',
        'offline-rl.algo=bc',
        // longer than the run: only the last sample at the end of the run is logged
        '--set',
        'tracking.systemMetricsEverySec=3600',
        // checkpoints at 2, 4, 6: the oldest is deleted over the artifact proxy (keepArtifacts 2)
        '--set',
        'checkpoint.every=2',
      ],
      { cwd: work, env: testEnv(work, { MLFLOW_TRACKING_URI: server.uri }) },
    );
    assert.equal(r.code, 0, r.stderr);
    const o = outcome(r);
    const py = await pythonJson<Seen>(`
import json, mlflow, pyarrow as pa
from mlflow import MlflowClient
from mlflow.types import Schema
from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor
from mlflow.system_metrics.metrics.disk_monitor import DiskMonitor
mlflow.set_tracking_uri(${JSON.stringify(server.uri)})
c = MlflowClient()
rid = ${JSON.stringify(o.run_id)}
run = c.get_run(rid)
ds = run.inputs.dataset_inputs[0].dataset
src = mlflow.data.get_source(ds)
schema = Schema.from_json(json.dumps(json.loads(ds.schema)["mlflow_colspec"]))
df = c.load_table(${JSON.stringify(o.experiment_id)}, artifact_file="tables/evaluations.json", run_ids=[rid])
t = pa.ipc.open_file(c.download_artifacts(rid, "tables/evaluations.arrow")).read_all()
names = set()
for m in (CPUMonitor(), DiskMonitor()):
    m.collect_metrics()
    names |= {"system/" + k for k in m.metrics}
ours = sorted(k for k in run.data.metrics if k.startswith("system/"))
print(json.dumps({
  "source": {"type": type(src).__name__, "uri": src.uri},
  "schema": [{"name": s.name, "type": str(s.type)} for s in schema.inputs],
  "userId": run.info.user_id, "userTag": run.data.tags.get("mlflow.user", ""),
  "table": {"columns": [c for c in df.columns if c != "run_id"], "rows": df.drop(columns=["run_id"], errors="ignore").fillna(-1).values.tolist()},
  "arrow": {"columns": t.column_names, "rows": t.to_pandas().fillna(-1).values.tolist()},
  "ours": ours, "mlflowNames": sorted(names),
  "systemPoints": len(c.get_metric_history(rid, "system/cpu_utilization_percentage")),
  "checkpoints": sorted(a.path for a in c.list_artifacts(rid, "checkpoints")),
}))
`);
    // the dataset input: MLflow's LocalArtifactDatasetSource and a parsed, non-empty schema
    assert.deepEqual(py.source, { type: 'LocalArtifactDatasetSource', uri: dataset });
    const names = py.schema.map((s) => s.name);
    for (const col of ['observations', 'actions', 'rewards', 'terminations', 'truncations'])
      assert.ok(names.includes(col), `schema column ${col} in ${names}`);
    // tables: load_table finds the table and reads the same rows as the Arrow copy
    assert.deepEqual(py.table.columns, py.arrow.columns);
    assert.ok(py.table.rows.length > 0);
    assert.deepEqual(py.table.rows, py.arrow.rows);
    // system metrics: every name MLflow's CPU and disk monitors log, and a point for a short run
    for (const n of py.mlflowNames)
      assert.ok(py.ours.includes(n), `system metric ${n} (MLflow's) missing: ${py.ours}`);
    assert.equal(py.systemPoints, 1, 'one sample at the end of a run shorter than the interval');
    assert.deepEqual(py.checkpoints, ['checkpoints/step-00000004', 'checkpoints/step-00000006']);
    // RunInfo.user_id is the user, as mlflow.user
    assert.equal(py.userId, userInfo().username);
    assert.equal(py.userTag, py.userId);
    // the trained policy is a logged model with a signature, linked to the run
    checkPolicyModel(
      await pythonJson<LoggedModels>(loggedModels(server.uri, o.experiment_id, o.run_id)),
      o.run_id,
    );
  });

  test('file store: the trained policy is a logged model MLflow lists and reads', async () => {
    const store = join(work, 'mlruns-models');
    const r = await runExp(
      [
        'run',
        join(repoRoot, 'test/fixtures/offline-rl-tiny.yaml'),
        '--json',
        '--set',
        `offline-rl.dataset=${dataset}`,
        '--set',
        'offline-rl.algo=bc',
        '--set',
        'tracking.systemMetricsEverySec=0',
      ],
      { cwd: work, env: testEnv(work, { MLFLOW_TRACKING_URI: store }) },
    );
    assert.equal(r.code, 0, r.stderr);
    const o = outcome(r);
    assert.match(r.stderr, /logged model m-[0-9a-f]{32} \(models:\/m-[0-9a-f]{32}\)/);
    checkPolicyModel(
      await pythonJson<LoggedModels>(loggedModels(`file://${store}`, o.experiment_id, o.run_id), {
        env: { MLFLOW_ALLOW_FILE_STORE: 'true' },
      }),
      o.run_id,
    );
  });

  test('an experiment whose artifact root the server cannot serve: the error says how to recover, and the recovery works', async () => {
    const made = await pythonJson<{ id: string }>(`
import json
from mlflow import MlflowClient
c = MlflowClient(${JSON.stringify(server.uri)})
print(json.dumps({"id": c.create_experiment("unserved", artifact_location=${JSON.stringify(join(work, 'server-local-root'))})}))
`);
    const run = (experiment: string) =>
      runExp(['run', 'toy.yaml', '--json', '--set', 'toy.steps=4', '--set', `experiment=${experiment}`], {
        cwd: work,
        env: testEnv(work, { MLFLOW_TRACKING_URI: server.uri }),
      });
    const bad = await run('unserved');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /cannot reach: the server must serve artifacts/);
    assert.match(bad.stderr, /--set experiment=NEW_NAME/);
    assert.match(bad.stderr, /mlflow experiments delete -x ID/);
    // the first way out the message gives: a new experiment
    const good = await run('unserved-2');
    assert.equal(good.code, 0, good.stderr);
    assert.notEqual(outcome(good).experiment_id, made.id);
  });
});
