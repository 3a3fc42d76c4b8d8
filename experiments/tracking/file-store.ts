/**
 * MLflow's local file store (`./mlruns`), written in the layout MLflow's own FileStore reads
 * (mlflow/store/tracking/file_store.py; MLflow ≥ 3.13 reads it with MLFLOW_ALLOW_FILE_STORE=true):
 *
 *   <root>/<experiment_id>/meta.yaml                    experiment (name, artifact_location, …)
 *   <root>/<experiment_id>/datasets/<md5(name+digest)>/meta.yaml
 *   <root>/<experiment_id>/<run_id>/meta.yaml           run info; status as an integer enum
 *   <root>/<experiment_id>/<run_id>/metrics/<key>       lines `timestamp value step`
 *   <root>/<experiment_id>/<run_id>/params/<key>        the value, no newline
 *   <root>/<experiment_id>/<run_id>/tags/<key>          the value, no newline
 *   <root>/<experiment_id>/<run_id>/inputs/<md5(dataset_id+run_id)>/meta.yaml
 *   <root>/<experiment_id>/<run_id>/artifacts/…
 *
 * Keys with `/` (`train/loss`) become nested folders, as in MLflow.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import YAML from 'yaml';
import { InputError, temporarySibling, writeFileAtomic } from '../../common/index.js';
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
import { EXPERIMENT_KIND, RUN_STATUSES } from './types.js';

const META = 'meta.yaml';
/** MLflow's RunStatus enum values as stored in meta.yaml. */
const STATUS_CODE: Record<RunStatus, number> = {
  RUNNING: 1,
  SCHEDULED: 2,
  FINISHED: 3,
  FAILED: 4,
  KILLED: 5,
};
/** MLflow's SourceType.LOCAL. */
const SOURCE_TYPE_LOCAL = 4;

/** Rejects keys that would escape their folder; MLflow allows word characters, `-./ :`. */
function checkKey(kind: string, key: string): void {
  const parts = key.split('/');
  if (
    !key ||
    key.length > 250 ||
    !/^[\w\-. /:]+$/.test(key) ||
    parts.some((p) => p === '' || p === '..' || p === '.')
  )
    throw new InputError(`file store: invalid ${kind} key '${key}'`);
}

/** Cuts a torn last line (no trailing newline) off a metric file, so appends start clean. */
function trimTornLine(file: string): void {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return;
  }
  if (size === 0) return;
  const text = readFileSync(file, 'utf8');
  if (text.endsWith('\n')) return;
  truncateSync(file, Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1)));
}

/** A YAML file as a mapping, or undefined (with a warning naming it) when it does not parse. */
function readYamlOrWarn(file: string, what: string): Record<string, unknown> | undefined {
  try {
    const m = readYaml(file);
    if (typeof m !== 'object' || Array.isArray(m)) throw new Error('not a mapping');
    return m;
  } catch (err) {
    process.stderr.write(
      `file store: skipping ${what} ${file}: unreadable (${(err as Error).message.split('\n')[0]})\n`,
    );
    return undefined;
  }
}

function readYaml(file: string): Record<string, unknown> {
  return (YAML.parse(readFileSync(file, 'utf8')) ?? {}) as Record<string, unknown>;
}

function writeYaml(file: string, value: Record<string, unknown>): void {
  writeFileAtomic(file, YAML.stringify(value, { sortMapEntries: true }));
}

/** Files under `dir`, recursively, as `/`-joined relative paths (metric keys may nest). */
function walkFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const visit = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.') && e.name.endsWith('.tmp')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) visit(p);
      else out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  visit(dir);
  return out;
}

function parseMetricLine(key: string, line: string): Metric {
  const [ts, value, step] = line.trim().split(' ');
  return { key, timestamp: Number(ts), value: Number(value), step: step === undefined ? 0 : Number(step) };
}

/** Python's float repr for the special values, so MLflow parses them back. */
function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (v === Number.POSITIVE_INFINITY) return 'inf';
  if (v === Number.NEGATIVE_INFINITY) return '-inf';
  return String(v);
}

export class FileStore implements TrackingStore {
  readonly uri: string;
  readonly root: string;

  /**
   * `readOnly`: for commands that only read (`exp runs list`, `--dry-run`): a missing root is an
   * empty store, and nothing is created (issue 16: they left ./mlruns/0/meta.yaml behind).
   */
  constructor(root: string, options: { readOnly?: boolean } = {}) {
    this.root = resolve(root);
    this.uri = pathToFileURL(this.root).href;
    let st: ReturnType<typeof statSync> | undefined;
    try {
      st = statSync(this.root);
    } catch {
      st = undefined;
    }
    if (st && !st.isDirectory())
      throw new InputError(
        `tracking URI ${root}: expected an MLflow file-store folder (or an http(s):// server); it is an existing file`,
      );
    if (options.readOnly) return;
    mkdirSync(this.root, { recursive: true });
    // MLflow's FileStore creates the Default experiment (id 0) in a new root; do the same.
    if (!existsSync(join(this.root, '0', META))) this.writeExperiment('0', 'Default');
  }

