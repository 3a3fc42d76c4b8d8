/**
 * `exp sweep`: one config over seeds × a grid of overrides. A parent MLflow run holds the sweep;
 * each cell × seed is a child run (`mlflow.parentRunId`, tagged `exp.sweep.cell` = its index),
 * run by `exp run`: as local subprocesses, at most `parallel` at once (launcher `local`), or as
 * the elements of one SLURM array job (launcher `slurm`, issue 19; the parent waits for the array
 * and ends each failed or cancelled cell's run FAILED/KILLED with the scheduler's reason), or
 * as the pods of a Kubernetes indexed Job (launcher `k8s`, manifest only: `--dry-run`). At the
 * end the parent logs the mean ± std over seeds of every final metric per grid cell
 * (`summary/…`), as metrics and as a table (JSON + Arrow). `resume` reruns only the cells whose
 * run did not finish (continuing each from its checkpoint when it has a run).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import YAML from 'yaml';
import { errorMessage, InputError } from '../common/index.js';
import { configToYaml, displayPath, loadConfig } from './config/load.js';
import {
  type ArrayJobSpec,
  arrayIndexList,
  arrayStates,
  cellScript,
  describeElement,
  type ElementState,
  indexedJobManifest,
  runStatusOfState,
  type SlurmResources,
  sbatch,
  scancel,
  shellQuote,
  writeFileAtomic,
} from './launchers/index.js';
import { PACKAGE_ROOT, workDir } from './paths.js';
import { linePlotSvg } from './plot/svg.js';
import { shortAssignments } from './run-summary.js';
import {
  openStore,
  resolveTrackingUri,
  type Run,
  RunTracker,
  type RunStatus,
  type TrackingStore,
} from './tracking/index.js';

/** Where cells run: local subprocesses, a SLURM array job, a Kubernetes indexed Job (manifest). */
export type SweepLauncher = 'local' | 'slurm' | 'k8s';
export const SWEEP_LAUNCHERS: readonly SweepLauncher[] = ['local', 'slurm', 'k8s'];

export interface SweepOptions {
  /** Config path or built-in name (not with `resume`, which reads the sweep's own). */
  config?: string;
  seeds: number[];
  /** `key=v1,v2,…` entries; the sweep runs their cartesian product. */
  grid: string[];
  /** Cells at once (local processes, or the array's `%P` throttle). */
  parallel: number;
  sets?: string[];
  trackingUri?: string;
  quiet?: boolean;
  /** Default `local`. */
  launcher?: SweepLauncher;
  /** Print what would run or be submitted (script, manifest); create and submit nothing. */
  dryRun?: boolean;
  /** Parent run id of an earlier sweep: rerun only its cells whose run did not finish. */
  resume?: string;
  /** Per-cell resources of the SLURM array (and the pods' requests under k8s). */
  slurm?: Partial<SlurmResources>;
  /** Seconds between reads of the array's state (default 2). */
  pollSec?: number;
  /** k8s: the container image with ring-harness installed. */
  image?: string;
}

