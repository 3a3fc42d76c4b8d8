/**
 * A client of an MLflow tracking server over its REST API (`/api/2.0/mlflow/...`), with artifacts
 * through the server's proxy (`/api/2.0/mlflow-artifacts/artifacts/...`, for artifact URIs of the
 * form `mlflow-artifacts:/...`).
 *
 * - Requests are retried with exponential backoff on network errors, 429 and 5xx.
 * - Writes made while the server is unreachable (log-batch, log-inputs, run updates, artifact
 *   uploads) are appended to a spool file and replayed in order once it answers again, so a
 *   server restart mid-run loses nothing (issue 5). `close()` waits for the replay; a spool left
 *   behind is replayed by `exp runs sync`.
 * - Auth from MLFLOW_TRACKING_TOKEN (bearer) or MLFLOW_TRACKING_USERNAME/PASSWORD (basic). The
 *   header is never part of an error message or a log line.
 */
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  copyFileSync,
  createWriteStream,
  openAsBlob,
  renameSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { userInfo } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import {
  InputError,
  pidAlive,
  sweepStaleTemporaries,
  temporarySibling,
  writeFileAtomic,
} from '../../common/index.js';
import { splitBatch } from './batch.js';
import type {
  ArtifactFile,
  DatasetInput,
  Experiment,
  KeyValue,
  LogBatch,
  LoggedModelInfo,
  LoggedModelSpec,
  Metric,
  Run,
  RunInfo,
  RunStatus,
  TrackingStore,
} from './types.js';
import { EXPERIMENT_KIND } from './types.js';

export interface RestStoreOptions {
  /** Folder for spool files (requests waiting for the server). */
  spoolDir: string;
  /** Retries of a request before it counts as failed (default 4: ≈ 0.25+0.5+1+2 s). */
  retries?: number;
  /** First backoff delay in ms, doubled each retry (default 250). */
  backoffMs?: number;
  /** Per-request timeout in ms (default 30 000). */
  timeoutMs?: number;
  /** Environment to read auth from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** The server could not be reached or kept failing (as opposed to rejecting the request). */
export class UnreachableError extends Error {}

/** A request the server rejected (4xx other than 429): not retried, not spooled. */
export class MlflowApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly errorCode: string | undefined,
  ) {
    super(message);
  }
}

type SpoolOp =
  | { op: 'batch'; runId: string; batch: LogBatch }
  | { op: 'inputs'; runId: string; datasets: DatasetInput[] }
  | { op: 'update'; runId: string; status: RunStatus; endTime?: number }
  | { op: 'artifact'; runId: string; localFile: string; artifactPath: string }
  | { op: 'delete'; runId: string; artifactPath: string };

