/**
 * A real MLflow tracking server (SQLite backend, artifact proxy) on 127.0.0.1: `exp run` logs
 * through REST and Python's MlflowClient reads everything back; log-batch splits big batches
 * within MLflow's limits; the auth token is never logged; and a server killed mid-run and
 * restarted loses no metric point (spool and replay).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RestStore } from '../../experiments/tracking/index.js';
import { type MlflowServer, startMlflowServer } from '../helpers/mlflow.js';
import { pythonJson } from '../helpers/python.js';
import {
  finished,
  outcome,
  runExp,
  runIdFromStderr,
  spawnExp,
  tempDir,
  testEnv,
  waitForStep,
} from './util.js';

const TOKEN = 'tok-7f3a9c-never-logged';

describe('MLflow server over REST', () => {
  const work = tempDir('server');
  let server: MlflowServer;

  before(async () => {
    server = await startMlflowServer(join(work, 'server'));
  });
  after(async () => {
    await server?.stop();
  });

  test('exp run → REST → Python reads params, metric histories, tags, dataset input, artifacts', async () => {
    const r = await runExp(
      [
        'run',
        'toy.yaml',
        '--json',
        '--seed',
        '2',
        '--set',
        'toy.steps=30',
        '--set',
        'toy.evalEvery=10',
        '--set',
        'checkpoint.every=15',
        '--set',
        'experiment=rest-toy',
      ],
      { env: testEnv(work, { MLFLOW_TRACKING_URI: server.uri, MLFLOW_TRACKING_TOKEN: TOKEN }) },
    );
    assert.equal(r.code, 0, r.stderr);
    const o = outcome(r);
    assert.equal(o.tracking_uri, server.uri);
    assert.ok(!r.stderr.includes(TOKEN) && !r.stdout.includes(TOKEN), 'the token is not printed');
    const py = await pythonJson<{
      status: string;
      params: Record<string, string>;
      tags: Record<string, string>;
      steps: number[];
      evalSteps: number[];
      inputs: { name: string; digest: string; context: string[] }[];
      artifacts: string[];
      checkpoint: string[];
      arrowRows: number;
      parentExp: string;
    }>(`
import json, mlflow, pyarrow as pa
from mlflow import MlflowClient
c = MlflowClient(${JSON.stringify(server.uri)})
r = c.get_run(${JSON.stringify(o.run_id)})
rid = r.info.run_id
arrow = c.download_artifacts(rid, "tables/eval_curve.arrow")
print(json.dumps({
  "status": r.info.status, "params": r.data.params, "tags": r.data.tags,
  "steps": [m.step for m in c.get_metric_history(rid, "train/loss")],
  "evalSteps": [m.step for m in c.get_metric_history(rid, "eval/loss")],
  "inputs": [{"name": d.dataset.name, "digest": d.dataset.digest, "context": [t.value for t in d.tags if t.key == "mlflow.data.context"]} for d in r.inputs.dataset_inputs],
  "artifacts": sorted(a.path for a in c.list_artifacts(rid)),
  "checkpoint": sorted(a.path for a in c.list_artifacts(rid, "checkpoints/step-00000030")),
  "arrowRows": pa.ipc.open_file(arrow).read_all().num_rows,
  "parentExp": c.get_experiment(r.info.experiment_id).name,
}))
`);
    assert.equal(py.status, 'FINISHED');
    assert.equal(py.parentExp, 'rest-toy');
    assert.equal(py.params['toy.steps'], '30');
    assert.equal(py.params.seed, '2');
    assert.equal(py.tags['exp.recipe'], 'toy');
    assert.match(py.tags['mlflow.source.git.commit'], /^[0-9a-f]{40}$/);
    assert.deepEqual(
      py.steps,
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    assert.deepEqual(py.evalSteps, [10, 20, 30]);
    assert.equal(py.inputs.length, 1);
    assert.equal(py.inputs[0].name, 'toy-sine');
    assert.deepEqual(py.inputs[0].context, ['training']);
    assert.deepEqual(py.artifacts, ['checkpoints', 'config.yaml', 'plots', 'tables']);
    assert.deepEqual(py.checkpoint, [
      'checkpoints/step-00000030/checkpoint.json',
      'checkpoints/step-00000030/tensors.bin',
    ]);
    assert.equal(py.arrowRows, 3);
    for (const [k, v] of [...Object.entries(py.params), ...Object.entries(py.tags)])
      assert.ok(!v.includes(TOKEN), `${k} does not carry the token`);
    const list = await runExp(['runs', 'list', '--experiment', 'rest-toy', '--json'], {
      env: testEnv(work, { MLFLOW_TRACKING_URI: server.uri }),
    });
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      (JSON.parse(list.stdout) as { run_id: string; status: string }[]).map((x) => `${x.run_id} ${x.status}`),
      [`${o.run_id} FINISHED`],
    );
  });

  test('log-batch splits 2500 metrics, 250 params (1.5 MB) and 150 tags within the limits', async () => {
    const store = new RestStore(server.uri, { spoolDir: join(work, 'spool-batch') });
    const exp = await store.ensureExperiment('batch-limits');
    const info = await store.createRun({
      experimentId: exp,
      runName: 'big-batch',
      startTime: Date.now(),
      tags: [],
    });
    const t0 = Date.now();
    await store.logBatch(info.runId, {
      metrics: Array.from({ length: 2500 }, (_, i) => ({
        key: 'train/x',
        value: i / 10,
        step: i,
        timestamp: t0 + i,
      })),
      params: Array.from({ length: 250 }, (_, i) => ({ key: `p${i}`, value: `${i}:${'v'.repeat(5990)}` })),
      tags: Array.from({ length: 150 }, (_, i) => ({ key: `t${i}`, value: String(i) })),
    });
    await store.updateRun(info.runId, 'FINISHED', Date.now());
    assert.deepEqual(await store.close(1000), { pending: 0 });
    const history = await store.getMetricHistory(info.runId, 'train/x');
    assert.equal(history.length, 2500);
    const py = await pythonJson<{
      n: number;
      steps: number;
      params: number;
      tags: number;
      p7: string;
      status: string;
    }>(`
import json
from mlflow import MlflowClient
c = MlflowClient(${JSON.stringify(server.uri)})
r = c.get_run(${JSON.stringify(info.runId)})
h = c.get_metric_history(r.info.run_id, "train/x")
print(json.dumps({"n": len(h), "steps": len({m.step for m in h}), "params": len(r.data.params),
  "tags": len([k for k in r.data.tags if k.startswith("t")]), "p7": r.data.params["p7"][:2], "status": r.info.status}))
`);
    assert.deepEqual(py, { n: 2500, steps: 2500, params: 250, tags: 150, p7: '7:', status: 'FINISHED' });
  });

  test('the server is killed mid-run and restarted: the run completes with every metric point', async () => {
    const steps = 150;
    const child = spawnExp(
      [
        'run',
        'toy.yaml',
        '--json',
        '--set',
        `toy.steps=${steps}`,
        '--set',
        'toy.evalEvery=10',
        '--set',
        'toy.stepDelayMs=40',
        '--set',
        'checkpoint.every=25',
        // every checkpoint stays (the default keeps the newest 2; issue 15)
        '--set',
        'checkpoint.keepArtifacts=0',
        '--set',
        'tracking.flushEverySec=0.3',
        '--set',
        'tracking.systemMetricsEverySec=0.5',
        '--set',
        'tracking.finishTimeoutSec=600', // a restart on a loaded machine can be slow
        '--set',
        'experiment=outage',
      ],
      { env: testEnv(work, { MLFLOW_TRACKING_URI: server.uri }) },
    );
    const done = finished(child);
    const id = await runIdFromStderr(child);
    await waitForStep(new RestStore(server.uri, { spoolDir: join(work, 'unused') }), id, 'train/loss', 20);
    await server.kill();
    await new Promise((r) => setTimeout(r, 2500));
    await server.restart();
    const r = await done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /spooling to/, 'metrics were spooled while the server was down');
    assert.match(r.stderr, /is back; replayed \d+ spooled requests/);
    const o = outcome(r);
    const py = await pythonJson<{
      status: string;
      steps: number[];
      evalSteps: number[];
      checkpoints: string[];
      system: number;
    }>(`
import json
from mlflow import MlflowClient
c = MlflowClient(${JSON.stringify(server.uri)})
rid = ${JSON.stringify(o.run_id)}
r = c.get_run(rid)
print(json.dumps({"status": r.info.status,
  "steps": sorted(m.step for m in c.get_metric_history(rid, "train/loss")),
  "evalSteps": sorted(m.step for m in c.get_metric_history(rid, "eval/loss")),
  "checkpoints": sorted(a.path for a in c.list_artifacts(rid, "checkpoints")),
  "system": len(c.get_metric_history(rid, "system/cpu_utilization_percentage"))}))
`);
    assert.equal(py.status, 'FINISHED');
    assert.deepEqual(
      py.steps,
      Array.from({ length: steps }, (_, i) => i + 1),
      'every train/loss point, once',
    );
    assert.deepEqual(
      py.evalSteps,
      Array.from({ length: steps / 10 }, (_, i) => 10 * (i + 1)),
    );
    assert.deepEqual(
      py.checkpoints,
      [25, 50, 75, 100, 125, 150].map((s) => `checkpoints/step-${String(s).padStart(8, '0')}`),
    );
    assert.ok(py.system >= 5, `system metrics sampled (${py.system})`);
  });

  test('SIGINT, then --resume on another work folder: the checkpoint comes from the server', async () => {
    const args = [
      '--json',
      '--seed',
      '5',
      '--set',
      'toy.steps=60',
      '--set',
      'checkpoint.every=10',
      '--set',
      'experiment=rest-resume',
    ];
    const child = spawnExp(
      ['run', 'toy.yaml', ...args, '--set', 'toy.stepDelayMs=40', '--set', 'tracking.flushEverySec=0.2'],
      { env: testEnv(join(work, 'a'), { MLFLOW_TRACKING_URI: server.uri }) },
    );
    const done = finished(child);
    const id = await runIdFromStderr(child);
    await waitForStep(new RestStore(server.uri, { spoolDir: join(work, 'unused') }), id, 'train/loss', 15);
    child.kill('SIGINT');
    const killed = await done;
    assert.equal(killed.code, 130, killed.stderr);
    const runId = outcome(killed).run_id;
    const store = new RestStore(server.uri, { spoolDir: join(work, 'unused') });
    const run = await store.getRun(runId);
    assert.equal(run.info.status, 'KILLED');
    assert.match(run.tags['exp.status_reason'], /interrupted by SIGINT/);
    // Another work folder: nothing local, so --resume must download the checkpoint.
    const resumed = await runExp(['run', '--resume', runId, '--json'], {
      env: testEnv(join(work, 'b'), { MLFLOW_TRACKING_URI: server.uri }),
    });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(outcome(resumed).status, 'FINISHED');
    const ref = await runExp(['run', 'toy.yaml', ...args], {
      env: testEnv(join(work, 'c'), { MLFLOW_TRACKING_URI: server.uri }),
    });
    const refId = outcome(ref).run_id;
    for (const key of ['train/loss', 'eval/loss']) {
      const a = (await store.getMetricHistory(refId, key))
        .map((m) => [m.step, m.value])
        .sort((x, y) => x[0] - y[0]);
      const b = (await store.getMetricHistory(runId, key))
        .map((m) => [m.step, m.value])
        .sort((x, y) => x[0] - y[0]);
      assert.deepEqual(b, a, `${key} equals the uninterrupted run's`);
    }
    assert.equal((await store.getRun(runId)).info.status, 'FINISHED');
  });

  test('a server still down at the end leaves a spool; exp runs sync replays it later', async () => {
    const env = testEnv(join(work, 'sync'), { MLFLOW_TRACKING_URI: server.uri });
    const child = spawnExp(
      [
        'run',
        'toy.yaml',
        '--json',
        '--set',
        'toy.steps=50',
        '--set',
        'toy.stepDelayMs=30',
        '--set',
        'tracking.flushEverySec=0.3',
        '--set',
        'tracking.systemMetricsEverySec=0',
        '--set',
        'tracking.finishTimeoutSec=1',
        '--set',
        'experiment=sync',
      ],
      { env },
    );
    const done = finished(child);
    let stderr = '';
    await new Promise<void>((resolve) => {
      child.stderr?.on('data', (d) => {
        stderr += d;
        if (/run [0-9a-f]{32} \(/.test(stderr)) resolve();
      });
    });
    await server.kill();
    const r = await done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /requests still waiting for .* run `exp runs sync` when the server is back/);
    const runId = outcome(r).run_id;
    const down = await runExp(['runs', 'sync'], { env });
    assert.equal(down.code, 1, 'sync while the server is down reports pending requests');
    assert.match(down.stdout, /still pending/);
    await server.restart();
    const sync = await runExp(['runs', 'sync'], { env });
    assert.equal(sync.code, 0, sync.stderr);
    assert.match(sync.stdout, /spool empty/);
    const store = new RestStore(server.uri, { spoolDir: join(work, 'unused') });
    const run = await store.getRun(runId);
    assert.equal(run.info.status, 'FINISHED');
    const steps = (await store.getMetricHistory(runId, 'train/loss'))
      .map((m) => m.step)
      .sort((a, b) => a - b);
    assert.deepEqual(
      steps,
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
  });
});
