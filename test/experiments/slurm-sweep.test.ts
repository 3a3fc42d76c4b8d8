/**
 * `exp sweep --launcher slurm` against a real single-node SLURM cluster (scripts/slurm-cluster.sh)
 * and a real MLflow server (issue 19): a 2 seeds × 2 cells array logs the same metrics as the
 * same sweep run locally, into one server; a cell killed mid-run ends FAILED with the scheduler's
 * reason while the others finish, and `--resume` resubmits only it (continuing its run); scancel of
 * a running cell ends its run KILLED. The dry runs (batch script, Kubernetes manifest) and the
 * tracking-URI checks need no cluster.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import YAML from 'yaml';
import { openStore, type Run, type TrackingStore } from '../../experiments/tracking/index.js';
import { type MlflowServer, startMlflowServer } from '../helpers/mlflow.js';
import { type SlurmCluster, slurmOut, startSlurmCluster } from './slurm-cluster.js';
import { finished, runExp, spawnExp, sweepJson, sweepToyFailingCell, tempDir, testEnv } from './util.js';

const GRID = ['--seeds', '0,1', '--grid', 'toy.lr=0.01,0.03'];

describe('exp sweep --launcher slurm: dry runs and checks (no cluster needed)', () => {
  const work = tempDir('slurm-dry');
  const env = testEnv(work, { MLFLOW_TRACKING_URI: 'http://mlflow.example:5000' });

  test('--dry-run prints the array batch script: 4 elements, 2 at once, resources from config and flags, one exp run per cell', async () => {
    const r = await runExp(
      ['sweep', 'toy.yaml', ...GRID, '--launcher', 'slurm', '--dry-run', '--parallel', '2']
        // the config's slurm section, then flags over it (--time wins over slurm.time)
        .concat(['--set', 'slurm.time=5', '--set', 'slurm.mem=2G', '--set', 'slurm.partition=debug'])
        .concat(['--time', '10', '--sbatch-arg=--account=lab']),
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    const s = r.stdout;
    for (const line of [
      '#SBATCH --array=0-3%2',
      '#SBATCH --cpus-per-task=1',
      '#SBATCH --time=10',
      '#SBATCH --mem=2G',
      '#SBATCH --partition=debug',
      '#SBATCH --account=lab',
      'export MLFLOW_TRACKING_URI=http://mlflow.example:5000',
    ])
      assert.ok(s.includes(line), `no '${line}' in:\n${s}`);
    // seeds fastest: cell 1 is lr 0.01 seed 1, cell 2 is lr 0.03 seed 0
    assert.match(s, /\n {2}1\) args=\(run \S+toy\.yaml --seed 1 (--set \S+ )*--set toy\.lr=0\.01 /);
    assert.match(s, /\n {2}2\) args=\(run \S+toy\.yaml --seed 0 (--set \S+ )*--set toy\.lr=0\.03 /);
    assert.doesNotMatch(s, /--time=5/);
    assert.doesNotMatch(r.stderr, /submitted/);
  });

  test('--launcher k8s --dry-run prints an indexed Job: one completion per cell, the same cell script', async () => {
    const r = await runExp(
      [
        'sweep',
        'toy.yaml',
        ...GRID,
        '--launcher',
        'k8s',
        '--dry-run',
        '--parallel',
        '3',
        '--image',
        'reg/ring:1',
      ],
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    const job = YAML.parse(r.stdout) as {
      kind: string;
      spec: {
        completionMode: string;
        completions: number;
        parallelism: number;
        template: { spec: { containers: { image: string; command: string[] }[] } };
      };
    };
    assert.equal(job.kind, 'Job');
    assert.equal(job.spec.completionMode, 'Indexed');
    assert.equal(job.spec.completions, 4);
    assert.equal(job.spec.parallelism, 3);
    const c = job.spec.template.spec.containers[0];
    assert.equal(c.image, 'reg/ring:1');
    assert.match(c.command[2], /cell="\$\{JOB_COMPLETION_INDEX:\?/);
    assert.match(
      c.command[2],
      /3\) args=\(run experiments\/configs\/toy\.yaml --seed 1 --set toy\.lr=0\.03 /,
    );
  });

  test('a file-store tracking URI is refused for --launcher slurm (exit 2, names MLFLOW_TRACKING_URI)', async () => {
    const r = await runExp(['sweep', 'toy.yaml', '--launcher', 'slurm'], { env: testEnv(work) });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /set MLFLOW_TRACKING_URI .* to its http\(s\):\/\/ URL; got '\.\/mlruns'/);
  });

  test('a tracking server that does not answer is refused before anything is submitted (exit 2)', async () => {
    const r = await runExp(['sweep', 'toy.yaml', '--launcher', 'slurm'], {
      env: testEnv(work, { MLFLOW_TRACKING_URI: 'http://127.0.0.1:9' }),
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /MLFLOW_TRACKING_URI=http:\/\/127\.0\.0\.1:9 does not answer/);
  });
});

describe('exp sweep --resume, local launcher (no cluster needed)', () => {
  test('reruns only the cell whose run did not finish, continuing that run', async () => {
    const work = tempDir('sweep-resume');
    const env = testEnv(work);
    const store = join(work, 'mlruns');
    const first = await sweepToyFailingCell(store, env);
    assert.equal(first.status, 'FAILED');
    assert.deepEqual(
      first.children.map((c) => [c.index, c.status]),
      [
        [0, 'FINISHED'],
        [1, 'FAILED'],
      ],
    );
    const files = openStore(store);
    const failedRun = await files.getRun(first.children[1].runId!);
    assert.equal(failedRun.info.status, 'FAILED');
    assert.equal(failedRun.tags['exp.sweep.cell'], '1');
    const finishedBefore = await files.getRun(first.children[0].runId!);
    const again = sweepJson(
      await runExp(['sweep', '--resume', first.parent_run_id, '--tracking-uri', store, '--json', '--quiet'], {
        env,
      }),
    );
    assert.deepEqual(again.ran, [1]);
    // the failure is in the config (toy.failAtStep), so the resumed run fails again: the same run
    assert.equal(again.children[1].runId, failedRun.info.runId);
    assert.equal(again.children[1].status, 'FAILED');
    assert.equal(again.children[0].runId, first.children[0].runId);
    assert.equal((await files.getRun(first.children[0].runId!)).info.endTime, finishedBefore.info.endTime);
    assert.match((await files.getRun(failedRun.info.runId)).tags['exp.resumed_from_step'] ?? '', /^\d+$/);
    const r = await runExp(['sweep', '--resume', first.parent_run_id, 'toy.yaml', '--tracking-uri', store], {
      env,
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--resume: give no config/);
  });
});

describe('exp sweep --launcher slurm on a single-node cluster', () => {
  const work = tempDir('slurm-sweep');
  let cluster: SlurmCluster | undefined;
  let server: MlflowServer | undefined;
  let store: TrackingStore;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    cluster = startSlurmCluster();
    if (cluster.skip) return;
    server = await startMlflowServer(join(work, 'mlflow'));
    store = openStore(server.uri);
    env = testEnv(work, { MLFLOW_TRACKING_URI: server.uri });
  });
  after(async () => {
    await server?.stop();
    cluster?.stop();
  });

  const runOf = (id: string) => store.getRun(id);
  const nonSystem = (r: Run) =>
    Object.keys(r.metrics)
      .filter((k) => !k.startsWith('system/'))
      .sort();

  test('2 seeds × 2 cells as one array: four child runs in one server, the same metrics as the local sweep', async (t) => {
    if (cluster?.skip) return t.skip(cluster.skip);
    const common = ['sweep', 'toy.yaml', ...GRID, '--set', 'toy.steps=30', '--set', 'toy.evalEvery=10'];
    const [local, viaSlurm] = [
      sweepJson(await runExp([...common, '--parallel', '2', '--json', '--quiet'], { env })),
      sweepJson(
        await runExp([...common, '--launcher', 'slurm', '--parallel', '2', '--poll-sec', '1', '--json'], {
          env,
        }),
      ),
    ];
    assert.equal(local.status, 'FINISHED');
    assert.equal(viaSlurm.status, 'FINISHED', JSON.stringify(viaSlurm));
    assert.equal(viaSlurm.job_ids.length, 1);
    const parent = await runOf(viaSlurm.parent_run_id);
    assert.equal(parent.tags['exp.slurm.array_job_id'], viaSlurm.job_ids[0]);
    assert.equal(parent.tags['exp.slurm.array_state'], 'COMPLETED 4');
    for (const c of viaSlurm.children) {
      const run = await runOf(c.runId!);
      const twin = local.children.find((l) => l.cell === c.cell && l.seed === c.seed)!;
      const other = await runOf(twin.runId!);
      assert.equal(run.info.status, 'FINISHED');
      assert.equal(run.tags['mlflow.parentRunId'], viaSlurm.parent_run_id);
      assert.equal(run.tags['exp.slurm.array_job_id'], viaSlurm.job_ids[0]);
      assert.equal(run.tags['exp.slurm.array_task_id'], String(c.index));
      assert.equal(run.info.experimentId, other.info.experimentId, 'one server, one experiment');
      assert.deepEqual(nonSystem(run), nonSystem(other));
      for (const key of nonSystem(run)) {
        const [a, b] = [
          await store.getMetricHistory(run.info.runId, key),
          await store.getMetricHistory(other.info.runId, key),
        ];
        assert.deepEqual(
          a.map((m) => m.step),
          b.map((m) => m.step),
          `${c.cell} seed ${c.seed} ${key}: steps`,
        );
        for (const [i, m] of a.entries())
          assert.ok(
            Math.abs(m.value - b[i].value) <= 1e-6 * Math.max(1, Math.abs(b[i].value)),
            `${c.cell} seed ${c.seed} ${key} step ${m.step}: slurm ${m.value} vs local ${b[i].value}`,
          );
      }
    }
    // `exp runs show` is where a user reads the array's state
    const shown = await runExp(['runs', 'show', viaSlurm.parent_run_id], { env });
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /exp\.slurm\.array_state = COMPLETED 4/);
  });

  test('a cell killed mid-run ends FAILED with the scheduler reason, the others finish; --resume reruns only it', async (t) => {
    if (cluster?.skip) return t.skip(cluster.skip);
    const child = spawnExp(
      [
        'sweep',
        'toy.yaml',
        '--seeds',
        '0,1,2',
        '--parallel',
        '2',
        '--launcher',
        'slurm',
        '--poll-sec',
        '1',
        '--json',
      ].concat(['--set', 'toy.steps=60', '--set', 'toy.stepDelayMs=60', '--set', 'checkpoint.every=10']),
      { env },
    );
    const done = finished(child);
    let stderr = '';
    child.stderr?.on('data', (d) => {
      stderr += d;
    });
    // the parent's id, then cell 1's run once it is past a checkpoint
    const until = Date.now() + 180_000;
    let parentId: string | undefined;
    let victim: Run | undefined;
    while (!victim && Date.now() < until) {
      parentId ??= /sweep ([0-9a-f]{32}): /.exec(stderr)?.[1];
      if (parentId) {
        const runs = await store.searchRuns([(await runOf(parentId)).info.experimentId]);
        const cell1 = runs.find(
          (r) => r.tags['mlflow.parentRunId'] === parentId && r.tags['exp.sweep.cell'] === '1',
        );
        if (cell1) {
          const h = await store.getMetricHistory(cell1.info.runId, 'train/loss');
          if (h.some((m) => m.step >= 15)) victim = await runOf(cell1.info.runId);
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(victim, `cell 1 never passed step 15; sweep said:\n${stderr}`);
    // as an out-of-memory kill or a crashed node would: no chance to end its own run
    const pid = (JSON.parse(victim.tags['exp.owner']) as { pid: number }).pid;
    process.kill(pid, 'SIGKILL');
    const first = sweepJson(await done);
    assert.equal(first.status, 'FAILED', stderr);
    const byIndex = new Map(first.children.map((c) => [c.index, c]));
    assert.deepEqual(
      [0, 1, 2].map((i) => byIndex.get(i)!.status),
      ['FINISHED', 'FAILED', 'FINISHED'],
    );
    const failed = await runOf(victim.info.runId);
    assert.equal(failed.info.status, 'FAILED');
    const jobId = first.job_ids[0];
    assert.match(
      failed.tags['exp.status_reason'],
      new RegExp(`^SLURM job ${jobId}_1 FAILED: exited with an error \\(exit code 0:9`),
    );
    assert.equal(failed.tags['exp.slurm.state'], 'FAILED');
    const before = await Promise.all([0, 2].map((i) => runOf(byIndex.get(i)!.runId!)));

    const again = sweepJson(
      await runExp(['sweep', '--resume', first.parent_run_id, '--poll-sec', '1', '--json'], { env }),
    );
    assert.equal(again.status, 'FINISHED', JSON.stringify(again));
    assert.deepEqual(again.ran, [1], 'only the cell that did not finish is resubmitted');
    assert.notEqual(again.job_ids[0], jobId);
    const script = readFileSync(join(work, '.exp', 'sweeps', first.parent_run_id, 'array-2.sh'), 'utf8');
    assert.match(script, /#SBATCH --array=1%2\n/);
    assert.match(script, new RegExp(`1\\) args=\\(run --resume ${victim.info.runId} `));
    // the same run continued from its checkpoint: every step logged once, to the end
    const resumed = await runOf(victim.info.runId);
    assert.equal(resumed.info.status, 'FINISHED');
    const steps = (await store.getMetricHistory(victim.info.runId, 'train/loss')).map((m) => m.step);
    assert.equal(new Set(steps).size, steps.length, `a step was logged twice: ${steps}`);
    assert.equal(Math.max(...steps), 60);
    // the cells that had finished were left alone
    for (const b of before) {
      const now = await runOf(b.info.runId);
      assert.equal(now.info.endTime, b.info.endTime);
      assert.notEqual(now.tags['exp.slurm.array_job_id'], again.job_ids[0]);
    }
    const parent = await runOf(first.parent_run_id);
    assert.equal(parent.info.status, 'FINISHED');
    assert.equal(parent.tags['exp.slurm.array_job_ids'], `${jobId},${again.job_ids[0]}`);
    assert.ok(parent.metrics['summary/train/loss/mean'] !== undefined, Object.keys(parent.metrics).join(' '));
  });

  test('scancel of a running cell ends its run KILLED with the scheduler reason', async (t) => {
    if (cluster?.skip) return t.skip(cluster.skip);
    const child = spawnExp(
      ['sweep', 'toy.yaml', '--seeds', '0', '--launcher', 'slurm', '--poll-sec', '1', '--json'].concat([
        '--set',
        'toy.steps=5000',
        '--set',
        'toy.stepDelayMs=20',
      ]),
      { env },
    );
    const done = finished(child);
    let stderr = '';
    child.stderr?.on('data', (d) => {
      stderr += d;
    });
    const until = Date.now() + 120_000;
    let jobId: string | undefined;
    let running = false;
    while (!running && Date.now() < until) {
      jobId ??= /submitted SLURM array job (\d+)/.exec(stderr)?.[1];
      // running, and past its first steps (its run exists and logs)
      if (jobId && /RUNNING 1/.test(stderr)) {
        const parentId = /sweep ([0-9a-f]{32}): /.exec(stderr)![1];
        const runs = await store.searchRuns([(await runOf(parentId)).info.experimentId]);
        const cell = runs.find(
          (r) => r.tags['mlflow.parentRunId'] === parentId && r.tags['exp.sweep.cell'] === '0',
        );
        if (cell && (await store.getMetricHistory(cell.info.runId, 'train/loss')).length > 0) running = true;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(running && jobId, `the cell never ran; sweep said:\n${stderr}`);
    const cancelled = slurmOut('scancel', [`${jobId}_0`]);
    assert.equal(cancelled.trim(), '', cancelled);
    const r = await done;
    const out = sweepJson(r);
    assert.equal(r.code, 130, r.stderr);
    assert.equal(out.status, 'KILLED');
    const run = await runOf(out.children[0].runId!);
    assert.equal(run.info.status, 'KILLED');
    assert.match(run.tags['exp.status_reason'], new RegExp(`^SLURM job ${jobId}_0 CANCELLED: cancelled`));
    // exp run saw the SIGTERM scancel sent and said so too
    assert.match(run.tags['exp.status_reason'], /interrupted by SIGTERM/);
    const parent = await runOf(out.parent_run_id);
    assert.equal(parent.info.status, 'KILLED');
    assert.match(parent.tags['exp.status_reason'], /CANCELLED/);
  });
});