interface SpoolLine {
  uri: string;
  entry: SpoolOp;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ApiRun {
  info: {
    run_id: string;
    run_name?: string;
    experiment_id: string;
    status?: RunStatus;
    start_time?: number | string;
    end_time?: number | string;
    artifact_uri: string;
  };
  data?: {
    metrics?: { key: string; value: number; timestamp: number | string; step: number | string }[];
    params?: KeyValue[];
    tags?: KeyValue[];
  };
  inputs?: {
    dataset_inputs?: {
      tags?: KeyValue[];
      dataset: {
        name: string;
        digest: string;
        source_type: string;
        source: string;
        schema?: string;
        profile?: string;
      };
    }[];
  };
}

function toRun(r: ApiRun): Run {
  const kv = (xs: KeyValue[] | undefined) => Object.fromEntries((xs ?? []).map((x) => [x.key, x.value]));
  return {
    info: {
      runId: r.info.run_id,
      runName: r.info.run_name ?? '',
      experimentId: r.info.experiment_id,
      status: r.info.status ?? 'RUNNING',
      startTime: Number(r.info.start_time ?? 0),
      endTime: r.info.end_time === undefined ? undefined : Number(r.info.end_time),
      artifactUri: r.info.artifact_uri,
    },
    params: kv(r.data?.params),
    tags: kv(r.data?.tags),
    metrics: Object.fromEntries((r.data?.metrics ?? []).map((m) => [m.key, Number(m.value)])),
    inputs: (r.inputs?.dataset_inputs ?? []).map((d) => ({
      dataset: {
        name: d.dataset.name,
        digest: d.dataset.digest,
        sourceType: d.dataset.source_type,
        source: d.dataset.source,
        schema: d.dataset.schema,
        profile: d.dataset.profile,
      },
      tags: d.tags ?? [],
    })),
  };
}

/** Authorization header from the environment, or none. */
function authHeader(env: NodeJS.ProcessEnv): string | undefined {
  if (env.MLFLOW_TRACKING_TOKEN) return `Bearer ${env.MLFLOW_TRACKING_TOKEN}`;
  if (env.MLFLOW_TRACKING_USERNAME && env.MLFLOW_TRACKING_PASSWORD)
    return `Basic ${Buffer.from(`${env.MLFLOW_TRACKING_USERNAME}:${env.MLFLOW_TRACKING_PASSWORD}`).toString('base64')}`;
  return undefined;
}

export class RestStore implements TrackingStore {
  readonly uri: string;
  private readonly base: string;
  private readonly auth: string | undefined;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly timeoutMs: number;
  /** Ops waiting for the server, oldest first; mirrored in `spoolFile`. */
  private queue: SpoolOp[] = [];
  private spoolFile: string;
  private lastReplayTry = 0;
  private readonly artifactUris = new Map<string, string>();
  /** Serialises writes so spooled and new requests keep their order. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(uri: string, options: RestStoreOptions) {
    this.uri = uri.replace(/\/+$/, '');
    this.base = this.uri;
    this.auth = authHeader(options.env ?? process.env);
    this.retries = options.retries ?? 4;
    this.backoffMs = options.backoffMs ?? 250;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.spoolFile = join(
      options.spoolDir,
      `spool-${Date.now()}-${process.pid}-${randomBytes(3).toString('hex')}.jsonl`,
    );
  }

  /** Requests waiting in the spool. */
  get pending(): number {
    return this.queue.length;
  }

  private async request<T>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    body?: unknown,
    options: { retries?: number; raw?: Blob; query?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<T> {
    const url = new URL(`${this.base}${path}`);
    for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
    const headers: Record<string, string> = {};
    if (this.auth) headers.Authorization = this.auth;
    let payload: string | Blob | undefined;
    if (options.raw) {
      payload = options.raw;
      headers['Content-Type'] = 'application/octet-stream';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    const retries = options.retries ?? this.retries;
    let lastError = '';
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) await sleep(this.backoffMs * 2 ** (attempt - 1));
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers,
          body: payload,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause?.code;
        lastError = `${method} ${url.pathname}: ${cause ?? (err instanceof Error ? err.message : String(err))}`;
        continue;
      }
      const text = await res.text();
      if (res.ok) return (text ? JSON.parse(text) : {}) as T;
      let code: string | undefined;
      let message = text.slice(0, 500);
      try {
        const j = JSON.parse(text) as { error_code?: string; message?: string };
        code = j.error_code;
        message = j.message ?? message;
      } catch {
        // not JSON (a proxy's error page)
      }
      if (res.status === 429 || res.status >= 500) {
        lastError = `${method} ${url.pathname}: HTTP ${res.status} ${message}`;
        continue;
      }
      throw new MlflowApiError(
        `MLflow ${method} ${url.pathname}: HTTP ${res.status}${code ? ` ${code}` : ''}: ${message}`,
        res.status,
        code,
      );
    }
    throw new UnreachableError(
      `MLflow server ${this.base} unreachable after ${retries + 1} tries (${lastError})`,
    );
  }

  async getExperimentByName(name: string): Promise<Experiment | undefined> {
    try {
      const r = await this.request<{
        experiment: { experiment_id: string; name: string; artifact_location: string };
      }>('GET', '/api/2.0/mlflow/experiments/get-by-name', undefined, { query: { experiment_name: name } });
      return {
        experimentId: r.experiment.experiment_id,
        name: r.experiment.name,
        artifactLocation: r.experiment.artifact_location,
      };
    } catch (err) {
      if (err instanceof MlflowApiError && err.errorCode === 'RESOURCE_DOES_NOT_EXIST') return undefined;
      throw err;
    }
  }