export interface SweepChild {
  /** Position in the sweep (cells × seeds, seeds fastest): the array index and `exp.sweep.cell`. */
  index: number;
  cell: string;
  /** The config's `sweep.cases` name of this cell, when the sweep has cases. */
  case?: string;
  assignments: string[];
  seed: number;
  runId?: string;
  status: RunStatus | 'NOT_STARTED';
  exitCode: number;
  /** Under SLURM: the element's final state and the scheduler's reason when it did not finish. */
  scheduler?: string;
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
  /** Indices of the cells this invocation ran (all, or the unfinished ones on resume). */
  ran: number[];
  /** SLURM array job ids this invocation submitted. */
  jobIds: string[];
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

/** One cell of a sweep: its label, its `sweep.cases` name if any, and its overrides. */
export interface SweepCell {
  label: string;
  case?: string;
  assignments: string[];
}

/** Parses the config's `sweep.cases` entries, `name: key=value key=value`. */
export function parseCases(entries: string[]): { name: string; assignments: string[] }[] {
  const seen = new Set<string>();
  return entries.map((entry, i) => {
    const m = /^\s*([\w.-]+)\s*:\s*(.*)$/.exec(entry);
    const at = `sweep.cases[${i}] '${entry}'`;
    if (!m) throw new InputError(`${at}: expected 'name: key=value key=value'`);
    const [, name, rest] = m;
    if (seen.has(name)) throw new InputError(`${at}: case '${name}' given twice`);
    seen.add(name);
    const assignments = rest.split(/\s+/).filter((a) => a !== '');
    for (const a of assignments)
      if (a.indexOf('=') <= 0) throw new InputError(`${at}: '${a}' is not key=value`);
    return { name, assignments };
  });
}

/** The sweep's cells: each case (or none) × each grid cell; the case's overrides come first. */
export function sweepCells(cases: { name: string; assignments: string[] }[], grid: string[]): SweepCell[] {
  const gridCells = expandGrid(grid);
  if (!cases.length) return gridCells.map((g) => ({ label: cellLabel(g), assignments: g }));
  return cases.flatMap((c) =>
    gridCells.map((g) => ({
      label: g.length ? `${c.name} ${cellLabel(g)}` : c.name,
      case: c.name,
      assignments: [...c.assignments, ...g],
    })),
  );
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
 * The parent's plots, each a metric's mean over seeds per cell against the step:
 * `plots/learning_curves.svg` for `train/loss` (or the first `train/` metric), and
 * `plots/eval_curves.svg` for the first of eval/normalized_score, eval/return_mean,
 * eval/ring_accuracy, eval/accuracy that the runs log (so a table's flattening is visible, issue
 * 17; line retrieval logs its accuracies at step = context tokens: Figure 3's axes).
 */
async function curvePlots(store: TrackingStore, children: SweepChild[], tracker: RunTracker): Promise<void> {
  const done = children.filter((c) => c.status === 'FINISHED' && c.runId);
  if (!done.length) return;
  const first = await store.getRun(done[0].runId!);
  const train =
    'train/loss' in first.metrics
      ? 'train/loss'
      : Object.keys(first.metrics).find((k) => k.startsWith('train/'));
  const evalKey = ['eval/normalized_score', 'eval/return_mean', 'eval/ring_accuracy', 'eval/accuracy'].find(
    (k) => k in first.metrics,
  );
  // line retrieval's accuracies are logged per prompt length, the step being its context tokens
  const perContext =
    evalKey === 'eval/ring_accuracy' ||
    (evalKey === 'eval/accuracy' && first.tags['exp.recipe'] === 'line-retrieval');
  for (const [name, key] of [
    ['learning_curves', train],
    ['eval_curves', evalKey],
  ] as const) {
    if (!key) continue;
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
    // losses span decades (log axis); scores and returns do not, and may be negative
    const positive = series.every((sr) => sr.y.every((v) => v > 0));
    await tracker.plot(
      name,
      linePlotSvg({
        title: `${key}: mean over seeds`,
        xLabel: name === 'eval_curves' && perContext ? 'context tokens' : 'step',
        yLabel: key,
        series,
        logY: name === 'learning_curves' && positive ? 10 : undefined,
      }),
    );
  }
}

/** Child processes running now (to forward a Ctrl-C to). */
const running = new Set<ChildProcess>();

/** Runs one child `exp run` and returns its outcome; its stderr lines are prefixed. */
function runChild(
  args: string[],
  index: number,
  prefix: string,
  quiet: boolean,
): Promise<{ code: number; runId?: string; status?: RunStatus }> {
  return new Promise((resolve) => {
    // NOTE: detached (own process group), so a terminal's Ctrl-C reaches only the sweep, which
    // forwards exactly one SIGINT to each running child (two would stop it without a checkpoint).
    const child = spawn(process.execPath, [join(PACKAGE_ROOT, 'bin', 'exp.js'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, EXP_WORK_DIR: workDir(), EXP_SWEEP_CELL: String(index) },
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

/** What a sweep is, as its parent run records it (so `resume` can rebuild it). */
interface SweepPlan {
  /** Absolute path of the config file: every cell, wherever it runs, reads this file. */
  configFile: string;
  seeds: number[];
  grid: string[];
  sets: string[];
  parallel: number;
  launcher: SweepLauncher;
  resources: SlurmResources;
}

const RESOURCES_TAG = 'exp.sweep.resources';
/** Where a k8s manifest expects the repository inside the image (README "Scaling out"). */
const K8S_ROOT = '/opt/ring-harness';

function checkResources(r: Partial<SlurmResources>): SlurmResources {
  const out: SlurmResources = {
    cpusPerTask: r.cpusPerTask ?? 1,
    extra: r.extra ?? [],
    ...(r.partition ? { partition: r.partition } : {}),
    ...(r.time ? { time: r.time } : {}),
    ...(r.mem ? { mem: r.mem } : {}),
  };
  if (!Number.isInteger(out.cpusPerTask) || out.cpusPerTask < 1)
    throw new InputError(`--cpus-per-task: expected an integer ≥ 1; got ${out.cpusPerTask}`);
  if (out.time !== undefined && !/^(\d+-)?\d+(:\d{1,2}){0,2}$/.test(out.time))
    throw new InputError(
      `--time: expected SLURM's minutes, H:MM:SS or D-HH:MM:SS (e.g. 30, 2:00:00); got '${out.time}'`,
    );
  if (out.mem !== undefined && !/^\d+[KMGT]?$/i.test(out.mem))
    throw new InputError(`--mem: expected a size like 4G or 4000M; got '${out.mem}'`);
  if (out.partition !== undefined && !/^[\w.,-]+$/.test(out.partition))
    throw new InputError(`--partition: expected a partition name; got '${out.partition}'`);
  for (const a of out.extra)
    if (!a.startsWith('--'))
      throw new InputError(`--sbatch-arg: expected an sbatch option like --account=lab; got '${a}'`);
  return out;
}

/** The sweep's cells × seeds, in order; `index` is the array index and the `exp.sweep.cell` tag. */
function childrenOf(cells: SweepCell[], seeds: number[]): SweepChild[] {
  return cells.flatMap((cell, ci) =>
    seeds.map((seed, si) => ({
      index: ci * seeds.length + si,
      cell: cell.label,
      ...(cell.case ? { case: cell.case } : {}),
      assignments: cell.assignments,
      seed,
      status: 'NOT_STARTED' as const,
      exitCode: -1,
    })),
  );
}

/** `exp` arguments of one cell: a fresh run, or `--resume` of the cell's unfinished run. */
function childArgs(plan: SweepPlan, c: SweepChild, parentRunId: string, uri: string, resumeRunId?: string) {
  const tail = ['--parent-run-id', parentRunId, '--tracking-uri', uri, '--json', '--quiet'];
  if (resumeRunId) return ['run', '--resume', resumeRunId, ...tail];
  return [
    'run',
    plan.configFile,
    '--seed',
    String(c.seed),
    ...[...plan.sets, ...c.assignments].flatMap((a) => ['--set', a]),
    // named by its grid cell (`lr=0.01-seed2`), so children differ in MLflow's table (issue 15)
    '--set',
    `runName=${c.case ? c.cell.replace(/\s+/g, '-') : shortAssignments(c.assignments) || 'all'}-seed${c.seed}`,
    ...tail,
  ];
}

/** The newest child run of `parentRunId` per cell index (`exp.sweep.cell`). */
async function childRuns(store: TrackingStore, experimentId: string, parentRunId: string) {
  const out = new Map<number, Run>();
  for (const r of await store.searchRuns([experimentId], { maxResults: 100_000 })) {
    const cell = r.tags['exp.sweep.cell'];
    if (r.tags['mlflow.parentRunId'] !== parentRunId || cell === undefined || !/^\d+$/.test(cell)) continue;
    if (!out.has(Number(cell))) out.set(Number(cell), r); // newest first
  }
  return out;
}

/** Cells on another host reach the tracking server over the network: a file store will not do. */
function checkSharedTracking(launcher: SweepLauncher, uri: string, say: (l: string) => void): void {
  if (!/^https?:\/\//i.test(uri))
    throw new InputError(
      `exp sweep --launcher ${launcher}: cells run on other hosts and log to one MLflow tracking server; set MLFLOW_TRACKING_URI (or --tracking-uri) to its http(s):// URL; got '${uri}'`,
    );
  if (/^https?:\/\/(127\.|localhost[:/]|\[::1\])/i.test(`${uri}/`))
    say(
      `sweep: warning: tracking server ${uri} is on this host's loopback address: cells on other nodes cannot reach it (fine on a single-node cluster)`,
    );
}

async function checkServer(uri: string): Promise<void> {
  try {
    const r = await fetch(`${uri.replace(/\/$/, '')}/health`, { signal: AbortSignal.timeout(10_000) });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
  } catch (err) {
    throw new InputError(
      `exp sweep: the tracking server MLFLOW_TRACKING_URI=${uri} does not answer (${errorMessage(err)}); start it, or point MLFLOW_TRACKING_URI at a running one`,
    );
  }
}

/** The sweep a parent run recorded, for `resume`. */
function planOfParent(run: Run, parentRunId: string): SweepPlan {
  if (run.tags['exp.sweep'] !== 'true')
    throw new InputError(`--resume ${parentRunId}: run is not a sweep's parent (no tag exp.sweep=true)`);
  const configFile = run.tags['exp.sweep.config_file'];
  if (!configFile)
    throw new InputError(
      `--resume ${parentRunId}: the sweep does not record its config file (tag exp.sweep.config_file; sweeps from before issue 19 cannot be resumed)`,
    );
  const json = <T>(key: string, fallback: T): T => {
    try {
      return run.params[key] === undefined ? fallback : (JSON.parse(run.params[key]) as T);
    } catch {
      throw new InputError(`--resume ${parentRunId}: param ${key} is not valid JSON: '${run.params[key]}'`);
    }
  };
  return {
    configFile,
    seeds: parseSeeds(run.params['sweep.seeds'] ?? '0'),
    grid: json<string[]>('sweep.grid', []),
    sets: json<string[]>('sweep.sets', []),
    parallel: Number(run.params['sweep.parallel'] ?? 1),
    launcher: (run.tags['exp.sweep.launcher'] as SweepLauncher | undefined) ?? 'local',
    resources: checkResources(
      run.tags[RESOURCES_TAG] ? (JSON.parse(run.tags[RESOURCES_TAG]) as SlurmResources) : {},
    ),
  };
}

/**
 * The config a parent run logged (config.yaml), as a local file, for a resume whose recorded config
 * file is gone: a snapshot restored in another checkout, a deleted worktree. The logged config is
 * the file with the sweep's `--set`s applied, which the cells apply again to the same values.
 */
async function loggedSweepConfig(
  store: TrackingStore,
  parent: Run,
  missing: string,
  say: (l: string) => void,
): Promise<string> {
  const runId = parent.info.runId;
  const local = join(workDir(), 'sweeps', runId, 'config.yaml');
  try {
    await store.downloadArtifact(runId, 'config.yaml', local);
  } catch (err) {
    throw new InputError(
      `--resume ${runId}: the sweep's config file ${missing} no longer exists, and the parent run's config.yaml artifact cannot be read (${errorMessage(err)})`,
    );
  }
  say(
    `sweep ${runId}: config file ${missing} no longer exists; resuming from the config the parent run logged (${displayPath(local)})`,
  );
  return local;
}

export async function runSweep(o: SweepOptions): Promise<SweepOutcome | undefined> {
  const say = (l: string) => {
    if (!o.quiet) process.stderr.write(`${l}\n`);
  };
  const pollMs = 1000 * (o.pollSec ?? 2);
  if (!(pollMs > 0)) throw new InputError(`--poll-sec: expected a positive number; got ${o.pollSec}`);

  // ---- what to run: from the options, or (resume) from the parent run ----
  let plan: SweepPlan;
  let store: TrackingStore | undefined;
  let resumed: Run | undefined;
  if (o.resume) {
    if (o.config)
      throw new InputError('exp sweep --resume: give no config; the sweep reruns the config it recorded');
    store = openStore(resolveTrackingUri(o.trackingUri));
    resumed = await store.getRun(o.resume);
    plan = planOfParent(resumed, o.resume);
    if (!existsSync(plan.configFile))
      plan.configFile = await loggedSweepConfig(store, resumed, plan.configFile, say);
    if (o.launcher) plan.launcher = o.launcher;
    if (o.slurm) plan.resources = checkResources({ ...plan.resources, ...definedOnly(o.slurm) });
  } else {
    if (!o.config)
      throw new InputError('exp sweep: name a config (a path or a name under experiments/configs/)');
    if (!o.seeds.length) throw new InputError('--seeds: give at least one seed');
    if (!Number.isInteger(o.parallel) || o.parallel < 1)
      throw new InputError(`--parallel: expected an integer ≥ 1; got ${o.parallel}`);
    plan = {
      configFile: '',
      seeds: o.seeds,
      grid: o.grid,
      sets: o.sets ?? [],
      parallel: o.parallel,
      launcher: o.launcher ?? 'local',
      resources: checkResources({}), // the config's `slurm` section and the flags, below
    };
  }
  if (!SWEEP_LAUNCHERS.includes(plan.launcher))
    throw new InputError(`--launcher: expected one of ${SWEEP_LAUNCHERS.join(', ')}; got '${plan.launcher}'`);
  expandGrid(plan.grid); // a malformed --grid fails before the config is read
  const base = loadConfig(plan.configFile || o.config!, { sets: plan.sets });
  plan.configFile = resolve(base.file);
  // Validate every cell before starting anything: a bad grid key or case fails now, with exit 2.
  const cells = sweepCells(parseCases(base.config.sweep.cases), plan.grid);
  if (!resumed) {
    const c = base.config.slurm;
    plan.resources = checkResources({
      partition: c.partition || undefined,
      time: c.time || undefined,
      cpusPerTask: c.cpusPerTask,
      mem: c.mem || undefined,
      extra: c.sbatchArgs,
      ...definedOnly(o.slurm ?? {}),
    });
  }
  for (const cell of cells)
    loadConfig(plan.configFile, { sets: [...plan.sets, ...cell.assignments], seed: plan.seeds[0] });
  const uri = store ? store.uri : resolveTrackingUri(o.trackingUri || base.config.tracking.uri);
  if (plan.launcher !== 'local') checkSharedTracking(plan.launcher, uri, say);
  const children = childrenOf(cells, plan.seeds);
  if (plan.launcher === 'k8s' && !o.dryRun)
    throw new InputError(
      'exp sweep --launcher k8s: only --dry-run is supported; it prints an indexed Job manifest to apply with kubectl apply -f',
    );

  if (o.dryRun) {
    // on resume, what would run: the cells without a FINISHED run, an unfinished run resumed
    const unfinishedRuns = new Map<number, string>();
    let pending = children;
    if (resumed && store) {
      const runs = await childRuns(store, resumed.info.experimentId, resumed.info.runId);
      pending = children.filter((c) => runs.get(c.index)?.info.status !== 'FINISHED');
      for (const [i, r] of runs) if (r.info.status !== 'FINISHED') unfinishedRuns.set(i, r.info.runId);
    }
    printPlan(plan, pending, base.recipe.name, uri, o, unfinishedRuns);
    return undefined;
  }
  if (plan.launcher !== 'local') await checkServer(uri);
  store ??= openStore(uri);

  // ---- the parent run: created, or reopened on resume ----
  let parentRunId: string;
  let experimentId: string;
  const done = new Map<number, Run>();
  const unfinished = new Map<number, Run>();
  if (resumed) {
    parentRunId = resumed.info.runId;
    experimentId = resumed.info.experimentId;
    for (const [i, r] of await childRuns(store, experimentId, parentRunId))
      (r.info.status === 'FINISHED' ? done : unfinished).set(i, r);
    // NOTE: every cell FINISHED under a parent that is not (the sweep stopped after its last
    // cell, or its cells were run by hand from --dry-run lines) leaves only the summary to write
    if (done.size === children.length && resumed.info.status === 'FINISHED')
      throw new InputError(
        `--resume ${parentRunId}: all ${children.length} cells FINISHED; nothing to resume`,
      );
    // the sweep's last array may still be running (its sweep process died): two copies of a
    // cell would write one run twice
    const lastJob = resumed.tags['exp.slurm.array_job_id'];
    if (lastJob && plan.launcher === 'slurm') {
      let live: ElementState[] = [];
      try {
        live = [...arrayStates(lastJob).values()].filter((e) => !e.terminal);
      } catch {
        // the scheduler no longer knows the job (purged, no accounting): it has ended
      }
      if (live.length)
        throw new InputError(
          `--resume ${parentRunId}: SLURM job ${lastJob} still has ${live.length} element(s) ${[...new Set(live.map((e) => e.state))].join('/')}; wait for them or scancel ${lastJob}`,
        );
    }
    await store.updateRun(parentRunId, 'RUNNING');
  } else {
    experimentId = await store.ensureExperiment(base.config.experiment || base.recipe.name);
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const parent = await store.createRun({
      experimentId,
      runName: `sweep-${base.recipe.name}-${stamp}`,
      startTime: Date.now(),
      tags: [{ key: 'mlflow.runName', value: `sweep-${base.recipe.name}-${stamp}` }],
    });
    parentRunId = parent.runId;
  }
  const tracker = new RunTracker(store, parentRunId, {
    flushEverySec: 5,
    stagingDir: join(workDir(), 'runs', parentRunId),
  });
  tracker.tags({
    'exp.sweep': 'true',
    'exp.recipe': base.recipe.name,
    'exp.config': displayPath(base.file),
    'exp.sweep.config_file': plan.configFile,
    'exp.sweep.launcher': plan.launcher,
    'mlflow.source.name': `exp sweep ${displayPath(base.file)}`,
    'mlflow.source.type': 'LOCAL',
    ...(plan.launcher === 'slurm' ? { [RESOURCES_TAG]: JSON.stringify(plan.resources) } : {}),
  });
  if (!resumed) {
    tracker.params({
      'sweep.seeds': plan.seeds.join(','),
      'sweep.grid': JSON.stringify(plan.grid),
      'sweep.parallel': plan.parallel,
      'sweep.sets': JSON.stringify(plan.sets),
      'sweep.cells': cells.length,
    });
  }
  await tracker.flush();
  if (!resumed) await tracker.content('config.yaml', configToYaml(base.config));

  for (const c of children) {
    const r = done.get(c.index);
    if (r) {
      c.runId = r.info.runId;
      c.status = 'FINISHED';
      c.exitCode = 0;
    }
  }
  const toRun = children.filter((c) => !done.has(c.index));
  const argsOf = (c: SweepChild) => childArgs(plan, c, parentRunId, uri, unfinished.get(c.index)?.info.runId);
  say(
    `sweep ${parentRunId}: ${cells.length} cells × ${plan.seeds.length} seeds${
      resumed ? `, resuming ${toRun.length} unfinished (${arrayIndexList(toRun.map((c) => c.index))})` : ''
    }, ${plan.launcher === 'local' ? `${plan.parallel} at once` : `SLURM array, at most ${plan.parallel} at once`} (${store.uri})`,
  );

  let interrupted = false;
  const jobIds: string[] = [];
  if (toRun.length === 0) {
    say(`sweep ${parentRunId}: every cell finished; writing the summary`);
  } else if (plan.launcher === 'local') {
    interrupted = await runLocal(toRun, argsOf, plan.parallel, Boolean(o.quiet), say);
    // a child that failed printed no outcome: its run is found by its cell tag
    const runs = await childRuns(store, experimentId, parentRunId);
    for (const c of toRun) c.runId ??= runs.get(c.index)?.info.runId;
  } else {
    const previousJobs = resumed?.tags['exp.slurm.array_job_ids'];
    const r = await runSlurmArray(
      toRun,
      argsOf,
      plan,
      parentRunId,
      base.recipe.name,
      uri,
      tracker,
      pollMs,
      say,
    );
    tracker.tags({ 'exp.slurm.array_job_ids': previousJobs ? `${previousJobs},${r.jobId}` : r.jobId });
    interrupted = r.interrupted;
    jobIds.push(r.jobId);
    await settleSlurmChildren(store, experimentId, parentRunId, r.jobId, toRun, r.states, say);
  }

  // ---- summary over seeds of each child's final (latest) metrics, per cell ----
  const summary = await summarize(store, children, cells.length, tracker);
  await curvePlots(store, children, tracker);
  const failed = children.filter((c) => c.status !== 'FINISHED');
  let status: RunStatus = 'FINISHED';
  if (interrupted || children.some((c) => c.status === 'KILLED')) {
    status = 'KILLED';
    const killed = children.filter((c) => c.status === 'KILLED');
    tracker.tags({
      'exp.status_reason': interrupted
        ? 'interrupted (SIGINT/SIGTERM)'
        : `${killed.length} of ${children.length} child runs were stopped: ${killed
            .map((c) => `${c.cell} seed ${c.seed}${c.scheduler ? ` (${c.scheduler})` : ''}`)
            .join('; ')}`,
    });
  } else if (failed.length) {
    status = 'FAILED';
    tracker.tags({
      'exp.status_reason': `${failed.length} of ${children.length} child runs did not finish: ${failed
        .map((c) => `${c.cell} seed ${c.seed} ${c.status}${c.scheduler ? ` (${c.scheduler})` : ''}`)
        .join('; ')}; rerun them with exp sweep --resume ${parentRunId}`,
    });
  } else tracker.tags({ 'exp.status_reason': '' });
  try {
    await tracker.close();
  } catch (err) {
    say(`sweep: logging the summary failed: ${errorMessage(err)}`);
    status = 'FAILED';
  }
  await store.updateRun(parentRunId, status, Date.now());
  await store.close(base.config.tracking.finishTimeoutSec * 1000);
  say(`sweep ${parentRunId} ${status}`);
  return { parentRunId, status, children, summary, ran: toRun.map((c) => c.index), jobIds };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Local launcher: `exp run` subprocesses, `parallel` at once; true when interrupted. */
async function runLocal(
  children: SweepChild[],
  argsOf: (c: SweepChild) => string[],
  parallel: number,
  quiet: boolean,
  say: (l: string) => void,
): Promise<boolean> {
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
      const r = await runChild(
        argsOf(c),
        c.index,
        `${c.case ? `[${c.case}] ` : ''}${c.assignments.join(' ') || 'run'} seed=${c.seed}`,
        quiet,
      );
      c.exitCode = r.code;
      c.runId = r.runId;
      c.status = r.status ?? 'FAILED';
      say(`sweep: ${c.cell} seed ${c.seed} → ${c.status}${c.runId ? ` (${c.runId})` : ''}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(parallel, children.length) }, worker));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return interrupted;
}

function arraySpec(
  children: SweepChild[],
  argsOf: (c: SweepChild) => string[],
  plan: SweepPlan,
  parentRunId: string,
  recipe: string,
  uri: string,
  dir: string,
): ArrayJobSpec {
  return {
    jobName: `sweep-${recipe}${/^[0-9a-f]{8}/.test(parentRunId) ? `-${parentRunId.slice(0, 8)}` : ''}`,
    cells: children.map((c) => ({ index: c.index, args: argsOf(c) })),
    parallel: plan.parallel,
    resources: plan.resources,
    logPattern: join(dir, 'cell-%a.log'),
    // NOTE: the compute nodes run this same install (a shared filesystem, as SLURM sites have)
    node: process.execPath,
    expScript: join(PACKAGE_ROOT, 'bin', 'exp.js'),
    env: { MLFLOW_TRACKING_URI: uri, EXP_WORK_DIR: workDir() },
    comment: [
      `exp sweep ${displayPath(plan.configFile)}: parent run ${parentRunId} at ${uri}`,
      'element i runs sweep cell i (cells × seeds, seeds fastest); generated by exp sweep, do not edit',
    ],
  };
}

/** `--dry-run`: the commands, batch script or manifest that would run; nothing is created. */
function printPlan(
  plan: SweepPlan,
  children: SweepChild[],
  recipe: string,
  uri: string,
  o: SweepOptions,
  unfinishedRuns: Map<number, string>,
): void {
  const parent = o.resume ?? '<parent-run-id>';
  const argsOf = (c: SweepChild) => childArgs(plan, c, parent, uri, unfinishedRuns.get(c.index));
  const dir = join(workDir(), 'sweeps', parent);
  if (plan.launcher === 'local') {
    for (const c of children)
      process.stdout.write(
        `EXP_SWEEP_CELL=${c.index} ${[process.execPath, join(PACKAGE_ROOT, 'bin', 'exp.js'), ...argsOf(c)].map(shellQuote).join(' ')}\n`,
      );
    return;
  }
  if (plan.launcher === 'k8s') {
    // In the image the repository is at K8S_ROOT: configs inside it are named relative to it.
    const inImage = relative(PACKAGE_ROOT, plan.configFile);
    const k8sPlan = { ...plan, configFile: inImage.startsWith('..') ? plan.configFile : inImage };
    const spec = arraySpec(
      children,
      (c) => childArgs(k8sPlan, c, parent, uri, unfinishedRuns.get(c.index)),
      plan,
      parent,
      recipe,
      uri,
      dir,
    );
    const manifest = indexedJobManifest(
      { ...spec, node: 'node', expScript: `${K8S_ROOT}/bin/exp.js`, env: { MLFLOW_TRACKING_URI: uri } },
      { image: o.image ?? 'ring-harness:latest', workingDir: K8S_ROOT },
    );
    process.stdout.write(manifest);
    return;
  }
  const spec = arraySpec(children, argsOf, plan, parent, recipe, uri, dir);
  process.stdout.write(`# sbatch ${join(dir, 'array-<n>.sh')}\n${cellScript(spec)}`);
}

/** SLURM launcher: submits the array, follows it until every element has ended. */
async function runSlurmArray(
  children: SweepChild[],
  argsOf: (c: SweepChild) => string[],
  plan: SweepPlan,
  parentRunId: string,
  recipe: string,
  uri: string,
  tracker: RunTracker,
  pollMs: number,
  say: (l: string) => void,
): Promise<{ jobId: string; states: Map<number, ElementState>; interrupted: boolean }> {
  const dir = join(workDir(), 'sweeps', parentRunId);
  const spec = arraySpec(children, argsOf, plan, parentRunId, recipe, uri, dir);
  // one script per submission (a resume submits a second), written atomically
  let n = 1;
  while (existsSync(join(dir, `array-${n}.sh`))) n++;
  const script = join(dir, `array-${n}.sh`);
  writeFileAtomic(script, cellScript(spec), 0o755);
  const jobId = sbatch(script);
  tracker.tags({
    'exp.slurm.array_job_id': jobId,
    'exp.slurm.array_state': `submitted ${children.length}`,
  });
  await tracker.flush();
  say(
    `sweep: submitted SLURM array job ${jobId} (elements ${arrayIndexList(children.map((c) => c.index))}, script ${script}, logs ${join(dir, 'cell-<i>.log')})`,
  );

  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    say(`sweep: ${sig}: scancel ${jobId}; waiting for its elements to end`);
    scancel(jobId);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let states = new Map<number, ElementState>();
  let last = '';
  try {
    for (;;) {
      states = arrayStates(jobId);
      const counts = new Map<string, number>();
      for (const c of children) {
        const st = states.get(c.index)?.state ?? 'PENDING';
        counts.set(st, (counts.get(st) ?? 0) + 1);
      }
      const line = [...counts].map(([st, k]) => `${st} ${k}`).join(', ');
      if (line !== last) {
        last = line;
        say(`sweep: SLURM job ${jobId}: ${line}`);
        tracker.tags({ 'exp.slurm.array_state': line });
        await tracker.flush().catch(() => undefined);
      }
      if (children.every((c) => states.get(c.index)?.terminal)) break;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return { jobId, states, interrupted };
}

/**
 * After the array: each cell's run ends as the scheduler says. A cell killed hard (SIGKILL, OOM,
 * a node lost) left its run RUNNING; a cancelled one ended it KILLED itself: either way the run
 * gets the scheduler's state and reason, so `exp runs show` says why.
 */
async function settleSlurmChildren(
  store: TrackingStore,
  experimentId: string,
  parentRunId: string,
  jobId: string,
  children: SweepChild[],
  states: Map<number, ElementState>,
  say: (l: string) => void,
): Promise<void> {
  const runs = await childRuns(store, experimentId, parentRunId);
  for (const c of children) {
    const e = states.get(c.index);
    const run = runs.get(c.index);
    c.runId = run?.info.runId;
    const want = e ? runStatusOfState(e.state) : 'FAILED';
    const exit = /^(\d+):/.exec(e?.exitCode ?? '');
    c.exitCode = exit ? Number(exit[1]) : -1;
    if (want === 'FINISHED' && run?.info.status === 'FINISHED') {
      c.status = 'FINISHED';
    } else {
      const why = e ? describeElement(jobId, e) : `SLURM job ${jobId}_${c.index}: no state`;
      c.scheduler = why;
      // a run that finished its work keeps FINISHED even if the scheduler then cancelled it
      c.status = run?.info.status === 'FINISHED' ? 'FINISHED' : want === 'FINISHED' ? 'FAILED' : want;
      if (run && run.info.status !== 'FINISHED') {
        const own = run.tags['exp.status_reason'];
        const reason = want === 'FINISHED' ? `${why}, but the run is ${run.info.status}` : why;
        await store.logBatch(run.info.runId, {
          metrics: [],
          params: [],
          tags: [
            { key: 'exp.slurm.state', value: e?.state ?? 'UNKNOWN' },
            { key: 'exp.status_reason', value: own ? `${reason}; ${own}` : reason },
          ],
        });
        if (run.info.status !== c.status) await store.updateRun(run.info.runId, c.status, Date.now());
      }
    }
    say(
      `sweep: ${c.cell} seed ${c.seed} → ${c.status}${c.runId ? ` (${c.runId})` : ''}${c.scheduler ? `: ${c.scheduler}` : ''}`,
    );
  }
}

async function summarize(
  store: TrackingStore,
  children: SweepChild[],
  cellCount: number,
  tracker: RunTracker,
): Promise<SummaryRow[]> {
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
    const child = children.find((c) => c.cell === cell);
    const gridValues = Object.fromEntries([
      ...(child?.case ? [['case', child.case]] : []),
      ...(child?.assignments ?? []).map((a) => {
        const eq = a.indexOf('=');
        return [a.slice(0, eq), String(YAML.parse(a.slice(eq + 1)) ?? '')];
      }),
    ]);
    for (const [metric, xs] of [...byMetric].sort(([a], [b]) => a.localeCompare(b))) {
      const { mean, std } = meanStd(xs);
      summary.push({ cell, ...gridValues, metric, mean, std, n: xs.length });
      const prefix = cellCount > 1 ? `summary/${cell}/${metric}` : `summary/${metric}`;
      tracker.metrics({ [`${prefix}/mean`]: mean, [`${prefix}/std`]: std }, 0);
    }
  }
  if (summary.length) await tracker.table('summary', summary);
  return summary;
}
