/**
 * The analysis notebook's paper sections (issue 17 item 5): "Table 5 in miniature" and "Figure 3 in
 * miniature" read their `exp sweep` parent runs back from MLflow. Two tiny real sweeps build the
 * store with the project's own code (offline RL: BC, DT, AT on one device, AT on a ring of 2, on a
 * Pendulum dataset written here; line retrieval: two cases), the notebook runs by the README's
 * command (scripts/notebook.sh), and report.json's `table5` and `figure3` are checked against the
 * store read independently here (each child's last logged value from its metric history). Then the
 * same store made to look as if its Table 5 sweep were running again (resumed: an old summary, one
 * child unfinished) and its Figure 3 sweep had been killed: the table comes from the finished
 * children, Figure 3 is skipped. Table 4 (section 9): a tiny `bench/ring-cost.js --tracking-uri`
 * run in the same store, its report.json rows checked against the bench's own JSON.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Rng } from '../../common/index.js';
import { boxSpace, writeEpisodes } from '../../datasets/index.js';
import { FileStore } from '../../experiments/tracking/index.js';
import { make } from '../../rl/envs/index.js';
import { venvBin } from '../helpers/python.js';
import { repoRoot, runExp, tempDir, testEnv } from './util.js';

interface SweepJson {
  parent_run_id: string;
  status: string;
  children: { cell: string; case: string; seed: number; runId: string; status: string }[];
}

interface Table5Row {
  case: string;
  dataset: string;
  mean: number;
  std: number;
  n: number;
  se: number;
}

interface Table5Shape {
  best_at: string | null;
  at_gt_dt: boolean | null;
  dt_gt_bc: boolean | null;
  paper_order: boolean | null;
  context_order: string[];
  trajectories: number[];
  rises: boolean | null;
  rises_beyond_2se: boolean | null;
}

interface Report {
  table5: {
    experiment: string;
    parent_run: string;
    parent_status: string;
    source: 'summary' | 'children';
    rows: Table5Row[];
    shape: Record<string, Table5Shape>;
  } | null;
  table4: {
    experiment: string;
    run: string;
    machine: string;
    tokens_per_device: number;
    rows: {
      row: string;
      method: string;
      devices: number;
      tokens_per_sec: number;
      mfu: number;
      ring_cost_mfu_points: number | null;
    }[];
    max_ring_cost_mfu_points: number | null;
  } | null;
  figure3: {
    experiment: string;
    parent_run: string;
    series: Record<string, { lines: number[]; accuracy: number[]; std: number[]; seeds: number[] }>;
    trained_lines: Record<string, number>;
    chance: number[];
  } | null;
  figures: string[];
}

const DATASET = 'pendulum-mixed.arrow';

/** Pendulum episodes of a state-feedback policy plus Gaussian action noise (mixed-quality data). */
function pendulumEpisodes(n: number, seed: number) {
  const rng = new Rng(seed);
  const env = make<Float64Array, Float32Array>('Pendulum-v1', {}, { maxEpisodeSteps: 20 });
  const out = [];
  for (let e = 0; e < n; e++) {
    let [o] = env.reset({ seed: seed + e });
    const obs: number[] = [...o];
    const actions: number[] = [];
    const rewards: number[] = [];
    const term: number[] = [];
    const trunc: number[] = [];
    for (;;) {
      const a = Float32Array.of(Math.max(-2, Math.min(2, Math.tanh(1.5 * o[0] - 0.1 * o[2]) + rng.normal())));
      const [next, r, te, tr] = env.step(a);
      obs.push(...next);
      actions.push(a[0]);
      rewards.push(r);
      term.push(te ? 1 : 0);
      trunc.push(tr ? 1 : 0);
      o = next;
      if (te || tr) break;
    }
    out.push({ observations: obs, actions, rewards, terminations: term, truncations: trunc });
  }
  env.close();
  return out;
}

/** The last logged value of a metric (largest step, then newest), from its full history. */
async function lastValue(fs: FileStore, runId: string, key: string): Promise<number | undefined> {
  const h = await fs.getMetricHistory(runId, key);
  if (!h.length) return undefined;
  return h.reduce((a, b) => (b.step > a.step || (b.step === a.step && b.timestamp >= a.timestamp) ? b : a))
    .value;
}