  async ensureExperiment(name: string): Promise<string> {
    const found = await this.getExperimentByName(name);
    if (found) return found.experimentId;
    try {
      const r = await this.request<{ experiment_id: string }>('POST', '/api/2.0/mlflow/experiments/create', {
        name,
        // MLflow 3's UI opens an experiment without this tag in its GenAI view (issue 15)
        tags: [EXPERIMENT_KIND],
      });
      return r.experiment_id;
    } catch (err) {
      // Two sweep children racing to create it: the loser reads the winner's.
      if (err instanceof MlflowApiError && err.errorCode === 'RESOURCE_ALREADY_EXISTS') {
        const again = await this.getExperimentByName(name);
        if (again) return again.experimentId;
      }
      throw err;
    }
  }

  async searchExperiments(): Promise<Experiment[]> {
    const out: Experiment[] = [];
    let token: string | undefined;
    do {
      const r = await this.request<{
        experiments?: { experiment_id: string; name: string; artifact_location: string }[];
        next_page_token?: string;
      }>('POST', '/api/2.0/mlflow/experiments/search', { max_results: 1000, page_token: token });
      for (const e of r.experiments ?? [])
        out.push({ experimentId: e.experiment_id, name: e.name, artifactLocation: e.artifact_location });
      token = r.next_page_token;
    } while (token);
    return out;
  }

  async createRun(o: {
    experimentId: string;
    runName: string;
    startTime: number;
    tags: KeyValue[];
  }): Promise<RunInfo> {
    const r = await this.request<ApiRun & { run: ApiRun }>('POST', '/api/2.0/mlflow/runs/create', {
      experiment_id: o.experimentId,
      run_name: o.runName,
      start_time: o.startTime,
      // the server fills RunInfo.user_id from this field only (MLflow's Python client sends the
      // mlflow.user tag here too); without it user_id was empty (issue 15)
      user_id: o.tags.find((t) => t.key === 'mlflow.user')?.value ?? currentUser(),
      tags: o.tags.filter((t) => t.key !== 'mlflow.runName'),
    });
    const run = toRun(r.run);
    this.artifactUris.set(run.info.runId, run.info.artifactUri);
    return run.info;
  }

  async getRun(runId: string): Promise<Run> {
    try {
      const r = await this.request<{ run: ApiRun }>('GET', '/api/2.0/mlflow/runs/get', undefined, {
        query: { run_id: runId },
      });
      return toRun(r.run);
    } catch (err) {
      if (err instanceof MlflowApiError && err.errorCode === 'RESOURCE_DOES_NOT_EXIST')
        throw new InputError(`run '${runId}' not found on ${this.uri}`);
      throw err;
    }
  }

  async searchRuns(experimentIds: string[], options: { maxResults?: number } = {}): Promise<Run[]> {
    const out: Run[] = [];
    const want = options.maxResults ?? 1000;
    let token: string | undefined;
    do {
      const r = await this.request<{ runs?: ApiRun[]; next_page_token?: string }>(
        'POST',
        '/api/2.0/mlflow/runs/search',
        {
          experiment_ids: experimentIds,
          max_results: Math.min(want - out.length, 1000),
          order_by: ['attributes.start_time DESC'],
          page_token: token,
        },
      );
      for (const run of r.runs ?? []) out.push(toRun(run));
      token = r.next_page_token;
    } while (token && out.length < want);
    return out;
  }

