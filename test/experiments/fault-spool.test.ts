/**
 * Fault injection on the MLflow spool (issue 16): a real server is killed mid-run, the run
 * spools, and the `exp run` process is SIGKILLed at a seeded random point while it spools; its
 * last spool record is torn (as a kill mid-append leaves it) and a garbage record sits in the
 * middle (disk corruption). `exp runs sync` skips and reports both and replays the rest;
 * `--resume` then finishes the run, and the Python MLflow client reads every step exactly once.
 * A spool of a process still running is left to that process.
 *
 * Seeded: FAULT_SEED=<n> replays the same kill point and damage.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Rng } from '../../common/index.js';
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

const SEED = Number(process.env.FAULT_SEED ?? (Date.now() ^ (process.pid << 8)) >>> 0);
const STEPS = 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe(`fault injection on the spool (FAULT_SEED=${SEED})`, () => {
  const work = tempDir('fault-spool');
  let server: MlflowServer;
  before(async () => {
    server = await startMlflowServer(join(work, 'server'));
  });
  after(async () => {
    await server?.stop();
  });

  test('SIGKILL while spooling during an outage, torn and garbage spool records: sync skips and reports them, replays the rest; resume finishes with every step once', async (t) => {
    t.diagnostic(`FAULT_SEED=${SEED}`);
    const rng = new Rng(SEED);
    const env = testEnv(join(work, 'kill'), { MLFLOW_TRACKING_URI: server.uri });
    const spoolDir = join(work, 'kill', '.exp', 'spool');
    const child = spawnExp(
      [
        'run',
        'toy.yaml',
        '--json',
        '--set',
        `toy.steps=${STEPS}`,
        '--set',
        'toy.stepDelayMs=60',
        '--set',
        'tracking.flushEverySec=0.2',
        '--set',
        'tracking.systemMetricsEverySec=0',
        '--set',
        'checkpoint.every=10',
        '--set',
        'experiment=fault-spool',
      ],
      { env },
    );
    const done = finished(child);
    const runId = await runIdFromStderr(child);
    const client = new RestStore(server.uri, { spoolDir: join(work, 'unused') });
    await waitForStep(client, runId, 'train/loss', 5);
    await server.kill();

    // Kill the run at a seeded point once it has spooled at least a few records.
    const spoolLines = () =>
      existsSync(spoolDir)
        ? readdirSync(spoolDir)
            .filter((n) => n.endsWith('.jsonl'))
            .reduce((a, n) => a + readFileSync(join(spoolDir, n), 'utf8').split('\n').length - 1, 0)
        : 0;
    const want = 3 + rng.int(6);
    const until = Date.now() + 120_000;
    while (spoolLines() < want && child.exitCode === null && Date.now() < until) await sleep(20);
    child.kill('SIGKILL');
    await done;
    const [spool] = readdirSync(spoolDir).filter((n) => n.endsWith('.jsonl'));
    assert.ok(spool, 'the killed process left a spool');
    const file = join(spoolDir, spool);

    // Tear the last record (what a kill mid-append leaves) and put garbage in the middle.
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    const cut = 1 + rng.int(Math.max(1, lines[lines.length - 1].length - 2));
    const middle = rng.int(lines.length);
    const damaged = [
      ...lines.slice(0, middle),
      '\u0000\u0000{"uri": garbage',
      ...lines.slice(middle, -1),
      lines[lines.length - 1].slice(0, cut),
    ];
    writeFileSync(file, damaged.join('\n'));
    // A spool of a live process (this test's own pid) must be left alone by sync.
    const live = join(spoolDir, `spool-${Date.now()}-${process.pid}-abcdef.jsonl`);
    writeFileSync(live, `${lines[0]}\n`);

    await server.restart();
    const sync = await runExp(['runs', 'sync'], { env });
    assert.equal(sync.code, 0, `sync replays the intact records; stderr:\n${sync.stderr}`);
    assert.match(sync.stdout, /spool empty/);
    const reported = sync.stderr.match(/skipping a torn spool record/g) ?? [];
    assert.equal(reported.length, 2, `both bad records reported:\n${sync.stderr}`);
    assert.match(sync.stderr, new RegExp(`${spool}:${middle + 1}: `), 'names the file and line');
    assert.ok(!existsSync(file), 'the replayed spool is removed');
    assert.equal(
      readFileSync(`${file}.torn`, 'utf8').split('\n').filter(Boolean).length,
      2,
      'bad records kept',
    );
    assert.equal(readFileSync(live, 'utf8'), `${lines[0]}\n`, "a live process's spool is not touched");

    const run = await client.getRun(runId);
    assert.equal(run.info.status, 'RUNNING', 'the killed run is still RUNNING until resumed');
    const resumed = await runExp(['run', '--resume', runId, '--json'], { env });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(outcome(resumed).status, 'FINISHED');

    const py = await pythonJson<{ status: string; steps: number[] }>(
      `
import json, mlflow
c = mlflow.MlflowClient(tracking_uri=${JSON.stringify(server.uri)})
r = c.get_run(${JSON.stringify(runId)})
print(json.dumps({"status": r.info.status,
  "steps": sorted(m.step for m in c.get_metric_history(r.info.run_id, "train/loss"))}))
`,
    );
    assert.equal(py.status, 'FINISHED', 'no run left RUNNING');
    assert.deepEqual(
      py.steps,
      Array.from({ length: STEPS }, (_, i) => i + 1),
      `train/loss: every step once after kill at spool line ${want} (seed ${SEED})`,
    );
  });

  test("three `exp runs sync` at once replay a dead process's spool once", async () => {
    const rng = new Rng(SEED ^ 0x77);
    const env = testEnv(join(work, 'race'));
    const spoolDir = join(work, 'race', '.exp', 'spool');
    mkdirSync(spoolDir, { recursive: true });
    const client = new RestStore(server.uri, { spoolDir: join(work, 'unused') });
    const experimentId = await client.ensureExperiment('fault-spool-race');
    const { runId } = await client.createRun({
      experimentId,
      runName: 'race',
      startTime: Date.now(),
      tags: [],
    });
    // A finished child's pid: the spool's writer is dead.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid as number;
    const n = 20 + rng.int(20);
    const records = Array.from({ length: n }, (_, i) =>
      JSON.stringify({
        uri: server.uri,
        entry: {
          op: 'batch',
          runId,
          batch: {
            metrics: [{ key: 'train/x', value: rng.normal(), timestamp: Date.now(), step: i + 1 }],
            params: [],
            tags: [],
          },
        },
      }),
    );
    writeFileSync(join(spoolDir, `spool-${Date.now()}-${dead}-a1b2c3.jsonl`), `${records.join('\n')}\n`);
    const results = await Promise.all([0, 1, 2].map(() => runExp(['runs', 'sync'], { env })));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const steps = (await client.getMetricHistory(runId, 'train/x')).map((m) => m.step).sort((a, b) => a - b);
    assert.deepEqual(
      steps,
      Array.from({ length: n }, (_, i) => i + 1),
      `each of ${n} spooled points once (seed ${SEED})`,
    );
    assert.deepEqual(readdirSync(spoolDir), [], 'the spool is gone');
  });
});
