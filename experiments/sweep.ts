/**
 * `exp sweep`: one config over seeds × a grid of overrides. A parent MLflow run holds the sweep;
 * each cell × seed is a child run (`mlflow.parentRunId`), run as its own `exp run` subprocess
 * (its own tfjs instance and backend), at most `parallel` at once. At the end the parent logs the
 * mean ± std over seeds of every final metric per grid cell (`summary/…`), as metrics and as a
 * table (JSON + Arrow).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import YAML from 'yaml';
import { errorMessage, InputError } from '../common/index.js';
import { configToYaml, displayPath, loadConfig } from './config/load.js';
import { PACKAGE_ROOT, workDir } from './paths.js';
import { linePlotSvg } from './plot/svg.js';
import {
  openStore,
  resolveTrackingUri,
  RunTracker,
  type RunStatus,
  type TrackingStore,
} from './tracking/index.js';

export interface SweepOptions {
  config: string;
  seeds: number[];
  /** `key=v1,v2,…` entries; the sweep runs their cartesian product. */
  grid: string[];
  parallel: number;
  sets?: string[];
  trackingUri?: string;
  quiet?: boolean;
}

export interface SweepChild {
  cell: string;
  assignments: string[];
  seed: number;
  runId?: string;
  status: RunStatus | 'NOT_STARTED';
  exitCode: number;
}

export interface SummaryRow {
  cell: string;
  metric: string;
  mean: number;
  std: number;
  n: number;
  [key: string]: string | number;
}

export interface SweepOutcome {
  parentRunId: string;
  status: RunStatus;
  children: SweepChild[];
  summary: SummaryRow[];
}

/** Parses `--seeds 0,1,2` (also `0-4`). */
export function parseSeeds(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(',').map((p) => p.trim())) {
    const range = /^(\d+)-(\d+)$/.exec(part);
    if (range) {
      const [a, b] = [Number(range[1]), Number(range[2])];
      if (b < a) throw new InputError(`--seeds: range '${part}' runs backwards`);
      for (let s = a; s <= b; s++) out.push(s);
    } else if (/^\d+$/.test(part)) out.push(Number(part));
    else throw new InputError(`--seeds: expected integers ≥ 0 like 0,1,2 or 0-4; got '${part}'`);
  }
  if (new Set(out).size !== out.length) throw new InputError(`--seeds: '${text}' repeats a seed`);
  return out;
}

/** Expands `key=v1,v2` entries into the list of cells, each a list of `key=value` overrides. */
export function expandGrid(grid: string[]): string[][] {
  let cells: string[][] = [[]];
  const seen = new Set<string>();
  for (const entry of grid) {
    const eq = entry.indexOf('=');
    const key = entry.slice(0, eq);
    if (eq <= 0 || eq === entry.length - 1)
      throw new InputError(`--grid '${entry}': expected key.path=v1,v2,…`);
    if (seen.has(key)) throw new InputError(`--grid: key '${key}' given twice`);
    seen.add(key);
    // NOTE: values are YAML; a flow list `[1, 2]` stays one value (commas inside brackets).
    const values = splitTopLevel(entry.slice(eq + 1));
    cells = cells.flatMap((c) => values.map((v) => [...c, `${key}=${v}`]));
  }
  return cells;
}

function splitTopLevel(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '[' || ch === '{') depth++;
    if (ch === ']' || ch === '}') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  out.push(cur.trim());
  return out.filter((v) => v !== '');
}

/** A metric-key-safe label of a cell: `toy.lr=0.01` → `toy.lr_0.01`. */
export function cellLabel(assignments: string[]): string {
  return assignments.length ? assignments.join(' ').replace(/[^\w\-. /]/g, '_') : 'all';
}

function meanStd(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  // Sample standard deviation (n − 1), 0 for a single seed.
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, std };
}

/**
 * The parent's plot `plots/learning_curves.svg`: per cell, the mean over seeds of `train/loss`
 * (or the first `train/` metric) against the step.
 */