function meanStd(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, std };
}

/** Table 5's rows from the store: per case, the last eval/normalized_score of each FINISHED child. */
async function expectedTable5(fs: FileStore, sweep: SweepJson): Promise<Table5Row[]> {
  const byCase = new Map<string, number[]>();
  for (const c of sweep.children) {
    if ((await fs.getRun(c.runId)).info.status !== 'FINISHED') continue;
    const v = await lastValue(fs, c.runId, 'eval/normalized_score');
    assert.ok(v !== undefined && Number.isFinite(v), `${c.case} seed ${c.seed}: eval/normalized_score`);
    byCase.set(c.case, [...(byCase.get(c.case) ?? []), v]);
  }
  return [...byCase].map(([c, xs]) => {
    const { mean, std } = meanStd(xs);
    return { case: c, dataset: DATASET, mean, std, n: xs.length, se: std / Math.sqrt(xs.length) };
  });
}

/** The paper's shape, computed here from the rows (the notebook's rule, written once more). */
function expectedShape(rows: Table5Row[], trajectories: Record<string, number>): Table5Shape {
  const cell = Object.fromEntries(rows.map((r) => [r.case, r]));
  const gap = (hi?: Table5Row, lo?: Table5Row) =>
    !hi || !lo || hi.n < 2 || lo.n < 2 ? null : hi.mean - lo.mean > 2 * Math.hypot(hi.se, lo.se);
  const at = rows
    .map((r) => r.case)
    .filter((c) => c.startsWith('at'))
    .sort((a, b) => trajectories[a] - trajectories[b] || a.localeCompare(b));
  const best = at.reduce<string | null>((b, c) => (b === null || cell[c].mean > cell[b].mean ? c : b), null);
  const atDt = gap(best ? cell[best] : undefined, cell.dt);
  const dtBc = gap(cell.dt, cell.bc);
  const steps = at.slice(1).map((c, i) => gap(cell[c], cell[at[i]]));
  return {
    best_at: best,
    at_gt_dt: atDt,
    dt_gt_bc: dtBc,
    paper_order: atDt === null || dtBc === null ? null : atDt && dtBc,
    context_order: at,
    trajectories: at.map((c) => trajectories[c]),
    rises: at.length > 1 ? at.slice(1).every((c, i) => cell[c].mean > cell[at[i]].mean) : null,
    rises_beyond_2se: at.length < 2 || steps.includes(null) ? null : steps.every(Boolean),
  };
}

function assertRows(got: Table5Row[], want: Table5Row[], what: string): void {
  assert.deepEqual(
    got.map((r) => [r.case, r.dataset, r.n]),
    want.map((r) => [r.case, r.dataset, r.n]),
    what,
  );
  for (const [i, w] of want.entries())
    for (const k of ['mean', 'std', 'se'] as const)
      assert.ok(
        Math.abs(got[i][k] - w[k]) <= 1e-9 * (1 + Math.abs(w[k])),
        `${what}: ${w.case} ${k} ${got[i][k]} vs ${w[k]}`,
      );
}

