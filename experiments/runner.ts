/**
 * `exp run`: one config → one MLflow run. Loads and validates the config, opens the tracking
 * store, creates the run (or reopens it for --resume), logs params, tags and the resolved config,
 * restores the RNG and the last checkpoint, hands the recipe its context, and ends the run
 * FINISHED, FAILED (error, with the reason as a tag) or KILLED (Ctrl-C/SIGTERM, after the recipe
 * saved a checkpoint).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, InputError, Progress, printLine, Rng } from '../common/index.js';
import { initBackend, parseBackendChoice } from '../native/index.js';
import { Checkpoints, fetchLatestCheckpoint, type LoadedCheckpoint } from './checkpoint.js';
import type { RunConfig } from './config/base.js';
import {
  checkConfig,
  configToYaml,
  displayPath,
  flattenConfig,
  type LoadedConfig,
  loadConfig,
  parseYaml,
} from './config/load.js';
import { spoolDir, workDir } from './paths.js';
import { type RunScore, runScore, summaryLines } from './run-summary.js';
import {
  acquireRunLease,
  checkOwnerTag,
  currentOwner,
  environmentTags,
  OWNER_TAG,
  openStore,
  RestStore,
  type RunLease,
  resolveTrackingUri,
  RunTracker,
  type RunStatus,
  SYSTEM_STEP_METRIC,
  type TrackingStore,
} from './tracking/index.js';

export interface RunOptions {
  /** Config path or built-in name (not needed with `resume`). */
  config?: string;
  sets?: string[];
  seed?: number;
  backend?: string;
  /** Validate and return the resolved config without running. */
  dryRun?: boolean;
  /** Continue this run from its last checkpoint. */
  resume?: string;
  /** Overrides the config's tracking URI (and is where `resume` looks). */
  trackingUri?: string;
  /** Makes the run a child of this run (sweeps). */
  parentRunId?: string;
  /** No progress bar or log lines. */
  quiet?: boolean;
}

export interface RunOutcome {
  runId: string;
  experimentId: string;
  trackingUri: string;
  status: RunStatus;
  /** The final and best value of the run's score metric (run-summary.ts), when it logged one. */
  score?: RunScore;
  /** The resolved config as YAML. */
  configYaml: string;
}

/** Tag carrying why a run ended FAILED or KILLED. */
export const STATUS_REASON_TAG = 'exp.status_reason';

/**
 * `<what differs>-seed<N>`: the recipe's label (algorithm, attention, devices) when it has one,
 * else its name. Every run used to be `<recipe>-seed<N>-<time>`, so AT and DT looked the same in
 * MLflow's runs table, legends and compare view (issue 15); the start time is a column there.
 */
function defaultRunName(config: RunConfig, label: string | undefined): string {
  return `${label || config.recipe}-seed${config.seed}`;
}

/** Loads the config a run logged (for --resume). */
async function configOfRun(store: TrackingStore, runId: string, options: RunOptions): Promise<LoadedConfig> {
  const local = join(workDir(), 'runs', runId, 'config.yaml');
  await store.downloadArtifact(runId, 'config.yaml', local);
  const { readFileSync } = await import('node:fs');
  const label = `run ${runId} config.yaml`;
  // Only the backend may change on resume; everything else would change the run's meaning.
  return checkConfig(parseYaml(readFileSync(local, 'utf8'), label), label, { backend: options.backend });
}

/** Largest step logged per metric key, so a resumed run does not log a step twice. */
async function loggedSteps(store: TrackingStore, runId: string): Promise<Map<string, number>> {
  const run = await store.getRun(runId);
  const out = new Map<string, number>();
  for (const key of Object.keys(run.metrics)) {
    const history = await store.getMetricHistory(runId, key);
    // reduce, not Math.max(...): a long history would overflow the argument list
    out.set(
      key,
      history.reduce((a, m) => Math.max(a, m.step), Number.NEGATIVE_INFINITY),
    );
  }
  return out;
}