async function learningCurvePlot(
  store: TrackingStore,
  children: SweepChild[],
  tracker: RunTracker,
): Promise<void> {
  const done = children.filter((c) => c.status === 'FINISHED' && c.runId);
  if (!done.length) return;
  const first = await store.getRun(done[0].runId!);
  const key =
    'train/loss' in first.metrics
      ? 'train/loss'
      : Object.keys(first.metrics).find((k) => k.startsWith('train/'));
  if (!key) return;
  const byCell = new Map<string, Map<number, number[]>>();
  for (const c of done) {
    const steps = byCell.get(c.cell) ?? new Map<number, number[]>();
    for (const m of await store.getMetricHistory(c.runId!, key))
      steps.set(m.step, [...(steps.get(m.step) ?? []), m.value]);
    byCell.set(c.cell, steps);
  }
  const series = [...byCell].map(([cell, steps]) => {
    const xs = [...steps.keys()].sort((a, b) => a - b);
    return { name: cell, x: xs, y: xs.map((x) => meanStd(steps.get(x)!).mean) };
  });
  const positive = series.every((sr) => sr.y.every((v) => v > 0));
  await tracker.plot(
    'learning_curves',
    linePlotSvg({
      title: `${key}: mean over seeds`,
      xLabel: 'step',
      yLabel: key,
      series,
      logY: positive ? 10 : undefined,
    }),
  );
}

/** Runs one child `exp run` and returns its outcome; its stderr lines are prefixed. */
/** Child processes running now (to forward a Ctrl-C to). */
const running = new Set<ChildProcess>();

function runChild(
  args: string[],
  prefix: string,
  quiet: boolean,
): Promise<{ code: number; runId?: string; status?: RunStatus }> {
  return new Promise((resolve) => {
    // NOTE: detached (own process group), so a terminal's Ctrl-C reaches only the sweep, which
    // forwards exactly one SIGINT to each running child (two would stop it without a checkpoint).
    const child = spawn(process.execPath, [join(PACKAGE_ROOT, 'bin', 'exp.js'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, EXP_WORK_DIR: workDir() },
      detached: true,
    });
    running.add(child);
    child.on('close', () => running.delete(child));
    let stdout = '';
    let pending = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      pending += d;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      if (!quiet) for (const l of lines) process.stderr.write(`[${prefix}] ${l}\n`);
    });
    child.on('close', (code, signal) => {
      if (!quiet && pending) process.stderr.write(`[${prefix}] ${pending}\n`);
      let runId: string | undefined;
      let status: RunStatus | undefined;
      try {
        const o = JSON.parse(stdout.trim().split('\n').pop() ?? '') as { run_id: string; status: RunStatus };
        runId = o.run_id;
        status = o.status;
      } catch {
        // the child failed before printing its outcome
      }
      resolve({ code: code ?? (signal === 'SIGINT' ? 130 : 1), runId, status });
    });
  });
}

