/**
 * The handle a recipe logs through: buffered metrics (flushed every few seconds in batches),
 * params, tags, dataset inputs, artifacts (files, text, JSON + Arrow tables, SVG plots) and
 * periodic system metrics. One RunTracker per MLflow run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../../common/index.js';
import { type Row, tableToArrow, tableToSplitJson } from '../tables.js';
import { clampValue } from './batch.js';
import { SystemSampler } from './system.js';
import type { DatasetInfo, KeyValue, Metric, TrackingStore } from './types.js';

/**
 * Metric key prefixes (STYLE.md §12). Every metric key starts with one of them:
 * - `train/`: per training step (`train/loss`, `train/lr`, `perf/tokens_per_sec`);
 * - `eval/`: evaluations (`eval/loss`, `eval/return_mean`, `eval/normalized_score`);
 * - `system/`: CPU and memory, sampled periodically (tracking/system.ts);
 * - `perf/`: throughput measurements (`perf/tokens_per_sec`, `perf/steps_per_sec`);
 * - `result/`: one value per cell of a result table;
 * - `summary/`: a sweep's aggregate over its child runs (`summary/<metric>/mean`, `…/std`).
 */
export const METRIC_PREFIXES = ['train/', 'eval/', 'system/', 'perf/', 'result/', 'summary/'] as const;

export interface RunTrackerOptions {
  /** Seconds between background flushes of buffered metrics. */
  flushEverySec: number;
  /** Local folder where generated artifacts are staged before upload. */
  stagingDir: string;
}

export class RunTracker {
  private metricsBuf: Metric[] = [];
  private paramsBuf: KeyValue[] = [];
  private tagsBuf: KeyValue[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private backgroundError: unknown;
  private timer: NodeJS.Timeout | undefined;
  private systemTimer: NodeJS.Timeout | undefined;
  private systemSampler: SystemSampler | undefined;
  private systemStep = 0;
  /** `mlflow.loggedArtifacts` entries: the tables MlflowClient.load_table finds (issue 15). */
  private loggedTables: string[] = [];

  constructor(
    readonly store: TrackingStore,
    readonly runId: string,
    private readonly options: RunTrackerOptions,
  ) {
    this.timer = setInterval(() => this.backgroundFlush(), options.flushEverySec * 1000);
    this.timer.unref();
  }

  /** Logs one metric point; `step` is the training step (an integer). */
  metric(key: string, value: number, step: number): void {
    if (!METRIC_PREFIXES.some((p) => key.startsWith(p)))
      throw new Error(`metric '${key}': keys start with one of ${METRIC_PREFIXES.join(' ')} (STYLE.md §12)`);
    this.metricsBuf.push({ key, value, step: Math.round(step), timestamp: Date.now() });
    if (this.metricsBuf.length >= 1000) this.backgroundFlush();
  }

  metrics(values: Record<string, number>, step: number): void {
    for (const [k, v] of Object.entries(values)) this.metric(k, v, step);
  }

  /** Params are immutable in MLflow: logging a key twice with another value fails. */
  params(values: Record<string, string | number | boolean>): void {
    for (const [key, v] of Object.entries(values))
      this.paramsBuf.push({ key, value: clampValue(String(v), 6000) });
  }

  tags(values: Record<string, string>): void {
    for (const [key, value] of Object.entries(values))
      this.tagsBuf.push({ key, value: clampValue(value, 8000) });
  }

  /** Records a dataset as an input of the run; `context` is `training`, `eval`, …. */
  async dataset(info: DatasetInfo, context: string): Promise<void> {
    await this.store.logInputs(this.runId, [
      { dataset: info, tags: [{ key: 'mlflow.data.context', value: context }] },
    ]);
  }

  /** Uploads a local file as `artifactPath` (relative, with the file name). */
  async file(localFile: string, artifactPath: string): Promise<void> {
    await this.store.logArtifact(this.runId, localFile, artifactPath);
  }

  /** Writes `content` to the staging folder and uploads it as `artifactPath`. */
  async content(artifactPath: string, content: string | Uint8Array): Promise<string> {
    const local = join(this.options.stagingDir, 'artifacts', artifactPath);
    mkdirSync(dirname(local), { recursive: true });
    writeFileSync(local, content);
    await this.file(local, artifactPath);
    return local;
  }

  /**
   * A result table as `tables/<name>.json` (pandas' split form, as MlflowClient.log_table writes
   * it, with the run's `mlflow.loggedArtifacts` tag naming it, so `load_table` reads it) and
   * `tables/<name>.arrow`.
   */
  async table(name: string, rows: Row[]): Promise<void> {
    const path = `tables/${name}.json`;
    await this.content(path, tableToSplitJson(rows));
    await this.content(`tables/${name}.arrow`, tableToArrow(rows));
    if (!this.loggedTables.includes(path)) this.loggedTables.push(path);
    const key = 'mlflow.loggedArtifacts';
    this.tagsBuf = this.tagsBuf.filter((t) => t.key !== key);
    this.tags({ [key]: JSON.stringify(this.loggedTables.map((p) => ({ path: p, type: 'table' }))) });
  }

  /** An SVG plot as `plots/<name>.svg` (see plot/svg.ts). */
  async plot(name: string, svg: string): Promise<void> {
    await this.content(`plots/${name}.svg`, svg);
  }

  /** Samples system metrics every `everySec` seconds, continuing the step count from `startStep`. */
  startSystemMetrics(everySec: number, startStep = 0): void {
    if (everySec <= 0) return;
    this.systemStep = startStep;
    const sampler = new SystemSampler();
    this.systemSampler = sampler;
    this.systemTimer = setInterval(() => {
      this.metrics(sampler.sample(), this.systemStep++);
    }, everySec * 1000);
    this.systemTimer.unref();
  }

  /** The next system-metrics step, saved in checkpoints so a resumed run continues the stream. */
  get nextSystemStep(): number {
    return this.systemStep;
  }

  private backgroundFlush(): void {
    this.flush().catch((err) => {
      this.backgroundError ??= err;
    });
  }

  /** Sends everything buffered; throws the first error of a background flush, if any. */
  async flush(): Promise<void> {
    const batch = { metrics: this.metricsBuf, params: this.paramsBuf, tags: this.tagsBuf };
    this.metricsBuf = [];
    this.paramsBuf = [];
    this.tagsBuf = [];
    const next = this.flushing.then(async () => {
      if (batch.metrics.length || batch.params.length || batch.tags.length)
        await this.store.logBatch(this.runId, batch);
    });
    this.flushing = next.catch(() => undefined);
    await next;
    if (this.backgroundError) {
      const err = this.backgroundError;
      this.backgroundError = undefined;
      throw err;
    }
  }

  /** Stops the timers and flushes; with system metrics on, logs a last sample (a run shorter than the interval gets one). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.systemTimer);
    if (this.systemSampler) this.metrics(this.systemSampler.sample(), this.systemStep++);
    this.systemSampler = undefined;
    await this.flush();
  }
}

/** Writes a text file atomically in the staging folder (helper for recipes' local outputs). */
export function stageText(stagingDir: string, name: string, text: string): string {
  const p = join(stagingDir, name);
  writeFileAtomic(p, text);
  return p;
}