export async function runExperiment(options: RunOptions): Promise<RunOutcome | undefined> {
  // above a progress bar on a terminal, never glued to its end (issue 15)
  const say = (line: string) => {
    if (!options.quiet) printLine(line);
  };
  let loaded: LoadedConfig;
  let store: TrackingStore;
  let resumeRun: string | undefined;
  if (options.resume) {
    if (options.config) throw new InputError('--resume takes the config the run logged; give no config file');
    if (options.sets?.length || options.seed !== undefined)
      throw new InputError('--resume continues a run as it was configured; --set and --seed are not allowed');
    const uri = resolveTrackingUri(options.trackingUri);
    store = openStore(uri);
    const run = await store.getRun(options.resume);
    if (run.info.status === 'FINISHED')
      throw new InputError(`run ${options.resume} already FINISHED; nothing to resume`);
    // A live process still writing the run: resuming would log each step twice (issue 16).
    const warning = checkOwnerTag(options.resume, run.tags[OWNER_TAG]);
    if (warning) say(warning);
    loaded = await configOfRun(store, options.resume, options);
    resumeRun = options.resume;
  } else {
    if (!options.config)
      throw new InputError('exp run: name a config (a path or a name under experiments/configs/)');
    loaded = loadConfig(options.config, { sets: options.sets, seed: options.seed, backend: options.backend });
    const uri = resolveTrackingUri(options.trackingUri || loaded.config.tracking.uri);
    if (options.dryRun) {
      // Validates the URI without opening the store: a dry run creates nothing (issue 16).
      openStore(uri, { readOnly: true });
      const yaml = configToYaml(loaded.config);
      process.stdout.write(
        `# ${displayPath(loaded.file)} (resolved; recipe '${loaded.recipe.name}')\n${yaml}`,
      );
      return undefined;
    }
    store = openStore(uri);
  }
  const { config, recipe } = loaded;
  const configYaml = configToYaml(config);
  if (options.dryRun) {
    process.stdout.write(`# ${displayPath(loaded.file)} (resolved; recipe '${recipe.name}')\n${configYaml}`);
    return undefined;
  }

  const backend = await initBackend({
    backend: parseBackendChoice(config.backend, 'backend'),
    notice: !options.quiet,
  });
  const section = config[recipe.name];
  const tags: Record<string, string> = {
    ...environmentTags(),
    'mlflow.source.type': 'LOCAL',
    'mlflow.source.name': `exp run ${resumeRun ? `--resume ${resumeRun}` : displayPath(loaded.file)}`,
    'exp.recipe': recipe.name,
    'exp.config': displayPath(loaded.file),
    'exp.seed': String(config.seed),
    'exp.backend': backend.name,
    'exp.backend.provider': backend.provider,
    'exp.device_count': String(recipe.deviceCount?.(section) ?? 1),
  };
  if (config.description) tags['mlflow.note.content'] = config.description;
  if (options.parentRunId) tags['mlflow.parentRunId'] = options.parentRunId;

  let runId: string;
  let experimentId: string;
  let resume: LoadedCheckpoint | undefined;
  let skipSteps = new Map<string, number>();
  /** A resumed run's params as the interrupted process logged them. */
  let loggedParams: Record<string, string> | undefined;
  let lease: RunLease | undefined;
  const rng = new Rng(config.seed);
  if (resumeRun) {
    runId = resumeRun;
    lease = acquireRunLease(runId, join(workDir(), 'locks'));
    if (store instanceof RestStore)
      // Requests a dead process spooled for this server go first, so the steps read back below
      // include them (else they would be logged again here and once more by `exp runs sync`).
      await RestStore.syncSpools(spoolDir(), { uri: store.uri, log: say });
    const run = await store.getRun(runId);
    experimentId = run.info.experimentId;
    resume = await fetchLatestCheckpoint(store, runId, join(workDir(), 'runs', runId, 'resume'), say);
    if (resume) rng.setState(resume.rngState);
    else say(`run ${runId} has no checkpoint; starting it again from step 0`);
    skipSteps = await loggedSteps(store, runId);
    loggedParams = run.params;
    await store.updateRun(runId, 'RUNNING');
    tags['exp.resumed_from_step'] = String(resume?.step ?? 0);
    tags[STATUS_REASON_TAG] = `resumed from step ${resume?.step ?? 0}`;
  } else {
    const experimentName = config.experiment || recipe.name;
    experimentId = await store.ensureExperiment(experimentName);
    const runName = config.runName || defaultRunName(config, recipe.runLabel?.(config[recipe.name]));
    const info = await store.createRun({
      experimentId,
      runName,
      startTime: Date.now(),
      tags: [{ key: 'mlflow.runName', value: runName }],
    });
    runId = info.runId;
  }
  tags[OWNER_TAG] = JSON.stringify(currentOwner());
  say(
    `run ${runId} (experiment ${experimentId}, ${store.uri})${resume ? ` resuming after step ${resume.step}` : ''}`,
  );

  // Ctrl-C: ask the recipe to stop after its current step and save; a second Ctrl-C stops now.
  const controller = new AbortController();
  let signalName: string | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      // Best effort: mark the run KILLED (capped at 2 s), then stop without a new checkpoint.
      process.stderr.write(
        `${sig} again: stopping now; resume from the last checkpoint with --resume ${runId}\n`,
      );
      void Promise.race([
        store
          .logBatch(runId, {
            metrics: [],
            params: [],
            tags: [{ key: STATUS_REASON_TAG, value: `stopped by a second ${sig}` }],
          })
          .then(() => store.updateRun(runId, 'KILLED', Date.now())),
        new Promise((r) => setTimeout(r, 2000)),
      ])
        .catch(() => undefined)
        .finally(() => process.exit(130));
      return;
    }
    signalName = sig;
    process.stderr.write(
      `\n${sig}: finishing the current step, saving a checkpoint (${sig} again stops now)\n`,
    );
    controller.abort(new Error(sig));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const runDir = join(workDir(), 'runs', runId);
  const tracker = new RunTracker(store, runId, {
    flushEverySec: config.tracking.flushEverySec,
    stagingDir: runDir,
  });
  if (skipSteps.size) {
    // NOTE: points after the checkpoint that the interrupted process already logged are
    // recomputed identically; drop them so the metric stream has each step once (issue 5).
    const original = tracker.metric.bind(tracker);
    tracker.metric = (key, value, step) => {
      const seen = skipSteps.get(key);
      if (seen !== undefined && step <= seen && !key.startsWith('system/')) return;
      original(key, value, step);
    };
  }
  if (loggedParams) keepFirstParams(tracker, loggedParams, say);
  stopAfterStepForTests(tracker);
  const checkpoints = new Checkpoints({
    store,
    runId,
    localRoot: join(runDir, 'checkpoints'),
    keep: config.checkpoint.keep,
    // a file store's artifacts are on this disk already: one copy, not two (issue 15)
    uploadOnly: store.uri.startsWith('file:'),
    keepArtifacts: config.checkpoint.keepArtifacts,
    every: config.checkpoint.every,
    rngState: () => rng.getState(),
    beforeSave: () => tracker.flush(),
  });

  let status: RunStatus = 'FINISHED';
  let failure: unknown;
  try {
    // Inside the try: a failure here (a work folder that cannot be created, a lease held by a
    // live process) still ends the run FAILED with its reason, never leaves it RUNNING (issue 16).
    lease ??= acquireRunLease(runId, join(workDir(), 'locks'));
    mkdirSync(runDir, { recursive: true });
    tracker.tags(tags);
    if (!resumeRun) tracker.params(flattenConfig(config));
    await tracker.flush();
    if (!resumeRun) await tracker.content('config.yaml', configYaml);
    // runs from before issue 15 logged system/cpu_percent: a resume continues their steps
    const systemStart = (skipSteps.get(SYSTEM_STEP_METRIC) ?? skipSteps.get('system/cpu_percent') ?? -1) + 1;
    tracker.startSystemMetrics(config.tracking.systemMetricsEverySec, systemStart);
    await recipe.run({
      config: section,
      run: config,
      runId,
      seed: config.seed,
      rng,
      tracker,
      checkpoints,
      resume,
      signal: controller.signal,
      progress: (label, total) => new Progress({ label, total, silent: options.quiet }),
      backend,
      workDir: runDir,
      log: say,
    });
    if (controller.signal.aborted) {
      status = 'KILLED';
      const at = checkpoints.lastSavedStep;
      tracker.tags({
        [STATUS_REASON_TAG]: `interrupted by ${signalName}${at !== undefined ? `; checkpoint at step ${at}` : ''}; continue with exp run --resume ${runId}`,
      });
    }
  } catch (err) {
    status = 'FAILED';
    failure = err;
    tracker.tags({ [STATUS_REASON_TAG]: errorMessage(err) });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  try {
    await tracker.close();
  } catch (err) {
    if (!failure) {
      failure = err;
      status = 'FAILED';
    }
  }
  await store.updateRun(runId, status, Date.now());
  // the score and where to find the run, printed once at the end (issue 15)
  let score: RunScore | undefined;
  try {
    score = await runScore(store, runId);
    const run = await store.getRun(runId);
    const experiment = (await store.searchExperiments()).find((e) => e.experimentId === experimentId);
    if (!failure)
      for (const line of summaryLines({
        runId,
        runName: run.info.runName,
        experimentName: experiment?.name ?? experimentId,
        trackingUri: store.uri,
        durationMs: Date.now() - run.info.startTime,
        score,
      }))
        say(line);
  } catch {
    // an unreachable server: the metrics are spooled; the summary is what we cannot read back
  }
  const { pending } = await store.close(config.tracking.finishTimeoutSec * 1000);
  if (pending)
    say(`run ${runId}: ${pending} tracking requests are still spooled (exp runs sync replays them)`);
  lease?.release();
  // NOTE: the status is printed once, by the CLI (stdout), with the score (issue 15)
  if (failure) throw failure;
  return { runId, experimentId, trackingUri: store.uri, status, score, configYaml };
}