/** The README's notebook command, as a user runs it, against `store`; the executed notebook's text and the report. */
async function runNotebook(
  store: string,
  out: string,
): Promise<{ report: Report; text: string; images: number }> {
  const r = await new Promise<{ code: number; stderr: string }>((done) => {
    const child = spawn('bash', ['-c', 'bash scripts/notebook.sh'], {
      cwd: repoRoot,
      env: {
        ...process.env,
        MLFLOW_TRACKING_URI: store,
        EXP_EXPERIMENT: '',
        EXP_DATASET: '',
        EXP_TABLE5: '',
        EXP_FIGURE3: '',
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
  const nb = JSON.parse(readFileSync(join(out, 'analysis.ipynb'), 'utf8')) as {
    cells: { outputs?: { text?: string | string[]; data?: Record<string, unknown> }[] }[];
  };
  const outputs = nb.cells.flatMap((c) => c.outputs ?? []);
  return {
    report: JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as Report,
    // printed lines, and the plain-text form of displayed tables
    text: outputs
      .map((o) => {
        const t = o.text ?? (o.data?.['text/plain'] as string | string[] | undefined) ?? '';
        return Array.isArray(t) ? t.join('') : t;
      })
      .join('\n'),
    images: outputs.filter((o) => o.data?.['image/png']).length,
  };
}

describe('the analysis notebook: Table 5 and Figure 3 from their sweep parents', () => {
  const work = tempDir('nb-paper');
  const store = join(work, 'mlruns');
  const env = testEnv(work);
  const seed = Math.floor(Math.random() * 1000);
  let table5: SweepJson;
  let figure3: SweepJson;

  test('tiny Table 5 and Figure 3 sweeps, 2 seeds each, into a file store', async () => {
    console.log(`# seed ${seed} (dataset episodes; sweep seeds ${seed},${seed + 1}); work ${work}`);
    writeEpisodes(
      join(work, DATASET),
      {
        datasetId: 'test/pendulum-mixed-v0',
        observationSpace: boxSpace(3),
        actionSpace: boxSpace(1, 'float32', -2, 2),
        envId: 'Pendulum-v1',
        source: 'test',
        // reference returns, so the recipe logs eval/normalized_score
        refMinScore: -400,
        refMaxScore: 0,
        maxEpisodeSteps: 20,
      },
      pendulumEpisodes(8, seed),
    );
    const offline = readFileSync(join(repoRoot, 'test', 'fixtures', 'offline-rl-tiny.yaml'), 'utf8');
    writeFileSync(
      join(work, 'table5.yaml'),
      `${offline}
sweep:
  cases:
    - 'bc: offline-rl.algo=bc'
    - 'dt: offline-rl.algo=dt'
    - 'at-bpt: offline-rl.algo=at'
    - 'at-ring2: offline-rl.algo=at offline-rl.model.attention=ring offline-rl.model.devices=2 offline-rl.at.maxTrajectories=4'
`,
    );
    writeFileSync(
      join(work, 'figure3.yaml'),
      `recipe: line-retrieval
experiment: figure3-line-retrieval
line-retrieval:
  model: { hiddenSize: 16, intermediateSize: 32, numLayers: 1, numHeads: 2, numKvHeads: 2 }
  maxValue: 9
  trainLines: [1, 2]
  curriculum: { startLines: 1, holdSteps: 0, fullSteps: 0 }
  steps: 2
  batchSize: 2
  warmupSteps: 1
  evalEvery: 0
  blockSize: 8
  evalLines: [1, 2]
  evalCases: 4
  evalBatch: 4
  devices: 2
sweep:
  cases:
    - 'one-device: line-retrieval.trainLines=[1]'
    - 'ring2: line-retrieval.trainLines=[1,2]'
`,
    );
    const common = [
      '--seeds',
      `${seed},${seed + 1}`,
      '--parallel',
      '2',
      '--set',
      'tracking.systemMetricsEverySec=0',
      '--tracking-uri',
      store,
      '--json',
    ];
    const [t5, f3] = await Promise.all([
      runExp(
        [
          'sweep',
          'table5.yaml',
          '--grid',
          `offline-rl.dataset=${DATASET}`,
          '--set',
          'experiment=table5-hopper',
          '--set',
          'offline-rl.train.steps=2',
          '--set',
          'offline-rl.train.evalEvery=1',
          ...common,
        ],
        { env, cwd: work },
      ),
      runExp(['sweep', 'figure3.yaml', ...common], { env, cwd: work }),
    ]);
    assert.equal(t5.code, 0, t5.stderr.slice(-3000));
    assert.equal(f3.code, 0, f3.stderr.slice(-3000));
    table5 = JSON.parse(t5.stdout.trim().split('\n').pop() ?? '') as SweepJson;
    figure3 = JSON.parse(f3.stdout.trim().split('\n').pop() ?? '') as SweepJson;
    assert.equal(table5.children.length, 8);
    assert.equal(figure3.children.length, 4);
    assert.ok([...table5.children, ...figure3.children].every((c) => c.status === 'FINISHED'));
    // Table 4: the bench as the README runs it, logged into the same store
    const bench = spawnSync(
      process.execPath,
      [
        join(repoRoot, 'dist', 'bench', 'ring-cost.js'),
        ...['--steps', '1', '--tokens-per-device', '64', '--devices', '1,2'],
        ...['--out', join(work, 'ring-cost.json'), '--tracking-uri', store],
      ],
      { cwd: repoRoot, encoding: 'utf8', timeout: 240_000 },
    );
    assert.equal(bench.status, 0, bench.stderr.slice(-3000));
  });

  test('report.json: table5 from the parent summary and figure3 match the store; figures and verdicts shown', async () => {
    const fs = new FileStore(store);
    const { report, text, images } = await runNotebook(store, join(work, 'nb'));
    const t5 = report.table5;
    assert.ok(t5, 'table5 reported');
    assert.equal(t5.experiment, 'table5-hopper');
    assert.equal(t5.parent_run, table5.parent_run_id);
    assert.equal(t5.source, 'summary');
    const rows = await expectedTable5(fs, table5);
    assert.deepEqual(
      rows.map((r) => r.case),
      ['bc', 'dt', 'at-bpt', 'at-ring2'],
    );
    assertRows(t5.rows, rows, 'table5 from the summary');
    const trajectories: Record<string, number> = {};
    for (const c of table5.children)
      trajectories[c.case] = Number((await fs.getRun(c.runId)).params['offline-rl.at.maxTrajectories']);
    assert.deepEqual([trajectories['at-bpt'], trajectories['at-ring2']], [2, 4]);
    assert.deepEqual(t5.shape, { [DATASET]: expectedShape(rows, trajectories) });
    assert.match(text, new RegExp(`${DATASET}: AT \\(at-[\\w-]+\\) > DT > BC, each gap > 2 SE: (yes|no)`));
    assert.match(text, /at-bpt \(2\) [\d.-]+ < at-ring2 \(4\) [\d.-]+: (yes|no), each step > 2 SE: (yes|no)/);
    const se = (c: string) => rows.find((r) => r.case === c)!;
    assert.ok(
      text.includes(`${se('dt').mean.toFixed(1)} ± ${se('dt').se.toFixed(1)} (2)`),
      'the table cell of DT',
    );

    const f3 = report.figure3;
    assert.ok(f3, 'figure3 reported');
    assert.equal(f3.experiment, 'figure3-line-retrieval');
    assert.equal(f3.parent_run, figure3.parent_run_id);
    assert.deepEqual(f3.trained_lines, { 'one-device': 1, ring2: 2 });
    assert.deepEqual(f3.chance, [1 / 9]);
    // per case and line count: the last eval/ring_accuracy_<n>lines of each seed, averaged
    const acc = new Map<string, Map<number, number[]>>();
    for (const c of figure3.children) {
      const run = await fs.getRun(c.runId);
      const byLines = acc.get(c.case) ?? new Map<number, number[]>();
      for (const key of Object.keys(run.metrics)) {
        const m = /^eval\/ring_accuracy_(\d+)lines$/.exec(key);
        if (!m) continue;
        const v = await lastValue(fs, c.runId, key);
        byLines.set(Number(m[1]), [...(byLines.get(Number(m[1])) ?? []), v!]);
      }
      acc.set(c.case, byLines);
    }
    assert.deepEqual(Object.keys(f3.series), ['one-device', 'ring2']);
    for (const [c, byLines] of acc) {
      const lines = [...byLines.keys()].sort((a, b) => a - b);
      assert.ok(lines.includes(1) && lines.includes(2), `${c}: evalLines 1 and 2 in ${lines}`);
      assert.deepEqual(f3.series[c].lines, lines, c);
      assert.deepEqual(
        f3.series[c].seeds,
        lines.map(() => 2),
      );
      for (const [i, n] of lines.entries()) {
        const { mean, std } = meanStd(byLines.get(n)!);
        assert.ok(
          Math.abs(f3.series[c].accuracy[i] - mean) < 1e-12,
          `${c} ${n} lines: ${f3.series[c].accuracy[i]} vs ${mean}`,
        );
        assert.ok(Math.abs(f3.series[c].std[i] - std) < 1e-12, `${c} ${n} lines std`);
      }
    }
    const t4 = report.table4;
    assert.ok(t4, 'table4 reported');
    assert.equal(t4.experiment, 'table4-ring-cost');
    const t4Exp = await fs.getExperimentByName('table4-ring-cost');
    const t4Runs = await fs.searchRuns([t4Exp!.experimentId]);
    assert.equal(t4Runs.length, 1);
    assert.equal(t4.run, t4Runs[0].info.runId);
    assert.equal(t4.tokens_per_device, 64);
    const benchJson = JSON.parse(readFileSync(join(work, 'ring-cost.json'), 'utf8')) as {
      machine: { model: string };
      rows: {
        method: string;
        devices: number;
        tokensPerSec: number;
        mfu: number;
        costMfuPoints: number | null;
      }[];
    };
    assert.equal(t4.machine, benchJson.machine.model);
    assert.deepEqual(
      t4.rows.map((r) => [r.row, r.method, r.devices, r.tokens_per_sec, r.ring_cost_mfu_points === null]),
      benchJson.rows.map((r) => [
        r.method === 'bpt' ? 'bpt' : `ring_n${r.devices}`,
        r.method,
        r.devices,
        r.tokensPerSec,
        r.costMfuPoints === null,
      ]),
    );
    // Floats pass through MLflow's text store and pandas: equal to the bench's
    // JSON up to the last bit or two (0.83 came back as 0.8300000000000001).
    t4.rows.forEach((r, i) => {
      const bench = benchJson.rows[i];
      assert.ok(Math.abs(r.mfu - bench.mfu) < 1e-4, `${r.row}: MFU ${r.mfu}`);
      if (bench.costMfuPoints !== null) {
        assert.ok(
          Math.abs(r.ring_cost_mfu_points! - bench.costMfuPoints) < 1e-9,
          `${r.row}: ring cost ${r.ring_cost_mfu_points} vs ${bench.costMfuPoints}`,
        );
      }
    });
    const costs = benchJson.rows.flatMap((r) => (r.costMfuPoints === null ? [] : [r.costMfuPoints]));
    assert.ok(Math.abs(t4.max_ring_cost_mfu_points! - Math.max(...costs)) < 1e-9, 'max ring cost');
    assert.ok(
      text.includes(
        `ring cost over BPT (MFU points, BPT − ring): ${benchJson.rows
          .slice(1)
          .map((r) => `N=${r.devices} ${r.costMfuPoints! >= 0 ? '+' : ''}${r.costMfuPoints!.toFixed(1)}`)
          .join(', ')}`,
      ),
      'the printed ring cost',
    );
    for (const png of ['table5.png', 'figure3.png', 'table4.png']) {
      assert.ok(report.figures.includes(png), `${png} in ${report.figures}`);
      assert.equal(
        readFileSync(join(work, 'nb', png))
          .subarray(1, 4)
          .toString(),
        'PNG',
        `${png} written`,
      );
    }
    // sections 2–3 (the newest experiment's curves) and these two figures, inline
    assert.equal(images, report.figures.length);
  });

  test('a Table 5 sweep running again (resumed: an old summary, one child unfinished): the table from its finished children; a killed Figure 3 sweep is skipped', async () => {
    // NOTE: in place, not on a copy: MLflow reads artifacts at the artifact_uri a run's meta.yaml records
    const fs = new FileStore(store);
    await fs.updateRun(table5.parent_run_id, 'RUNNING');
    assert.equal((await fs.listArtifacts(table5.parent_run_id, 'tables')).length, 2, 'the old summary stays');
    const unfinished = table5.children.find((c) => c.case === 'at-bpt' && c.seed === seed + 1)!;
    await fs.updateRun(unfinished.runId, 'RUNNING');
    await fs.updateRun(figure3.parent_run_id, 'KILLED', Date.now());

    const { report, text } = await runNotebook(store, join(work, 'nb-running'));
    const t5 = report.table5;
    assert.ok(t5, 'table5 reported');
    assert.equal(t5.source, 'children');
    assert.equal(t5.parent_status, 'RUNNING');
    const rows = await expectedTable5(fs, table5);
    assert.equal(rows.find((r) => r.case === 'at-bpt')?.n, 1, 'the running child is left out');
    assertRows(t5.rows, rows, 'table5 from the children');
    assert.match(text, /is RUNNING \(no final summary\): from its 7 finished children of 8, 1 running/);
    // one seed of at-bpt: the context check is not measured
    assert.equal(t5.shape[DATASET].rises_beyond_2se, null);
    assert.equal(report.figure3, null);
    assert.match(
      text,
      /experiment 'figure3-line-retrieval' has no sweep parent run that finished or runs: section skipped/,
    );
    assert.ok(!report.figures.includes('figure3.png'));
  });
});