  async getMetricHistory(runId: string, key: string): Promise<Metric[]> {
    const out: Metric[] = [];
    let token: string | undefined;
    do {
      const query: Record<string, string> = { run_id: runId, metric_key: key, max_results: '25000' };
      if (token) query.page_token = token;
      const r = await this.request<{
        metrics?: { key: string; value: number; timestamp: string | number; step: string | number }[];
        next_page_token?: string;
      }>('GET', '/api/2.0/mlflow/metrics/get-history', undefined, { query });
      for (const m of r.metrics ?? [])
        out.push({
          key: m.key,
          value: Number(m.value),
          timestamp: Number(m.timestamp),
          step: Number(m.step ?? 0),
        });
      token = r.next_page_token;
    } while (token);
    return out;
  }

  // ---- writes: spooled while the server is unreachable ----

  updateRun(runId: string, status: RunStatus, endTime?: number): Promise<void> {
    return this.write({ op: 'update', runId, status, endTime });
  }

  logBatch(runId: string, batch: LogBatch): Promise<void> {
    return this.write({ op: 'batch', runId, batch });
  }

  logInputs(runId: string, datasets: DatasetInput[]): Promise<void> {
    return this.write({ op: 'inputs', runId, datasets });
  }

  logArtifact(runId: string, localFile: string, artifactPath: string): Promise<void> {
    return this.write({ op: 'artifact', runId, localFile, artifactPath });
  }

  /** After the uploads before it, in order (a spooled upload is replayed before its deletion). */
  deleteArtifacts(runId: string, artifactPath: string): Promise<void> {
    return this.write({ op: 'delete', runId, artifactPath });
  }