/**
 * Fault injection for the kill-and-resume tests: with `EXP_FAULT_STOP_AT_STEP=n` the process
 * flushes its metrics and stops itself (SIGSTOP) once a training metric of step ≥ n is logged.
 * A test then sees a fixed state in the store (checkpoints and logged steps that no longer move)
 * and kills the process there; waiting for the moment by polling raced a fast run to its end.
 */
function stopAfterStepForTests(tracker: RunTracker): void {
  const raw = process.env.EXP_FAULT_STOP_AT_STEP;
  if (!raw) return;
  const at = Number(raw);
  if (!Number.isInteger(at) || at < 1)
    throw new Error(`EXP_FAULT_STOP_AT_STEP: expected a step ≥ 1, got '${raw}'`);
  const original = tracker.metric.bind(tracker);
  let stopping = false;
  tracker.metric = (key, value, step) => {
    original(key, value, step);
    if (stopping || !key.startsWith('train/') || step < at) return;
    stopping = true;
    tracker.flush().then(
      () => process.kill(process.pid, 'SIGSTOP'),
      () => process.kill(process.pid, 'SIGSTOP'),
    );
  };
}

/**
 * A resumed run re-logs the params its recipe measures (a memory probe's MiB moves by about 1 MiB
 * between measurements), and MLflow params cannot change: the first value stays the param, a new
 * one goes to the tag `exp.remeasured.<key>`. Before this a resumed run failed on it (issue 17:
 * Table 5's `model.probe_mib_per_device` 323.2, then 324.8).
 */
export function keepFirstParams(
  tracker: RunTracker,
  logged: Record<string, string>,
  say: (line: string) => void,
): void {
  const original = tracker.params.bind(tracker);
  tracker.params = (values) => {
    const fresh: Record<string, string | number | boolean> = {};
    for (const [key, value] of Object.entries(values)) {
      const first = logged[key];
      if (first === undefined || first === String(value)) fresh[key] = value;
      else {
        say(
          `param ${key}: keeping the first run's ${first} (re-measured ${value}, tag exp.remeasured.${key})`,
        );
        tracker.tags({ [`exp.remeasured.${key}`]: String(value) });
      }
    }
    original(fresh);
  };
}
