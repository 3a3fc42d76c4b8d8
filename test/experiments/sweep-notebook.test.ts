/**
 * `exp sweep` runs child runs under a parent with a mean ± std summary; then the analysis notebook
 * executes headless by the README's Quick start command (scripts/notebook.sh) against those runs, a
 * context-scaling table logged like the recipe logs it, and an Arrow dataset read with pyarrow.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FileStore, RunTracker } from '../../experiments/tracking/index.js';
import { runPythonAsync, venvBin } from '../helpers/python.js';
import { finished, repoRoot, runExp, spawnExp, tempDir, testEnv, waitForStep } from './util.js';

interface SweepJson {
  parent_run_id: string;
  status: string;
  children: { cell: string; seed: number; runId: string; status: string }[];
  summary: { cell: string; metric: string; mean: number; std: number; n: number }[];
}

describe('exp sweep and the analysis notebook', () => {
  const work = tempDir('sweep');
  const store = join(work, 'mlruns');
  const env = testEnv(work);
  let sweep: SweepJson;

  test('2 learning rates × 3 seeds, 2 at once: children under the parent, summary mean ± std', async () => {
    const r = await runExp(
      [
        'sweep',
        'toy.yaml',
        '--seeds',
        '0,1,2',
        '--grid',
        'toy.lr=0.01,0.03',
        '--parallel',
        '2',
        '--set',
        'toy.steps=40',
        '--set',
        'toy.evalEvery=10',
        '--set',
        'tracking.systemMetricsEverySec=0',
        '--tracking-uri',
        store,
        '--json',
      ],
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    sweep = JSON.parse(r.stdout.trim().split('\n').pop()!) as SweepJson;
    assert.equal(sweep.status, 'FINISHED');
    assert.equal(sweep.children.length, 6);
    assert.ok(sweep.children.every((c) => c.status === 'FINISHED'));
    const fs = new FileStore(store);
    // children are named by their grid cell, so they differ in MLflow's runs table (issue 15)
    for (const c of sweep.children)
      assert.equal(
        (await fs.getRun(c.runId)).info.runName,
        `${c.cell.replace('toy.lr_', 'lr=')}-seed${c.seed}`,
      );
    const parent = await fs.getRun(sweep.parent_run_id);
    assert.equal(parent.tags['exp.sweep'], 'true');
    assert.equal(parent.params['sweep.seeds'], '0,1,2');
    const evalLosses: Record<string, number[]> = {};
    for (const c of sweep.children) {
      const child = await fs.getRun(c.runId);
      assert.equal(child.tags['mlflow.parentRunId'], sweep.parent_run_id);
      assert.equal(child.params.seed, String(c.seed));
      evalLosses[c.cell] = [...(evalLosses[c.cell] ?? []), child.metrics['eval/loss']];
    }
    for (const cell of ['toy.lr_0.01', 'toy.lr_0.03']) {
      const xs = evalLosses[cell];
      const mean = xs.reduce((a, b) => a + b, 0) / 3;
      const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / 2);
      const row = sweep.summary.find((s) => s.cell === cell && s.metric === 'eval/loss')!;
      assert.equal(row.n, 3);
      assert.ok(Math.abs(row.mean - mean) < 1e-12 && Math.abs(row.std - std) < 1e-12, `${cell} summary`);
      assert.ok(Math.abs(parent.metrics[`summary/${cell}/eval/loss/mean`] - mean) < 1e-9, 'parent metric');
      assert.ok(Math.abs(parent.metrics[`summary/${cell}/eval/loss/std`] - std) < 1e-9);
    }
    const plots = await fs.listArtifacts(sweep.parent_run_id, 'plots');
    assert.deepEqual(
      plots.map((a) => a.path),
      ['plots/learning_curves.svg'],
    );
    const arts = await fs.listArtifacts(sweep.parent_run_id, 'tables');
    assert.deepEqual(
      arts.map((a) => a.path),
      ['tables/summary.arrow', 'tables/summary.json'],
    );

    // A bad grid key fails before anything runs.
    const bad = await runExp(
      ['sweep', 'toy.yaml', '--seeds', '0', '--grid', 'toy.lrr=1,2', '--tracking-uri', store],
      { env },
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /toy\.lrr: unknown key \(did you mean 'lr'\?\) \(from --set\)/);
  });

  test('notebooks/analysis.ipynb executes headless: curves across seeds, table, context scaling, returns', async () => {
    // A context-scaling table, logged the way a recipe logs it (tracker.table), in its own experiment.
    const fs = new FileStore(store);
    const exp = await fs.ensureExperiment('context-scaling');
    const info = await fs.createRun({ experimentId: exp, runName: 'cs', startTime: Date.now(), tags: [] });
    const tracker = new RunTracker(fs, info.runId, { flushEverySec: 60, stagingDir: join(work, 'cs') });
    tracker.tags({ 'exp.recipe': 'context-scaling' });
    const rows = [
      { method: 'vanilla', devices: 1, max_context: 1024 },
      { method: 'memeff', devices: 1, max_context: 4096 },
      { method: 'blockwise', devices: 1, max_context: 8192 },
      ...[1, 2, 4].map((n) => ({ method: 'ring', devices: n, max_context: 8192 * n })),
    ];
    await tracker.table('context_scaling', rows);
    await tracker.close();
    await fs.updateRun(info.runId, 'FINISHED', Date.now());

    // What a run measured and logged as a param (the offline-RL recipes' probed memory peak)
    // differs between the seeds of a cell: it must not split the cell's setting.
    for (const [i, c] of sweep.children.entries())
      await fs.logBatch(c.runId, {
        metrics: [],
        tags: [],
        params: [{ key: 'model.probe_mib_per_device', value: (40 + i * 0.7).toFixed(1) }],
      });

    // A small trajectory dataset in the datasets/ file layout (one row per step).
    const dataset = join(work, 'episodes.arrow');
    const mk = await runPythonAsync(`
import pyarrow as pa
ep, rw = [], []
for e in range(20):
    for t in range(10 + e):
        ep.append(e); rw.append(float(e) / 10)
t = pa.table({"episode_id": pa.array(ep, pa.int32()), "rewards": pa.array(rw, pa.float64())})
with pa.ipc.new_file(${JSON.stringify(dataset)}, t.schema) as w:
    w.write_table(t)
`);
    assert.equal(mk.code, 0, mk.stderr);

    // the README's Quick start command, verbatim, from the repository root as a user runs it; the
    // environment points it at this test's runs and output (issue 15); jupyter from the test venv
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const quickStart = /## Quick start[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const command = quickStart.split('\n').find((l) => l.includes('notebook'));
    assert.equal(
      command?.replace(/\s+#.*$/, ''),
      'bash scripts/notebook.sh',
      `README Quick start: ${quickStart}`,
    );
    const out = join(work, 'nb-out');
    const r = await new Promise<{ code: number; stderr: string }>((done) => {
      const child = spawn('bash', ['-c', command ?? ''], {
        cwd: repoRoot,
        env: {
          ...process.env,
          MLFLOW_TRACKING_URI: store,
          EXP_EXPERIMENT: 'toy',
          EXP_DATASET: dataset,
          EXP_OUTPUT_DIR: out,
          EXP_JUPYTER: join(venvBin(), 'jupyter'),
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      child.on('close', (code) => done({ code: code ?? -1, stderr }));
    });
    assert.equal(r.code, 0, `notebook failed:\n${r.stderr.slice(-5000)}`);
    // the executed notebook shows its figures inline, and nothing landed under notebooks/
    const executed = JSON.parse(readFileSync(join(out, 'analysis.ipynb'), 'utf8')) as {
      cells: { outputs?: { data?: Record<string, unknown> }[] }[];
    };
    const inline = executed.cells.flatMap((c) => c.outputs ?? []).filter((o) => o.data?.['image/png']).length;
    assert.equal(inline, 4, 'inline figures: learning curves, evaluation, context scaling, returns');
    assert.ok(!existsSync(join(repoRoot, 'notebooks', 'mlruns')), 'no stray notebooks/mlruns');
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as {
      runs: number;
      settings: string[];
      figures: string[];
      seeds: number;
      curve_points: number;
      final_columns: string[];
      context_scaling_rows: number;
      dataset_episodes: number;
      curve_figures: Record<string, { yscale: string; legend_below_axes: boolean }>;
    };
    assert.equal(report.runs, 6);
    // issue 15: scores were on a log axis and the legend spilled off the figure; a loss falls by
    // orders of magnitude and keeps its log axis
    assert.deepEqual(report.curve_figures, {
      'learning_curves.png': { yscale: 'log', legend_below_axes: true },
      'eval_curves.png': { yscale: 'linear', legend_below_axes: true },
    });
    assert.deepEqual(report.settings, ['lr=0.01', 'lr=0.03']);
    assert.deepEqual(report.figures, [
      'context_scaling.png',
      'eval_curves.png',
      'learning_curves.png',
      'returns.png',
    ]);
    assert.equal(report.seeds, 3);
    assert.equal(report.curve_points, 6 * 40);
    assert.ok(report.final_columns.includes('eval/loss mean'));
    assert.equal(report.context_scaling_rows, rows.length);
    assert.equal(report.dataset_episodes, 20);
    const returns = JSON.parse(readFileSync(join(out, 'returns.json'), 'utf8')) as { max: number };
    assert.ok(Math.abs(returns.max - 1.9 * 29) < 1e-9, `largest return ${returns.max}`);
    for (const png of ['learning_curves.png', 'context_scaling.png', 'returns.png'])
      assert.ok(readFileSync(join(out, png)).subarray(1, 4).toString() === 'PNG', `${png} written`);
  });

  // issue 15: the notebook crashed on zero runs. Executed by the README's command from a folder
  // with no ./mlruns, and against a store whose only run never finished: it must run to the end,
  // say why each section is skipped, draw nothing, and not create a store where there was none.
  test('the notebook on zero runs: every section skipped with the reason, exit 0, no figure, no store created', async () => {
    const script = join(repoRoot, 'scripts', 'notebook.sh');
    const execute = (cwd: string, extra: NodeJS.ProcessEnv) =>
      new Promise<{ code: number; stderr: string }>((done) => {
        const base = { ...process.env };
        for (const k of [
          'MLFLOW_TRACKING_URI',
          'EXP_EXPERIMENT',
          'EXP_DATASET',
          'EXP_OUTPUT_DIR',
          'EXP_BASE_DIR',
        ])
          delete base[k];
        const child = spawn('bash', [script], {
          cwd,
          env: { ...base, PWD: cwd, EXP_JUPYTER: join(venvBin(), 'jupyter'), ...extra },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (d) => {
          stderr += d;
        });
        child.on('close', (code) => done({ code: code ?? -1, stderr }));
      });
    const printed = (out: string) => {
      const nb = JSON.parse(readFileSync(join(out, 'analysis.ipynb'), 'utf8')) as {
        cells: { outputs?: { text?: string | string[]; data?: Record<string, unknown> }[] }[];
      };
      const outputs = nb.cells.flatMap((c) => c.outputs ?? []);
      return {
        text: outputs.map((o) => (Array.isArray(o.text) ? o.text.join('') : (o.text ?? ''))).join(''),
        images: outputs.filter((o) => o.data?.['image/png']).length,
      };
    };
    const report = (out: string) =>
      JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { runs: number; figures: string[] };

    // a folder with no runs at all: the default ./mlruns is missing
    const empty = tempDir('nb-empty');
    const r = await execute(empty, {});
    assert.equal(r.code, 0, `notebook failed on no store:\n${r.stderr.slice(-5000)}`);
    const out = join(empty, 'out', 'notebook');
    const shown = printed(out);
    assert.match(shown.text, /no runs at .*mlruns: run `npx exp run toy\.yaml` first/);
    assert.match(shown.text, /nothing to show: the sections below are skipped/);
    assert.match(shown.text, /no train\/loss points: section skipped/);
    assert.equal(shown.images, 0);
    assert.equal(report(out).runs, 0);
    assert.deepEqual(report(out).figures, []);
    assert.ok(!existsSync(join(empty, 'mlruns')), 'no ./mlruns created by reading');

    // a store whose only run is still RUNNING (killed before it ended): zero finished runs
    const store3 = join(empty, 'unfinished');
    const fs = new FileStore(store3);
    const exp = await fs.ensureExperiment('toy');
    await fs.createRun({ experimentId: exp, runName: 'never-ended', startTime: Date.now(), tags: [] });
    const out3 = join(empty, 'nb-unfinished');
    const r3 = await execute(empty, {
      MLFLOW_TRACKING_URI: store3,
      EXP_EXPERIMENT: 'toy',
      EXP_OUTPUT_DIR: out3,
    });
    assert.equal(r3.code, 0, `notebook failed on zero finished runs:\n${r3.stderr.slice(-5000)}`);
    assert.match(printed(out3).text, /experiment toy: 0 finished runs\nnothing to show/);
    assert.equal(printed(out3).images, 0);
    assert.equal(report(out3).runs, 0);
  });

  test('Ctrl-C to a sweep: running children save a checkpoint and end KILLED, so does the parent', async () => {
    const store2 = join(work, 'mlruns-interrupted');
    const child = spawnExp(
      [
        'sweep',
        'toy.yaml',
        '--seeds',
        '0-3',
        '--parallel',
        '2',
        '--set',
        'toy.steps=400',
        '--set',
        'toy.stepDelayMs=30',
        '--set',
        'tracking.flushEverySec=0.2',
        '--set',
        'tracking.systemMetricsEverySec=0',
        '--tracking-uri',
        store2,
        '--json',
      ],
      { env },
    );
    const done = finished(child);
    // Wait until both running children have logged some steps.
    const fs = new FileStore(store2);
    const until = Date.now() + 120_000;
    let ids: string[] = [];
    while (Date.now() < until) {
      const exp = await fs.getExperimentByName('toy').catch(() => undefined);
      const runs = exp ? await fs.searchRuns([exp.experimentId]) : [];
      ids = runs
        .filter((r) => r.tags['mlflow.parentRunId'] && (r.metrics['train/loss'] ?? -1) >= 0)
        .map((r) => r.info.runId);
      if (ids.length >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(ids.length, 2, 'two children running');
    await waitForStep(fs, ids[0], 'train/loss', 5);
    await waitForStep(fs, ids[1], 'train/loss', 5);
    child.kill('SIGINT');
    const r = await done;
    assert.equal(r.code, 130, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as SweepJson;
    assert.equal(out.status, 'KILLED');
    assert.deepEqual(
      out.children.map((c) => c.status),
      ['KILLED', 'KILLED', 'NOT_STARTED', 'NOT_STARTED'],
    );
    for (const c of out.children.slice(0, 2)) {
      const run = await fs.getRun(c.runId);
      assert.equal(run.info.status, 'KILLED');
      assert.match(run.tags['exp.status_reason'], /interrupted by SIGINT; checkpoint at step \d+/);
    }
    assert.equal((await fs.getRun(out.parent_run_id)).info.status, 'KILLED');
  });
});