  private write(op: SpoolOp): Promise<void> {
    const next = this.chain.then(() => this.writeNow(op));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async writeNow(op: SpoolOp): Promise<void> {
    if (this.queue.length) {
      // Server was down: keep order by queueing behind the spool, then try a replay now and
      // then (one quick try, so training does not stall on a dead server).
      this.enqueue(op);
      if (Date.now() - this.lastReplayTry > 1000) await this.replay(0);
      return;
    }
    try {
      await this.perform(op, this.retries);
    } catch (err) {
      if (!(err instanceof UnreachableError)) throw err;
      process.stderr.write(`mlflow: ${err.message}; spooling to ${this.spoolFile} and retrying later\n`);
      this.enqueue(op);
    }
  }

  private enqueue(op: SpoolOp): void {
    if (op.op === 'artifact' && !op.localFile.startsWith(`${this.spoolFile}.files`)) {
      // The spool keeps its own copy: the original may be gone by the time the server is back
      // (old local checkpoints are pruned).
      const copy = join(`${this.spoolFile}.files`, `${this.queue.length}-${basename(op.localFile)}`);
      mkdirSync(dirname(copy), { recursive: true });
      copyFileSync(op.localFile, copy);
      op.localFile = copy;
    }
    this.queue.push(op);
    mkdirSync(dirname(this.spoolFile), { recursive: true });
    appendFileSync(this.spoolFile, `${JSON.stringify({ uri: this.uri, entry: op } satisfies SpoolLine)}\n`);
  }

  /** Sends spooled ops in order; stops at the first that fails to reach the server. */
  private async replay(retries: number): Promise<void> {
    this.lastReplayTry = Date.now();
    let done = 0;
    try {
      while (done < this.queue.length) {
        await this.perform(this.queue[done], retries);
        done++;
      }
    } catch (err) {
      if (!(err instanceof UnreachableError)) {
        // A rejected op will never succeed: drop it, say so, and keep the rest.
        process.stderr.write(
          `mlflow: dropping a spooled request the server rejected: ${(err as Error).message}\n`,
        );
        done++;
      }
    } finally {
      if (done > 0) {
        const was = this.queue.length;
        this.queue = this.queue.slice(done);
        if (this.queue.length === 0) {
          rmSync(this.spoolFile, { force: true });
          rmSync(`${this.spoolFile}.files`, { recursive: true, force: true });
          process.stderr.write(`mlflow: server ${this.uri} is back; replayed ${was} spooled requests\n`);
        } else
          writeFileAtomic(
            this.spoolFile,
            this.queue
              .map((entry) => `${JSON.stringify({ uri: this.uri, entry } satisfies SpoolLine)}\n`)
              .join(''),
          );
      }
    }
  }

  private async perform(op: SpoolOp, retries: number): Promise<void> {
    switch (op.op) {
      case 'batch': {
        const parts = splitBatch(op.batch);
        for (let i = 0; i < parts.length; i++) {
          try {
            await this.request(
              'POST',
              '/api/2.0/mlflow/runs/log-batch',
              { run_id: op.runId, ...parts[i] },
              { retries },
            );
          } catch (err) {
            // NOTE: MLflow keeps duplicate metric points, so a batch that fails half-way keeps
            // only its unsent parts for the retry.
            const rest = parts.slice(i);
            op.batch = {
              metrics: rest.flatMap((p) => p.metrics),
              params: rest.flatMap((p) => p.params),
              tags: rest.flatMap((p) => p.tags),
            };
            throw err;
          }
        }
        return;
      }
      case 'inputs':
        await this.request(
          'POST',
          '/api/2.0/mlflow/runs/log-inputs',
          {
            run_id: op.runId,
            datasets: op.datasets.map((d) => ({
              tags: d.tags,
              dataset: {
                name: d.dataset.name,
                digest: d.dataset.digest,
                source_type: d.dataset.sourceType,
                source: d.dataset.source,
                schema: d.dataset.schema,
                profile: d.dataset.profile,
              },
            })),
          },
          { retries },
        );
        return;
      case 'update':
        await this.request(
          'POST',
          '/api/2.0/mlflow/runs/update',
          { run_id: op.runId, status: op.status, end_time: op.endTime },
          { retries },
        );
        return;
      case 'delete':
        await this.request(
          'DELETE',
          `/api/2.0/mlflow-artifacts/artifacts/${await this.proxyPath(op.runId, op.artifactPath)}`,
          undefined,
          { retries },
        );
        return;
      case 'artifact': {
        // A Blob backed by the file: fetch streams it instead of holding it in memory.
        const data = await openAsBlob(op.localFile);
        await this.request(
          'PUT',
          `/api/2.0/mlflow-artifacts/artifacts/${await this.proxyPath(op.runId, op.artifactPath)}`,
          undefined,
          // Big checkpoints: allow at least 1 s per MB on top of the usual timeout.
          { raw: data, retries, timeoutMs: this.timeoutMs + data.size / 1000 },
        );
        return;
      }
    }
  }

  /**
   * An MLflow 3 logged model over REST, as MLflow's own client makes one: create
   * (POST logged-models), upload its files through the artifact proxy, finalize (PATCH, READY),
   * link it to the run (POST runs/outputs). Direct requests, not spooled.
   */
  async logModel(spec: LoggedModelSpec): Promise<LoggedModelInfo> {
    const created = await this.request<{ model: { info: { model_id: string; artifact_uri: string } } }>(
      'POST',
      '/api/2.0/mlflow/logged-models',
      {
        experiment_id: spec.experimentId,
        name: spec.name,
        model_type: spec.modelType,
        source_run_id: spec.runId,
        params: spec.params,
        tags: spec.tags,
      },
    );
    const { model_id: modelId, artifact_uri: artifactUri } = created.model.info;
    const m = /^mlflow-artifacts:(?:\/\/[^/]*)?\/?(.*)$/.exec(artifactUri);
    if (!m)
      throw new InputError(
        `logged model ${modelId} stores its files at '${artifactUri}', which this client cannot reach: start the server with --serve-artifacts (see the README on experiments created without it)`,
      );
    const files: { path: string; data: () => Promise<Blob> }[] = [
      ...spec.files.map((f) => ({ path: f.path, data: () => openAsBlob(f.local) })),
      { path: 'MLmodel', data: async () => new Blob([spec.mlmodel(modelId)]) },
    ];
    for (const f of files) {
      const path = `${m[1].replace(/\/+$/, '')}/${f.path}`
        .split('/')
        .filter((p) => p)
        .map(encodeURIComponent)
        .join('/');
      const data = await f.data();
      await this.request('PUT', `/api/2.0/mlflow-artifacts/artifacts/${path}`, undefined, {
        raw: data,
        timeoutMs: this.timeoutMs + data.size / 1000,
      });
    }
    await this.request('PATCH', `/api/2.0/mlflow/logged-models/${encodeURIComponent(modelId)}`, {
      model_id: modelId,
      status: 'LOGGED_MODEL_READY',
    });
    await this.request('POST', '/api/2.0/mlflow/runs/outputs', {
      run_id: spec.runId,
      models: [{ model_id: modelId, step: spec.step }],
    });
    return { modelId, artifactUri };
  }

  /** The proxy path of a run's artifact: its `mlflow-artifacts:` URI without the scheme. */
  private async proxyPath(runId: string, artifactPath: string): Promise<string> {
    let uri = this.artifactUris.get(runId);
    if (!uri) {
      uri = (await this.getRun(runId)).info.artifactUri;
      this.artifactUris.set(runId, uri);
    }
    const m = /^mlflow-artifacts:(?:\/\/[^/]*)?\/?(.*)$/.exec(uri);
    // NOTE: the root is the experiment's, fixed when the experiment was created; restarting the
    // server with --serve-artifacts does not change it, so say how to get out (issue 15)
    if (!m)
      throw new InputError(
        `run ${runId} stores artifacts at '${uri}', which this client cannot reach: the server must serve artifacts (mlflow server --serve-artifacts --artifacts-destination DIR), and an experiment keeps the artifact root it was created with, so after fixing the server log to a new experiment (--set experiment=NEW_NAME), or delete this one (mlflow experiments delete -x ID, then mlflow gc --experiment-ids ID on the server's backend) so the next run creates it again with a served root`,
      );
    const parts = `${m[1].replace(/\/+$/, '')}/${artifactPath.replace(/^\/+/, '')}`;
    return parts
      .split('/')
      .filter((p) => p)
      .map(encodeURIComponent)
      .join('/');
  }

  async listArtifacts(runId: string, path = ''): Promise<ArtifactFile[]> {
    const dir = await this.proxyPath(runId, path);
    const r = await this.request<{
      files?: { path: string; is_dir?: boolean; file_size?: string | number }[];
    }>('GET', '/api/2.0/mlflow-artifacts/artifacts', undefined, { query: { path: decodeURIComponent(dir) } });
    const prefix = path.replace(/\/+$/, '');
    return (r.files ?? [])
      .map((f) => ({
        path: prefix ? `${prefix}/${f.path}` : f.path,
        isDir: Boolean(f.is_dir),
        fileSize: f.file_size === undefined ? undefined : Number(f.file_size),
      }))
      .sort((a, b) => a.path.localeCompare(b.path));
  }

  async downloadArtifact(runId: string, artifactPath: string, localFile: string): Promise<void> {
    const url = `${this.base}/api/2.0/mlflow-artifacts/artifacts/${await this.proxyPath(runId, artifactPath)}`;
    const headers: Record<string, string> = this.auth ? { Authorization: this.auth } : {};
    let lastError = '';
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) await sleep(this.backoffMs * 2 ** (attempt - 1));
      try {
        const res = await fetch(url, { headers, signal: AbortSignal.timeout(this.timeoutMs) });
        if (res.status === 404) throw new InputError(`run ${runId} has no artifact '${artifactPath}'`);
        if (!res.ok) {
          lastError = `HTTP ${res.status}`;
          if (res.status < 500 && res.status !== 429) break;
          continue;
        }
        mkdirSync(dirname(localFile), { recursive: true });
        // Streamed to a sibling, then renamed: a reader never sees half a checkpoint.
        const tmp = temporarySibling(localFile);
        try {
          await pipeline(Readable.fromWeb(res.body as WebReadableStream), createWriteStream(tmp));
          renameSync(tmp, localFile);
        } finally {
          rmSync(tmp, { force: true });
        }
        return;
      } catch (err) {
        if (err instanceof InputError) throw err;
        lastError = err instanceof Error ? err.message : String(err);
      }
    }
    throw new UnreachableError(`downloading artifact '${artifactPath}' of run ${runId} failed: ${lastError}`);
  }

  async close(timeoutMs = 120_000): Promise<{ pending: number }> {
    await this.chain;
    const until = Date.now() + timeoutMs;
    let wait = 250;
    while (this.queue.length && Date.now() < until) {
      await this.replay(0);
      if (!this.queue.length) break;
      await sleep(Math.min(wait, Math.max(0, until - Date.now())));
      wait = Math.min(wait * 2, 5000);
    }
    if (this.queue.length)
      process.stderr.write(
        `mlflow: ${this.queue.length} requests still waiting for ${this.uri} in ${this.spoolFile}; run \`exp runs sync\` when the server is back\n`,
      );
    return { pending: this.queue.length };
  }

  /**
   * Replays spool files left by earlier processes; returns how many requests remain. A torn or
   * garbled line (a process killed mid-append, a disk that filled up) is skipped, reported, and
   * kept in `<spool>.torn` for inspection; the lines around it are replayed (issue 16: one bad
   * line blocked every sync). Spools of processes still running are left to them, and a spool is
   * claimed by renaming it first, so two syncs at once cannot replay it twice.
   */
  static async syncSpools(
    spoolDir: string,
    options: Omit<RestStoreOptions, 'spoolDir'> & {
      /** Only spools for this server. */
      uri?: string;
      /** Where progress and warnings go (default stderr). */
      log?: (line: string) => void;
    } = {},
  ): Promise<number> {
    const { uri: onlyUri, log = (l: string) => process.stderr.write(`${l}\n`), ...storeOptions } = options;
    if (!existsSync(spoolDir)) return 0;
    sweepStaleTemporaries(spoolDir);
    let remaining = 0;
    for (const name of readdirSync(spoolDir)
      .filter((n) => /\.jsonl(\.sync-\d+)?$/.test(n))
      .sort()) {
      const owner = /^spool-\d+-(\d+)-/.exec(name);
      const syncer = /\.sync-(\d+)$/.exec(name);
      if (owner && Number(owner[1]) !== process.pid && pidAlive(Number(owner[1]))) continue;
      if (syncer && pidAlive(Number(syncer[1]))) continue;
      const base = name.replace(/\.sync-\d+$/, '');
      const original = join(spoolDir, base);
      const claimed = join(spoolDir, `${base}.sync-${process.pid}`);
      try {
        renameSync(join(spoolDir, name), claimed);
      } catch {
        continue; // another sync took it
      }
      const entries: SpoolOp[] = [];
      const torn: string[] = [];
      let uri: string | undefined;
      readFileSync(claimed, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (!line.trim()) return;
          try {
            const parsed = JSON.parse(line) as SpoolLine;
            if (typeof parsed?.uri !== 'string' || typeof parsed.entry?.op !== 'string')
              throw new Error('not a spooled request');
            uri ??= parsed.uri;
            entries.push(parsed.entry);
          } catch (err) {
            torn.push(line);
            log(
              `mlflow: ${original}:${i + 1}: skipping a torn spool record (${(err as Error).message}); kept in ${original}.torn`,
            );
          }
        });
      if (torn.length) appendFileSync(`${original}.torn`, `${torn.join('\n')}\n`);
      if (!uri || !entries.length) {
        rmSync(claimed, { force: true });
        continue;
      }
      if (onlyUri && uri !== onlyUri) {
        renameSync(claimed, original);
        continue;
      }
      const store = new RestStore(uri, { ...storeOptions, spoolDir });
      // Adopt the file: its ops become this store's queue, written back under the same name.
      store.spoolFile = claimed;
      store.queue = entries;
      await store.replay(storeOptions.retries ?? 2);
      remaining += store.queue.length;
      if (store.queue.length) renameSync(claimed, original);
      else {
        rmSync(claimed, { force: true });
        rmSync(`${original}.files`, { recursive: true, force: true });
      }
    }
    return remaining;
  }
}

/** The OS user (MLflow's Python client's default user), or 'unknown' where the OS has none. */
function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
