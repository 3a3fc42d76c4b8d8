// A resumed run re-logs the params its recipe measures (Table 5's memory probe: 323.2 MiB, then
// 324.8 on resume), and MLflow params cannot change: before keepFirstParams the resumed run
// failed. Now the first value stays the param and the new one is kept as a tag.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { keepFirstParams } from '../../experiments/runner.js';
import { FileStore, RunTracker } from '../../experiments/tracking/index.js';

test('a resumed run keeps its first measured params; the re-measured value goes to a tag', async () => {
  const root = mkdtempSync(join(tmpdir(), 'resume-params-'));
  try {
    const store = new FileStore(root);
    const experimentId = await store.ensureExperiment('resume-params');
    const { runId } = await store.createRun({ experimentId, runName: 'r', startTime: Date.now(), tags: [] });
    const first = new RunTracker(store, runId, { flushEverySec: 60, stagingDir: join(root, 'stage') });
    first.params({ 'model.probe_mib_per_device': '323.2', 'model.parameters': 170888 });
    await first.flush();
    await first.close();

    // the interrupted run's params, as the runner reads them back on --resume
    const logged = (await store.getRun(runId)).params;
    // without the guard the store refuses the new value, naming the param (the bug's failure)
    const plain = new RunTracker(store, runId, { flushEverySec: 60, stagingDir: join(root, 'stage') });
    plain.params({ 'model.probe_mib_per_device': '324.8' });
    await assert.rejects(plain.flush(), /param 'model.probe_mib_per_device' .* already '323.2'/);
    await plain.close();

    const lines: string[] = [];
    const resumed = new RunTracker(store, runId, { flushEverySec: 60, stagingDir: join(root, 'stage') });
    keepFirstParams(resumed, logged, (l) => lines.push(l));
    resumed.params({ 'model.probe_mib_per_device': '324.8', 'model.parameters': 170888, 'train.new': 'x' });
    await resumed.flush();
    await resumed.close();

    const run = await store.getRun(runId);
    assert.equal(run.params['model.probe_mib_per_device'], '323.2');
    assert.equal(run.params['model.parameters'], '170888');
    assert.equal(run.params['train.new'], 'x', 'a param the first process never logged is logged');
    assert.equal(run.tags['exp.remeasured.model.probe_mib_per_device'], '324.8');
    assert.equal(lines.length, 1);
    assert.match(lines[0], /keeping the first run's 323\.2 \(re-measured 324\.8/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