  private writeExperiment(id: string, name: string): void {
    const now = Date.now();
    writeYaml(join(this.root, id, META), {
      artifact_location: pathToFileURL(join(this.root, id)).href,
      creation_time: now,
      experiment_id: id,
      last_update_time: now,
      lifecycle_stage: 'active',
      name,
    });
    // MLflow 3's UI opens an experiment without this tag in its GenAI view (issue 15)
    mkdirSync(join(this.root, id, 'tags'), { recursive: true });
    writeFileSync(join(this.root, id, 'tags', EXPERIMENT_KIND.key), EXPERIMENT_KIND.value);
  }

  async searchExperiments(): Promise<Experiment[]> {
    const out: Experiment[] = [];
    if (!existsSync(this.root)) return out;
    for (const e of readdirSync(this.root, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      const meta = join(this.root, e.name, META);
      if (!existsSync(meta)) continue;
      // One corrupt meta.yaml must not hide the rest of the store (issue 16).
      const m = readYamlOrWarn(meta, 'experiment');
      if (m?.lifecycle_stage !== 'active') continue;
      out.push({
        experimentId: String(m.experiment_id),
        name: String(m.name),
        artifactLocation: String(m.artifact_location),
      });
    }
    return out;
  }

  async getExperimentByName(name: string): Promise<Experiment | undefined> {
    return (await this.searchExperiments()).find((e) => e.name === name);
  }

  async ensureExperiment(name: string): Promise<string> {
    const found = await this.getExperimentByName(name);
    if (found) return found.experimentId;
    // NOTE: runs started at once into a fresh store (exp sweep --parallel, tests) each found no
    // experiment and created one, two folders with the same name, which MLflow then refuses
    // (migrate-filestore: UNIQUE constraint failed). Creation is serialised by a lock folder.
    const lock = experimentLockDir(this.root, name);
    await acquireLockDir(lock);
    try {
      const again = await this.getExperimentByName(name);
      if (again) return again.experimentId;
      // MLflow uses a random fixed-width integer id (name_utils._generate_unique_integer_id).
      const id = (BigInt(`0x${randomBytes(8).toString('hex')}`) % 900000000000000000n) + 100000000000000000n;
      this.writeExperiment(id.toString(), name);
      return id.toString();
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }

  /** Run id → its folder; runs do not move, so a found folder stays valid. */
  private readonly runDirs = new Map<string, { experimentId: string; dir: string }>();

  private findRunDir(runId: string): { experimentId: string; dir: string } {
    const cached = this.runDirs.get(runId);
    if (cached) return cached;
    if (!/^[0-9a-f]{32}$/.test(runId)) throw new InputError(`file store: invalid run id '${runId}'`);
    if (!existsSync(this.root)) throw new InputError(`run '${runId}' not found: ${this.uri} does not exist`);
    for (const e of readdirSync(this.root, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const dir = join(this.root, e.name, runId);
      if (existsSync(join(dir, META))) {
        const found = { experimentId: e.name, dir };
        this.runDirs.set(runId, found);
        return found;
      }
    }
    throw new InputError(`run '${runId}' not found in ${this.uri}`);
  }

  async createRun(o: {
    experimentId: string;
    runName: string;
    startTime: number;
    tags: KeyValue[];
  }): Promise<RunInfo> {
    const runId = randomUUID().replaceAll('-', '');
    const dir = join(this.root, o.experimentId, runId);
    if (!existsSync(join(this.root, o.experimentId, META)))
      throw new InputError(`file store: no experiment with id ${o.experimentId}`);
    for (const sub of ['metrics', 'params', 'artifacts', 'tags'])
      mkdirSync(join(dir, sub), { recursive: true });
    const info: RunInfo = {
      runId,
      runName: o.runName,
      experimentId: o.experimentId,
      status: 'RUNNING',
      startTime: o.startTime,
      artifactUri: pathToFileURL(join(dir, 'artifacts')).href,
    };
    this.writeRunMeta(dir, info);
    const tags = o.tags.some((t) => t.key === 'mlflow.runName')
      ? o.tags
      : [...o.tags, { key: 'mlflow.runName', value: o.runName }];
    await this.logBatch(runId, { metrics: [], params: [], tags });
    return info;
  }

  private writeRunMeta(dir: string, info: RunInfo): void {
    writeYaml(join(dir, META), {
      artifact_uri: info.artifactUri,
      end_time: info.endTime ?? null,
      entry_point_name: '',
      experiment_id: info.experimentId,
      lifecycle_stage: 'active',
      run_id: info.runId,
      run_name: info.runName,
      source_name: '',
      source_type: SOURCE_TYPE_LOCAL,
      source_version: '',
      start_time: info.startTime,
      status: STATUS_CODE[info.status],
      tags: [],
      user_id: safeUser(),
    });
  }

  private readRunInfo(dir: string): RunInfo {
    const m = readYaml(join(dir, META));
    const code = Number(m.status ?? 1);
    return {
      runId: String(m.run_id),
      runName: String(m.run_name ?? ''),
      experimentId: String(m.experiment_id),
      status: RUN_STATUSES[code - 1] ?? 'RUNNING',
      startTime: Number(m.start_time),
      endTime: m.end_time === null || m.end_time === undefined ? undefined : Number(m.end_time),
      artifactUri: String(m.artifact_uri),
    };
  }

  private readRun(dir: string): Run {
    const info = this.readRunInfo(dir);
    const kv = (sub: string) => {
      const out: Record<string, string> = {};
      for (const k of walkFiles(join(dir, sub))) out[k] = readFileSync(join(dir, sub, k), 'utf8');
      return out;
    };
    const metrics: Record<string, number> = {};
    for (const key of walkFiles(join(dir, 'metrics'))) {
      const history = this.readHistory(dir, key);
      // MLflow's latest value: max over (step, timestamp, value).
      let best: Metric | undefined;
      for (const m of history)
        if (
          !best ||
          m.step > best.step ||
          (m.step === best.step &&
            (m.timestamp > best.timestamp || (m.timestamp === best.timestamp && m.value > best.value)))
        )
          best = m;
      if (best) metrics[key] = best.value;
    }
    return {
      info,
      params: kv('params'),
      tags: kv('tags'),
      metrics,
      inputs: this.readInputs(dir, info.experimentId),
    };
  }

  private readHistory(dir: string, key: string): Metric[] {
    const file = join(dir, 'metrics', key);
    if (!existsSync(file)) return [];
    const text = readFileSync(file, 'utf8');
    // A line without its newline is torn (a write cut short by a full disk or a crash): it was
    // never complete, so it is not a logged point; the next append trims it (logBatch).
    const end = text.endsWith('\n') ? text.length : text.lastIndexOf('\n') + 1;
    return text
      .slice(0, end)
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => parseMetricLine(key, l))
      .filter((m) => Number.isFinite(m.timestamp) && Number.isFinite(m.step));
  }

  private readInputs(dir: string, experimentId: string): DatasetInput[] {
    const inputsDir = join(dir, 'inputs');
    if (!existsSync(inputsDir)) return [];
    const out: DatasetInput[] = [];
    for (const id of readdirSync(inputsDir)) {
      const input = readYaml(join(inputsDir, id, META));
      if (input.source_type !== 'DATASET') continue;
      const dsFile = join(this.root, experimentId, 'datasets', String(input.source_id), META);
      if (!existsSync(dsFile)) continue;
      const d = readYaml(dsFile);
      const tags = (input.tags ?? {}) as Record<string, string>;
      out.push({
        dataset: {
          name: String(d.name),
          digest: String(d.digest),
          sourceType: String(d.source_type),
          source: String(d.source),
          schema: d.schema === undefined || d.schema === null ? undefined : String(d.schema),
          profile: d.profile === undefined || d.profile === null ? undefined : String(d.profile),
        },
        tags: Object.entries(tags).map(([key, value]) => ({ key, value: String(value) })),
      });
    }
    return out;
  }

  async getRun(runId: string): Promise<Run> {
    return this.readRun(this.findRunDir(runId).dir);
  }

  async searchRuns(experimentIds: string[], options: { maxResults?: number } = {}): Promise<Run[]> {
    const runs: Run[] = [];
    for (const exp of experimentIds) {
      const expDir = join(this.root, exp);
      if (!existsSync(expDir)) continue;
      for (const e of readdirSync(expDir, { withFileTypes: true })) {
        if (e.isDirectory() && /^[0-9a-f]{32}$/.test(e.name) && existsSync(join(expDir, e.name, META))) {
          // A run whose meta.yaml is corrupt is skipped with a warning, not fatal for the listing.
          try {
            runs.push(this.readRun(join(expDir, e.name)));
          } catch (err) {
            process.stderr.write(
              `file store: skipping run ${join(expDir, e.name)}: unreadable (${(err as Error).message.split('\n')[0]})\n`,
            );
          }
        }
      }
    }
    runs.sort((a, b) => b.info.startTime - a.info.startTime);
    return runs.slice(0, options.maxResults ?? 1000);
  }

  async updateRun(runId: string, status: RunStatus, endTime?: number): Promise<void> {
    const { dir } = this.findRunDir(runId);
    const info = this.readRunInfo(dir);
    this.writeRunMeta(dir, { ...info, status, endTime });
  }

  async logBatch(runId: string, batch: LogBatch): Promise<void> {
    const { dir } = this.findRunDir(runId);
    for (const p of batch.params) {
      checkKey('param', p.key);
      const file = join(dir, 'params', p.key);
      if (existsSync(file)) {
        const old = readFileSync(file, 'utf8');
        // MLflow params are immutable: the same value again is fine, a new value is an error.
        if (old !== p.value)
          throw new InputError(
            `param '${p.key}' of run ${runId} is already '${old}'; MLflow params cannot change (got '${p.value}')`,
          );
        continue;
      }
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, p.value);
    }
    for (const t of batch.tags) {
      checkKey('tag', t.key);
      writeFileAtomic(join(dir, 'tags', t.key), t.value);
    }
    const byKey = new Map<string, string[]>();
    for (const m of batch.metrics) {
      checkKey('metric', m.key);
      const lines = byKey.get(m.key) ?? [];
      lines.push(`${Math.round(m.timestamp)} ${formatValue(m.value)} ${Math.round(m.step)}\n`);
      byKey.set(m.key, lines);
    }
    for (const [key, lines] of byKey) {
      const file = join(dir, 'metrics', key);
      mkdirSync(dirname(file), { recursive: true });
      trimTornLine(file);
      appendFileSync(file, lines.join(''));
    }
  }

  async logInputs(runId: string, datasets: DatasetInput[]): Promise<void> {
    const { experimentId, dir } = this.findRunDir(runId);
    for (const input of datasets) {
      const d = input.dataset;
      const datasetId = createHash('md5').update(d.name).update(d.digest).digest('hex');
      const dsDir = join(this.root, experimentId, 'datasets', datasetId);
      if (!existsSync(join(dsDir, META))) {
        const meta: Record<string, unknown> = {
          digest: d.digest,
          name: d.name,
          source: d.source,
          source_type: d.sourceType,
        };
        if (d.schema !== undefined) meta.schema = d.schema;
        if (d.profile !== undefined) meta.profile = d.profile;
        writeYaml(join(dsDir, META), meta);
      }
      const inputId = createHash('md5').update(datasetId).update(runId).digest('hex');
      const inputDir = join(dir, 'inputs', inputId);
      if (!existsSync(join(inputDir, META))) {
        writeYaml(join(inputDir, META), {
          // NOTE: MLflow itself writes source_id into destination_id here; readers ignore it.
          destination_id: runId,
          destination_type: 'RUN',
          source_id: datasetId,
          source_type: 'DATASET',
          tags: Object.fromEntries(input.tags.map((t) => [t.key, t.value])),
        });
      }
    }
  }

  async getMetricHistory(runId: string, key: string): Promise<Metric[]> {
    checkKey('metric', key);
    return this.readHistory(this.findRunDir(runId).dir, key);
  }

  private artifactDir(runId: string): string {
    const { dir } = this.findRunDir(runId);
    const uri = this.readRunInfo(dir).artifactUri;
    return uri.startsWith('file:') ? fileURLToPath(uri) : join(dir, 'artifacts');
  }

  private artifactPath(runId: string, path: string): string {
    const root = this.artifactDir(runId);
    const full = resolve(root, path);
    if (full !== root && !full.startsWith(root + sep))
      throw new InputError(`artifact path '${path}' leaves the run's artifact folder`);
    return full;
  }

  async logArtifact(runId: string, localFile: string, artifactPath: string): Promise<void> {
    const dest = this.artifactPath(runId, artifactPath);
    mkdirSync(dirname(dest), { recursive: true });
    // Copied to a hidden sibling, then renamed: a SIGKILL mid-copy leaves no half checkpoint
    // under its real name (issue 16); listings skip the hidden `.tmp` leftovers.
    const tmp = temporarySibling(dest);
    try {
      copyFileSync(localFile, tmp);
      renameSync(tmp, dest);
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  async listArtifacts(runId: string, path = ''): Promise<ArtifactFile[]> {
    const dir = this.artifactPath(runId, path);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => !e.name.endsWith('.tmp'))
      .map((e) => ({
        path: path ? `${path.replace(/\/$/, '')}/${e.name}` : e.name,
        isDir: e.isDirectory(),
        fileSize: e.isDirectory() ? undefined : statSync(join(dir, e.name)).size,
      }))
      .sort((a, b) => a.path.localeCompare(b.path));
  }

  async deleteArtifacts(runId: string, artifactPath: string): Promise<void> {
    const target = this.artifactPath(runId, artifactPath);
    if (!existsSync(target)) return;
    // renamed to a hidden sibling first: a concurrent listing never sees a half-deleted folder
    const tmp = temporarySibling(target);
    renameSync(target, tmp);
    rmSync(tmp, { recursive: true, force: true });
  }

  async downloadArtifact(runId: string, artifactPath: string, localFile: string): Promise<void> {
    const src = this.artifactPath(runId, artifactPath);
    if (!existsSync(src)) throw new InputError(`run ${runId} has no artifact '${artifactPath}'`);
    mkdirSync(dirname(localFile), { recursive: true });
    copyFileSync(src, localFile);
  }

  /**
   * A logged model in MLflow FileStore's layout (mlflow/store/tracking/file_store.py):
   * `<exp>/models/<id>/{meta.yaml, params/, tags/, metrics/, artifacts/}`, and the run's output
   * link `<run>/outputs/<id>/meta.yaml`. meta.yaml comes last (status READY), so a model that
   * crashed half-written is never listed.
   */
  async logModel(spec: LoggedModelSpec): Promise<LoggedModelInfo> {
    const { dir: runDir } = this.findRunDir(spec.runId);
    const modelId = `m-${randomUUID().replaceAll('-', '')}`;
    const dir = join(this.root, spec.experimentId, 'models', modelId);
    const artifacts = join(dir, 'artifacts');
    for (const sub of ['params', 'tags', 'metrics', 'artifacts'])
      mkdirSync(join(dir, sub), { recursive: true });
    for (const p of spec.params) writeFileAtomic(join(dir, 'params', p.key), p.value);
    for (const t of spec.tags) writeFileAtomic(join(dir, 'tags', t.key), t.value);
    for (const f of spec.files) {
      const dest = join(artifacts, ...f.path.split('/'));
      mkdirSync(dirname(dest), { recursive: true });
      copyFileSync(f.local, dest);
    }
    writeFileAtomic(join(artifacts, 'MLmodel'), spec.mlmodel(modelId));
    const artifactUri = pathToFileURL(artifacts).href;
    const now = Date.now();
    writeYaml(join(dir, META), {
      artifact_location: artifactUri,
      creation_timestamp: now,
      experiment_id: spec.experimentId,
      last_updated_timestamp: now,
      model_id: modelId,
      model_type: spec.modelType,
      name: spec.name,
      source_run_id: spec.runId,
      status: 2, // LoggedModelStatus.READY
      status_message: null,
    });
    // NOTE: MLflow writes destination_id = the model id here too (its _FileStoreOutput)
    mkdirSync(join(runDir, 'outputs', modelId), { recursive: true });
    writeYaml(join(runDir, 'outputs', modelId, META), {
      destination_id: modelId,
      destination_type: 'MODEL_OUTPUT',
      source_id: modelId,
      source_type: 'RUN_OUTPUT',
      step: spec.step,
      tags: {},
    });
    return { modelId, artifactUri };
  }

  async close(): Promise<{ pending: number }> {
    return { pending: 0 };
  }
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

/** The lock folder that serialises creating experiment `name` in the store at `root`. */
export function experimentLockDir(root: string, name: string): string {
  return join(root, `.lock-experiment-${createHash('sha256').update(name).digest('hex').slice(0, 16)}`);
}

/** Held longer than this, a lock folder is a crashed holder's leftover and is taken over. */
const STALE_LOCK_MS = 10_000;

/** Takes a lock by creating `dir` (mkdir is atomic); waits while another process holds it. */
async function acquireLockDir(dir: string, timeoutMs = 60_000): Promise<void> {
  const started = Date.now();
  for (;;) {
    try {
      mkdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    try {
      if (Date.now() - statSync(dir).mtimeMs > STALE_LOCK_MS) rmSync(dir, { recursive: true, force: true });
    } catch {
      // released meanwhile: try again
    }
    if (Date.now() - started > timeoutMs)
      throw new Error(
        `file store: lock ${dir} held for over ${timeoutMs / 1000} s; remove it if no run is starting`,
      );
    await new Promise((r) => setTimeout(r, 10 + Math.random() * 20));
  }
}