export async function runSweep(o: SweepOptions): Promise<SweepOutcome> {
  if (!o.seeds.length) throw new InputError('--seeds: give at least one seed');
  if (!Number.isInteger(o.parallel) || o.parallel < 1)
    throw new InputError(`--parallel: expected an integer ≥ 1; got ${o.parallel}`);
  const say = (l: string) => {
    if (!o.quiet) process.stderr.write(`${l}\n`);
  };
  const cells = expandGrid(o.grid);
  // Validate every cell before starting anything: a bad grid key fails now, with exit 2.
  const base = loadConfig(o.config, { sets: o.sets });
  for (const cell of cells) loadConfig(o.config, { sets: [...(o.sets ?? []), ...cell], seed: o.seeds[0] });
  const uri = resolveTrackingUri(o.trackingUri || base.config.tracking.uri);
  const store = openStore(uri);
  const experimentId = await store.ensureExperiment(base.config.experiment || base.recipe.name);
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const parent = await store.createRun({
    experimentId,
    runName: `sweep-${base.recipe.name}-${stamp}`,
    startTime: Date.now(),
    tags: [{ key: 'mlflow.runName', value: `sweep-${base.recipe.name}-${stamp}` }],
  });
  const tracker = new RunTracker(store, parent.runId, {
    flushEverySec: 5,
    stagingDir: join(workDir(), 'runs', parent.runId),
  });
  tracker.tags({
    'exp.sweep': 'true',
    'exp.recipe': base.recipe.name,
    'exp.config': displayPath(base.file),
    'mlflow.source.name': `exp sweep ${displayPath(base.file)}`,
    'mlflow.source.type': 'LOCAL',
  });
  tracker.params({
    'sweep.seeds': o.seeds.join(','),
    'sweep.grid': JSON.stringify(o.grid),
    'sweep.parallel': o.parallel,
    'sweep.sets': JSON.stringify(o.sets ?? []),
    'sweep.cells': cells.length,
  });
  await tracker.flush();
  await tracker.content('config.yaml', configToYaml(base.config));
  say(
    `sweep ${parent.runId}: ${cells.length} cells × ${o.seeds.length} seeds, ${o.parallel} at once (${store.uri})`,
  );

  const children: SweepChild[] = cells.flatMap((assignments) =>
    o.seeds.map((seed) => ({
      cell: cellLabel(assignments),
      assignments,
      seed,
      status: 'NOT_STARTED' as const,
      exitCode: -1,
    })),
  );
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    // Stop launching; each running child saves a checkpoint and ends KILLED.
    interrupted = true;
    say(`sweep: ${sig}: stopping ${running.size} running child runs after their current step`);
    for (const c of running) c.kill('SIGINT');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let next = 0;
  const worker = async () => {
    while (!interrupted && next < children.length) {
      const c = children[next++];
      const args = [
        'run',
        base.file,
        '--seed',
        String(c.seed),
        ...[...(o.sets ?? []), ...c.assignments].flatMap((a) => ['--set', a]),
        '--parent-run-id',
        parent.runId,
        '--tracking-uri',
        store.uri,
        '--json',
        '--quiet',
      ];
      const r = await runChild(args, `${c.assignments.join(' ') || 'run'} seed=${c.seed}`, Boolean(o.quiet));
      c.exitCode = r.code;
      c.runId = r.runId;
      c.status = r.status ?? 'FAILED';
      say(`sweep: ${c.cell} seed ${c.seed} → ${c.status}${c.runId ? ` (${c.runId})` : ''}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(o.parallel, children.length) }, worker));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  // Summary over seeds of each child's final (latest) metrics, per cell.
  const finals = new Map<string, Map<string, number[]>>();
  for (const c of children) {
    if (c.status !== 'FINISHED' || !c.runId) continue;
    const run = await store.getRun(c.runId);
    const byMetric = finals.get(c.cell) ?? new Map<string, number[]>();
    for (const [k, v] of Object.entries(run.metrics)) {
      if (k.startsWith('system/')) continue;
      byMetric.set(k, [...(byMetric.get(k) ?? []), v]);
    }
    finals.set(c.cell, byMetric);
  }
  const summary: SummaryRow[] = [];
  for (const [cell, byMetric] of finals) {
    const assignments = children.find((c) => c.cell === cell)?.assignments ?? [];
    const gridValues = Object.fromEntries(
      assignments.map((a) => {
        const eq = a.indexOf('=');
        return [a.slice(0, eq), String(YAML.parse(a.slice(eq + 1)) ?? '')];
      }),
    );
    for (const [metric, xs] of [...byMetric].sort(([a], [b]) => a.localeCompare(b))) {
      const { mean, std } = meanStd(xs);
      summary.push({ cell, ...gridValues, metric, mean, std, n: xs.length });
      const prefix = cells.length > 1 ? `summary/${cell}/${metric}` : `summary/${metric}`;
      tracker.metrics({ [`${prefix}/mean`]: mean, [`${prefix}/std`]: std }, 0);
    }
  }
  if (summary.length) await tracker.table('summary', summary);
  await learningCurvePlot(store, children, tracker);
  const failed = children.filter((c) => c.status !== 'FINISHED');
  let status: RunStatus = 'FINISHED';
  if (interrupted || children.some((c) => c.status === 'KILLED')) {
    status = 'KILLED';
    tracker.tags({ 'exp.status_reason': 'interrupted (SIGINT/SIGTERM)' });
  } else if (failed.length) {
    status = 'FAILED';
    tracker.tags({
      'exp.status_reason': `${failed.length} of ${children.length} child runs did not finish: ${failed
        .map((c) => `${c.cell} seed ${c.seed} ${c.status}`)
        .join('; ')}`,
    });
  }
  try {
    await tracker.close();
  } catch (err) {
    say(`sweep: logging the summary failed: ${errorMessage(err)}`);
    status = 'FAILED';
  }
  await store.updateRun(parent.runId, status, Date.now());
  await store.close(base.config.tracking.finishTimeoutSec * 1000);
  say(`sweep ${parent.runId} ${status}`);
  return { parentRunId: parent.runId, status, children, summary };
}
