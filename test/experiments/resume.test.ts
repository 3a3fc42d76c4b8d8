/**
 * Ctrl-C and --resume (issue 5): SIGINT to `exp run` in a subprocess ends the run KILLED with the
 * reason as a tag after saving a checkpoint of the last completed step; that checkpoint loads;
 * `exp run --resume <id>` finishes the same MLflow run, and its metric stream and final RNG state
 * equal those of an uninterrupted run with the same seed.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { loadCheckpoint } from '../../experiments/checkpoint.js';
import { FileStore } from '../../experiments/tracking/index.js';
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

const STEPS = 60;
const common = (store: string) => [
  '--tracking-uri',
  store,
  '--json',
  '--seed',
  '11',
  '--set',
  `toy.steps=${STEPS}`,
  '--set',
  'toy.evalEvery=7',
  '--set',
  'checkpoint.every=10',
  '--set',
  'tracking.systemMetricsEverySec=0',
];

describe('SIGINT then --resume', () => {
  test('KILLED with reason, last checkpoint loads, resume finishes the same run with the same stream', async () => {
    const work = tempDir('resume');
    const env = testEnv(work);
    const refStore = join(work, 'ref');
    const store = join(work, 'mlruns');

    // The uninterrupted reference runs alongside the one we interrupt.
    const refP = runExp(['run', 'toy.yaml', ...common(refStore)], { env });
    const child = spawnExp(
      [
        'run',
        'toy.yaml',
        ...common(store),
        '--set',
        'toy.stepDelayMs=40',
        '--set',
        'tracking.flushEverySec=0.2',
      ],
      { env },
    );
    const done = finished(child);
    const id = await runIdFromStderr(child);
    await waitForStep(new FileStore(store), id, 'train/loss', 15);
    child.kill('SIGINT');
    const r = await done;
    assert.equal(r.code, 130, `exit code 130 after Ctrl-C; stderr:\n${r.stderr}`);
    const killed = outcome(r);
    assert.equal(killed.status, 'KILLED');

    const fs = new FileStore(store);
    const run = await fs.getRun(killed.run_id);
    assert.equal(run.info.status, 'KILLED');
    assert.match(
      run.tags['exp.status_reason'],
      /^interrupted by SIGINT; checkpoint at step \d+; continue with exp run --resume/,
    );
    const history = await fs.getMetricHistory(killed.run_id, 'train/loss');
    const lastStep = Math.max(...history.map((m) => m.step));
    assert.ok(lastStep > 0 && lastStep < STEPS, `interrupted mid-run (at step ${lastStep})`);

    // The last checkpoint is the last completed step, and it loads.
    const arts = await fs.listArtifacts(killed.run_id, 'checkpoints');
    const newest = arts
      .map((a) => a.path)
      .sort()
      .pop()!;
    assert.equal(newest, `checkpoints/step-${String(lastStep).padStart(8, '0')}`);
    const ck = loadCheckpoint(join(fileURLToPath(run.info.artifactUri), newest));
    assert.equal(ck.step, lastStep);
    assert.deepEqual(Object.keys(ck.tensors).sort(), [
      'b1',
      'b2',
      'm_b1',
      'm_b2',
      'm_w1',
      'm_w2',
      'v_b1',
      'v_b2',
      'v_w1',
      'v_w2',
      'w1',
      'w2',
    ]);
    assert.deepEqual(ck.tensors.w1.shape, [1, 32]);

    const resumed = await runExp(['run', '--resume', killed.run_id, '--tracking-uri', store, '--json'], {
      env,
    });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(outcome(resumed).run_id, killed.run_id, 'same MLflow run');
    assert.equal(outcome(resumed).status, 'FINISHED');
    assert.match(resumed.stderr, new RegExp(`resuming after step ${lastStep}`));

    const ref = await refP;
    assert.equal(ref.code, 0, ref.stderr);
    const refFs = new FileStore(refStore);
    const refId = outcome(ref).run_id;
    for (const key of ['train/loss', 'eval/loss']) {
      const a = (await refFs.getMetricHistory(refId, key)).map((m) => [m.step, m.value]);
      const b = (await fs.getMetricHistory(killed.run_id, key)).map((m) => [m.step, m.value]);
      assert.deepEqual(b, a, `${key}: the resumed run's stream equals the uninterrupted one`);
    }
    const finalRun = await fs.getRun(killed.run_id);
    assert.equal(finalRun.info.status, 'FINISHED');
    assert.equal(finalRun.tags['exp.resumed_from_step'], String(lastStep));
    // Same final RNG state and weights as the uninterrupted run.
    const end = `checkpoints/step-${String(STEPS).padStart(8, '0')}`;
    const a = loadCheckpoint(join(fileURLToPath((await refFs.getRun(refId)).info.artifactUri), end));
    const b = loadCheckpoint(join(fileURLToPath(finalRun.info.artifactUri), end));
    assert.equal(b.rngState, a.rngState);
    assert.deepEqual(Array.from(b.tensors.w2.data), Array.from(a.tensors.w2.data));

    // A finished run cannot be resumed.
    const again = await runExp(['run', '--resume', killed.run_id, '--tracking-uri', store], { env });
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already FINISHED/);
  });

  test('SIGKILL (no checkpoint on the way out) then --resume: each step once, same stream', async () => {
    const work = tempDir('resume-kill');
    const env = testEnv(work);
    const refStore = join(work, 'ref');
    const store = join(work, 'mlruns');
    const refP = runExp(['run', 'toy.yaml', ...common(refStore)], { env });
    const child = spawnExp(
      [
        'run',
        'toy.yaml',
        ...common(store),
        '--set',
        'toy.stepDelayMs=40',
        '--set',
        'tracking.flushEverySec=0.2',
      ],
      { env },
    );
    const done = finished(child);
    let stderr = '';
    let runId = '';
    await new Promise<void>((resolve) => {
      child.stderr?.on('data', (d) => {
        stderr += d;
        const m = /run ([0-9a-f]{32}) \(/.exec(stderr);
        if (m) {
          runId = m[1];
          resolve();
        }
      });
    });
    // Kill once steps after a checkpoint are logged: those must not be logged twice on resume.
    const fs = new FileStore(store);
    let saved = 0;
    let logged = 0;
    for (let i = 0; i < 400 && !(saved > 0 && logged >= saved + 3); i++) {
      await new Promise((r) => setTimeout(r, 25));
      const ckpts = (await fs.listArtifacts(runId, 'checkpoints')).map((a) => Number(a.path.slice(-8)));
      saved = ckpts.length ? Math.max(...ckpts) : 0;
      const h = await fs.getMetricHistory(runId, 'train/loss').catch(() => []);
      logged = h.length ? Math.max(...h.map((m) => m.step)) : 0;
    }
    child.kill('SIGKILL');
    await done;
    assert.equal((await fs.getRun(runId)).info.status, 'RUNNING', 'a killed process leaves the run RUNNING');
    assert.ok(
      saved > 0 && logged > saved,
      `steps after the last checkpoint were logged (${saved} < ${logged})`,
    );
    const resumed = await runExp(['run', '--resume', runId, '--tracking-uri', store, '--json'], { env });
    assert.equal(resumed.code, 0, resumed.stderr);
    const ref = await refP;
    const refFs = new FileStore(refStore);
    for (const key of ['train/loss', 'eval/loss']) {
      const a = (await refFs.getMetricHistory(outcome(ref).run_id, key)).map((m) => [m.step, m.value]);
      const b = (await fs.getMetricHistory(runId, key)).map((m) => [m.step, m.value]);
      assert.deepEqual(b, a, `${key}: each step once, same values`);
    }
  });

  test('a second SIGINT stops at once and still marks the run KILLED', async () => {
    const work = tempDir('resume-twice');
    const store = join(work, 'mlruns');
    const child = spawnExp(['run', 'toy.yaml', ...common(store), '--set', 'toy.stepDelayMs=5000'], {
      env: testEnv(work),
    });
    const done = finished(child);
    let stderr = '';
    let runId = '';
    await new Promise<void>((resolve) => {
      child.stderr?.on('data', (d) => {
        stderr += d;
        const m = /run ([0-9a-f]{32}) \(/.exec(stderr);
        if (m) {
          runId = m[1];
          resolve();
        }
      });
    });
    await new Promise((r) => setTimeout(r, 500));
    child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGINT');
    const r = await done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /SIGINT again: stopping now/);
    const run = await new FileStore(store).getRun(runId);
    assert.equal(run.info.status, 'KILLED');
    assert.equal(run.tags['exp.status_reason'], 'stopped by a second SIGINT');
  });
});
