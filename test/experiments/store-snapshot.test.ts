/**
 * scripts/store-snapshot.sh: a sweep's file store saved without its binary artifacts and restored
 * elsewhere (another session's checkout) still resumes — finished cells keep their runs and
 * metrics, the unfinished one reruns — and its runs' artifact folders point at the new place.
 * Bad arguments exit 2 naming what was wrong, and nothing is half-written.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { openStore } from '../../experiments/tracking/index.js';
import { repoRoot, runExp, sweepJson, sweepToyFailingCell, tempDir, testEnv } from './util.js';

const script = join(repoRoot, 'scripts', 'store-snapshot.sh');

function snapshot(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('bash', [script, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Every file below `dir`, as sorted paths relative to it. */
function filesBelow(dir: string, prefix = ''): string[] {
  return readdirSync(dir)
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? filesBelow(path, join(prefix, name)) : [join(prefix, name)];
    })
    .sort();
}

describe('scripts/store-snapshot.sh', () => {
  test('a snapshot without binaries restores elsewhere and the sweep resumes from it', async () => {
    const work = tempDir('store-snapshot');
    const env = testEnv(work);
    const store = join(work, 'session-1', 'mlruns');
    const first = await sweepToyFailingCell(store, env);
    assert.deepEqual(
      first.children.map((c) => c.status),
      ['FINISHED', 'FAILED'],
    );
    const before = filesBelow(store);
    assert.ok(
      before.some((f) => f.endsWith('.bin')),
      'the toy runs log checkpoints with tensors.bin',
    );

    const archive = join(work, 'table.tar.gz');
    const saved = snapshot('save', store, archive);
    assert.equal(saved.code, 0, saved.stderr);
    assert.ok(!readdirSync(work).some((f) => f.includes('.tmp-')), 'no temporary file left');

    const moved = join(work, 'session-2', 'mlruns');
    mkdirSync(join(work, 'session-2'));
    const restored = snapshot('restore', archive, moved);
    assert.equal(restored.code, 0, restored.stderr);
    const after = filesBelow(moved);
    const expected = before.filter((f) => !f.endsWith('.bin') && !f.includes('.lock-'));
    assert.deepEqual(
      {
        missing: expected.filter((f) => !after.includes(f)),
        added: after.filter((f) => !expected.includes(f)),
      },
      { missing: [], added: [] },
      'everything but the binary artifacts, nothing added',
    );
    // artifact folders are absolute in meta.yaml: they now name the restored store
    const metas = after
      .filter((f) => f.endsWith('meta.yaml'))
      .map((f) => readFileSync(join(moved, f), 'utf8'));
    assert.ok(metas.some((m) => m.includes(moved)));
    assert.ok(!metas.some((m) => m.includes(store)), 'no meta.yaml names the old store');

    // --dry-run on resume prints what would run: the failed cell's run resumed, not the finished one
    const plan = await runExp(
      ['sweep', '--resume', first.parent_run_id, '--tracking-uri', moved, '--dry-run'],
      {
        env,
      },
    );
    assert.equal(plan.code, 0, plan.stderr);
    const lines = plan.stdout.trim().split('\n');
    assert.equal(lines.length, 1, plan.stdout);
    assert.match(lines[0], /^EXP_SWEEP_CELL=1 /);
    assert.ok(lines[0].includes(`run --resume ${first.children[1].runId}`), lines[0]);

    const files = openStore(moved);
    const finished = await files.getRun(first.children[0].runId!);
    const again = sweepJson(
      await runExp(['sweep', '--resume', first.parent_run_id, '--tracking-uri', moved, '--json', '--quiet'], {
        env,
      }),
    );
    assert.deepEqual(again.ran, [1], 'only the unfinished cell reruns');
    assert.equal(again.children[0].runId, first.children[0].runId);
    const kept = await files.getRun(first.children[0].runId!);
    assert.equal(kept.info.endTime, finished.info.endTime);
    assert.deepEqual(kept.metrics, finished.metrics);
    // its failure is in the config (toy.failAtStep=5), so the rerun fails again, in the same run
    assert.equal(again.children[1].runId, first.children[1].runId);
    assert.equal(again.children[1].status, 'FAILED');
    const rerun = await files.getRun(first.children[1].runId!);
    assert.match(
      rerun.tags['exp.status_reason'] ?? '',
      /failAtStep/,
      'it failed where the config says, not on a missing checkpoint',
    );
  });

  test('every cell finished but the parent not (stopped after its last cell, or cells run by hand): --resume writes the summary and finishes it', async () => {
    const work = tempDir('sweep-summary-only');
    const env = testEnv(work);
    const store = join(work, 'mlruns');
    const args = ['sweep', 'toy.yaml', '--seeds', '0,1', '--set', 'toy.steps=6'];
    const first = sweepJson(await runExp([...args, '--tracking-uri', store, '--json', '--quiet'], { env }));
    assert.equal(first.status, 'FINISHED');
    const files = openStore(store);
    // as a sweep killed after its last cell leaves it
    await files.updateRun(first.parent_run_id, 'KILLED', Date.now());
    const killed = await files.getRun(first.parent_run_id);
    const summaryKeys = Object.keys(killed.metrics).filter((k) => k.startsWith('summary/'));
    assert.ok(summaryKeys.length > 0, 'the first sweep wrote its summary');
    const again = await runExp(
      ['sweep', '--resume', first.parent_run_id, '--tracking-uri', store, '--json'],
      {
        env,
      },
    );
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /every cell finished; writing the summary/);
    const out = sweepJson(again);
    assert.deepEqual(out.ran, [], 'no cell reruns');
    assert.equal(out.status, 'FINISHED');
    assert.deepEqual(
      out.children.map((c) => c.runId),
      first.children.map((c) => c.runId),
    );
    const parent = await files.getRun(first.parent_run_id);
    assert.equal(parent.info.status, 'FINISHED');
    for (const k of summaryKeys)
      assert.equal(parent.metrics[k], killed.metrics[k], `${k} from the same children`);
    // a finished parent still has nothing to resume
    const done = await runExp(['sweep', '--resume', first.parent_run_id, '--tracking-uri', store], { env });
    assert.equal(done.code, 2, done.stderr);
    assert.match(done.stderr, /all 2 cells FINISHED; nothing to resume/);
  });

  test('a sweep whose config file is gone (another checkout, a deleted worktree) resumes from the config its parent logged', async () => {
    const work = tempDir('store-snapshot-moved');
    const env = testEnv(work);
    const store = join(work, 'mlruns');
    // the sweep's config lives in a folder that is deleted before the resume, as a worktree is
    const checkout = join(work, 'old-checkout');
    mkdirSync(checkout);
    const config = join(checkout, 'toy-sweep.yaml');
    writeFileSync(config, readFileSync(join(repoRoot, 'experiments', 'configs', 'toy.yaml'), 'utf8'));
    const args = ['--tracking-uri', store, '--json', '--quiet'];
    const first = sweepJson(
      await runExp(['sweep', config, '--grid', 'toy.failAtStep=0,5', '--set', 'toy.steps=10', ...args], {
        env,
      }),
    );
    assert.deepEqual(
      first.children.map((c) => c.status),
      ['FINISHED', 'FAILED'],
    );
    rmSync(checkout, { recursive: true });
    const resumed = await runExp(['sweep', '--resume', first.parent_run_id, ...args.slice(0, 2), '--json'], {
      env,
    });
    assert.match(
      resumed.stderr,
      /toy-sweep\.yaml no longer exists; resuming from the config the parent run logged/,
    );
    const again = sweepJson(resumed);
    assert.deepEqual(again.ran, [1], 'only the unfinished cell reruns');
    assert.equal(again.children[1].runId, first.children[1].runId);
    // the sweep's --set (toy.steps=10) and the grid's failAtStep=5 still hold: it fails where it did
    const rerun = await openStore(store).getRun(first.children[1].runId!);
    assert.match(rerun.tags['exp.status_reason'] ?? '', /failAtStep/);
    assert.equal(rerun.params['toy.steps'], '10');
  });

  test('bad arguments exit 2 naming what was wrong; restore never overwrites a folder', () => {
    const work = tempDir('store-snapshot-bad');
    assert.equal(snapshot('save').code, 2);
    const missing = snapshot('save', join(work, 'nope'), join(work, 'a.tar.gz'));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /<store-folder> .*nope is not a folder/);
    mkdirSync(join(work, 'empty'));
    const notStore = snapshot('save', join(work, 'empty'), join(work, 'a.tar.gz'));
    assert.equal(notStore.code, 2);
    assert.match(notStore.stderr, /not an MLflow file store/);
    assert.ok(!existsSync(join(work, 'a.tar.gz')));

    const garbage = join(work, 'garbage.tar.gz');
    writeFileSync(garbage, 'not an archive');
    const bad = snapshot('restore', garbage, join(work, 'out'));
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /garbage\.tar\.gz is not a gzip'd tar archive/);
    assert.ok(!existsSync(join(work, 'out')), 'nothing half-restored');
    assert.ok(!readdirSync(work).some((f) => f.includes('.tmp-')));

    const exists = snapshot('restore', garbage, join(work, 'empty'));
    assert.equal(exists.code, 2);
    assert.match(exists.stderr, /empty exists; restore writes a new folder/);
    assert.equal(snapshot('copy', 'a', 'b').code, 2);
  });
});
