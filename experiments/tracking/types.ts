/**
 * MLflow's entities as TypeScript types, and the one interface both stores implement: the REST
 * client of a tracking server and the local file store `./mlruns` (PAPER.md §4).
 */

/** MLflow run status; the file store keeps it as an integer (RUNNING 1 … KILLED 5). */
export const RUN_STATUSES = ['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** One metric point. `timestamp` is milliseconds since the epoch; `step` an integer. */
export interface Metric {
  key: string;
  value: number;
  timestamp: number;
  step: number;
}

export interface KeyValue {
  key: string;
  value: string;
}

/**
 * A dataset as MLflow records it. `source` and `schema`/`profile` are JSON strings, as MLflow
 * stores them (e.g. source `{"uri": "/data/ant.arrow"}`, source_type `local`).
 */
export interface DatasetInfo {
  name: string;
  /** Content digest; with `name` it identifies the dataset within an experiment. */
  digest: string;
  sourceType: string;
  source: string;
  schema?: string;
  profile?: string;
}

export interface DatasetInput {
  dataset: DatasetInfo;
  /** Input tags; MLflow's `mlflow.data.context` says how it was used (`training`, `eval`). */
  tags: KeyValue[];
}

export interface Experiment {
  experimentId: string;
  name: string;
  artifactLocation: string;
}

export interface RunInfo {
  runId: string;
  runName: string;
  experimentId: string;
  status: RunStatus;
  startTime: number;
  endTime?: number;
  artifactUri: string;
}

export interface Run {
  info: RunInfo;
  params: Record<string, string>;
  tags: Record<string, string>;
  /** Latest value of every metric (largest step, then timestamp), as MLflow reports it. */
  metrics: Record<string, number>;
  inputs: DatasetInput[];
}

export interface ArtifactFile {
  /** Path relative to the run's artifact root, `/`-separated. */
  path: string;
  isDir: boolean;
  fileSize?: number;
}

export interface LogBatch {
  metrics: Metric[];
  params: KeyValue[];
  tags: KeyValue[];
}

/** A model to log (TrackingStore.logModel). */
export interface LoggedModelSpec {
  experimentId: string;
  /** The run that produced it (MLflow's source_run_id, and the run the output link is on). */
  runId: string;
  name: string;
  /** What kind of model (`agentic-transformer`, `llama`, …): MLflow's model_type. */
  modelType: string;
  params: KeyValue[];
  tags: KeyValue[];
  /** The model's files: a local file and its path inside the model's artifacts. */
  files: { local: string; path: string }[];
  /** The `MLmodel` file's text, given the id the store made (it names the model id). */
  mlmodel: (modelId: string) => string;
  /** Training step the model is from. */
  step: number;
}

export interface LoggedModelInfo {
  /** `m-<32 hex>`, as MLflow names them. */
  modelId: string;
  /** Where its files are: `file:///…/models/<id>/artifacts` or `mlflow-artifacts:/…`. */
  artifactUri: string;
}

/** What both stores offer. Every method throws on failure except where noted. */
export interface TrackingStore {
  /** Where runs go: `http://host:port` or `file:///abs/mlruns`. */
  readonly uri: string;
  getExperimentByName(name: string): Promise<Experiment | undefined>;
  /** Returns the id of the experiment called `name`, creating it if needed. */
  ensureExperiment(name: string): Promise<string>;
  searchExperiments(): Promise<Experiment[]>;
  createRun(options: {
    experimentId: string;
    runName: string;
    startTime: number;
    tags: KeyValue[];
  }): Promise<RunInfo>;
  getRun(runId: string): Promise<Run>;
  /** Newest first; at most `maxResults` (default 1000). */
  searchRuns(experimentIds: string[], options?: { maxResults?: number }): Promise<Run[]>;
  updateRun(runId: string, status: RunStatus, endTime?: number): Promise<void>;
  /** Any size: the store splits it into requests within MLflow's limits. */
  logBatch(runId: string, batch: LogBatch): Promise<void>;
  logInputs(runId: string, datasets: DatasetInput[]): Promise<void>;
  getMetricHistory(runId: string, key: string): Promise<Metric[]>;
  /** Copies `localFile` to `artifactPath` (relative, with the file name) under the run's artifacts. */
  logArtifact(runId: string, localFile: string, artifactPath: string): Promise<void>;
  /** Direct children of `path` (the root when omitted). */
  listArtifacts(runId: string, path?: string): Promise<ArtifactFile[]>;
  downloadArtifact(runId: string, artifactPath: string, localFile: string): Promise<void>;
  /** Removes a file or folder of the run's artifacts (absent: nothing to do); queued and spooled like uploads. */
  deleteArtifacts(runId: string, artifactPath: string): Promise<void>;
  /**
   * Logs an MLflow logged model (MLflow 3: `search_logged_models`, `models:/<id>`): creates it in
   * the run's experiment, uploads its files (an `MLmodel` among them), marks it READY and links it
   * to the run as an output at `step`. Not spooled: throws when the server is unreachable.
   */
  logModel(spec: LoggedModelSpec): Promise<LoggedModelInfo>;
  /**
   * Finishes pending work: the REST store replays requests it spooled while the server was
   * unreachable, waiting up to `timeoutMs`. Returns how many requests are still pending.
   */
  close(timeoutMs?: number): Promise<{ pending: number }>;
}

/**
 * The experiment tag that makes MLflow 3's UI open an experiment in its model-training view
 * (runs, metrics charts) rather than the GenAI view (traces); set on every experiment we create.
 */
export const EXPERIMENT_KIND = { key: 'mlflow.experimentKind', value: 'custom_model_development' } as const;
