/**
 * Streaming, atomic trajectory writers for both layouts (see README "Datasets"):
 * - `file`: one Arrow IPC file; record batches hold whole episodes (≥ `batchRows` rows each),
 *   the dataset metadata and an episode index live in the schema's metadata.
 * - `minari`: Minari's Arrow storage, `<dir>/data/<episode_id>/part-0.arrow` + `metadata.json`s.
 *
 * Memory is bounded by one record batch (file) or one episode (minari). Everything is written to
 * a hidden temporary sibling of the target and renamed into place by `close()`, so an interrupted
 * write leaves the previous dataset (or nothing) at the target, never half of one. `close()`
 * records a sha256 of the content (layout-independent, see `hashEpisode`).
 */
import { createHash, type Hash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  Bool,
  type Data,
  Field,
  FixedSizeList,
  Float32,
  Float64,
  Int32,
  Int64,
  makeData,
  RecordBatch,
  Schema,
  Struct,
  tableToIPC,
  Table,
} from 'apache-arrow';
import {
  assertOutputIsNotInput,
  InputError,
  sweepStaleTemporaries,
  temporarySibling,
} from '../common/index.js';
import { checkEpisode, type Episode, type EpisodeInput, hashEpisode, MomentSums } from './episode.js';
import { ArrowBodyWriter, finalizeArrowFile, packBits } from './ipc.js';
import { type DatasetDescription, describe, type Space, spaceDim } from './metadata.js';

/** The two on-disk layouts. */
export type Layout = 'file' | 'minari';

/** Schema-metadata keys of the single-file layout. */
export const METADATA_KEY = 'metadata.json';
export const INDEX_KEY = 'ring.episode_index';

export interface WriterOptions {
  /** `file` (default): one Arrow IPC file. `minari`: a Minari Arrow dataset directory. */
  layout?: Layout;
  /** Rows per record batch in the file layout (whole episodes; default 65536). */
  batchRows?: number;
  /** Files or folders the data is read from: the target may not be (or link to) one of them. */
  inputs?: string[];
}

/** What `close()` reports. */
export interface WriteResult {
  path: string;
  layout: Layout;
  totalEpisodes: number;
  totalSteps: number;
  /** Short content digest (8 hex of the sha256): the MLflow dataset digest. */
  digest: string;
  contentSha256: string;
}

/** Episode index stored in the single-file layout's schema metadata (`ring.episode_index`). */
export interface EpisodeIndex {
  ids: number[];
  lengths: number[];
  returns: number[];
  /** Index of the first episode of each record batch. */
  batch_first_episode: number[];
}

const open = new Set<TrajectoryWriter>();

/** Aborts every writer still open (a Ctrl-C handler calls this before exiting). */
export function abortOpenWriters(): void {
  for (const w of [...open]) w.abort();
}

/**
 * Checks `target` before any work (issue 16): not an input, not a folder where a file goes (or a
 * file where a folder goes); then removes temporaries that killed writers left beside it.
 */
export function checkWriteTarget(target: string, layout: Layout, inputs: string[] = []): void {
  assertOutputIsNotInput(target, inputs);
  let st: ReturnType<typeof statSync> | undefined;
  try {
    st = statSync(target);
  } catch {
    st = undefined;
  }
  if (st && layout === 'file' && !st.isFile())
    throw new InputError(
      `--out ${target}: expected a file path for the single-file layout; it is an existing ${st.isDirectory() ? 'directory' : 'non-regular file'} (use --layout minari for a directory)`,
    );
  if (st && layout === 'minari' && !st.isDirectory())
    throw new InputError(
      `--out ${target}: expected a directory for the minari layout; it is an existing file`,
    );
  for (const p of sweepStaleTemporaries(dirname(target)))
    process.stderr.write(`removed ${p}, left by an interrupted writer\n`);
}

/** Wraps a file-system failure (disk full, read-only) so it names the target (exit 2). */
function writeFailure(target: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code && ['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EFBIG'].includes(code))
    return new InputError(
      `${target}: cannot write the dataset (${code}: ${(err as Error).message}); the target is unchanged and no temporary file is left`,
      { cause: err },
    );
  return err;
}

/** Opens a writer for `target` in the chosen layout. */
export function createWriter(target: string, description: DatasetDescription, options: WriterOptions = {}) {
  checkWriteTarget(target, options.layout ?? 'file', options.inputs);
  try {
    return (options.layout ?? 'file') === 'minari'
      ? new MinariDirWriter(target, description)
      : new ArrowFileWriter(target, description, options.batchRows ?? 65536);
  } catch (err) {
    throw writeFailure(target, err);
  }
}

/** The shared part: checks, content hash, observation moments, returns. */
export abstract class TrajectoryWriter {
  protected readonly meta: Record<string, unknown>;
  protected readonly obsDim: number;
  protected readonly actDim: number;
  protected readonly hash: Hash = createHash('sha256');
  protected readonly moments: MomentSums;
  protected readonly lengths: number[] = [];
  protected readonly returns: number[] = [];
  protected infoDims: Map<string, number> | undefined;
  protected totalSteps = 0;
  protected finished = false;

  constructor(
    readonly target: string,
    protected readonly description: DatasetDescription,
    readonly layout: Layout,
  ) {
    this.meta = describe(description);
    this.obsDim = spaceDim(description.observationSpace);
    this.actDim = spaceDim(description.actionSpace);
    this.moments = new MomentSums(this.obsDim);
    open.add(this);
  }

  get numEpisodes(): number {
    return this.lengths.length;
  }

  /** Appends one episode (ids are dense, in the order episodes are added). */
  addEpisode(input: EpisodeInput): void {
    if (this.finished) throw new Error(`${this.target}: writer already closed`);
    let ep: Episode;
    try {
      ep = checkEpisode(
        input,
        this.numEpisodes,
        { obsDim: this.obsDim, actDim: this.actDim, infoDims: this.infoDims },
        this.target,
      );
      if (!this.infoDims) {
        this.infoDims = new Map(
          Object.entries(ep.infos ?? {}).map(([k, v]) => [k, v.length / (ep.length + 1)]),
        );
      } else if (Object.keys(ep.infos ?? {}).length !== this.infoDims.size) {
        throw new InputError(
          `${this.target}: episode ${ep.id}: key "infos": expected the keys [${[...this.infoDims.keys()].join(', ')}] of episode 0; got [${Object.keys(ep.infos ?? {}).join(', ')}]`,
        );
      }
    } catch (err) {
      this.abort();
      throw err;
    }
    hashEpisode(this.hash, ep, this.obsDim, this.actDim);
    this.moments.add(ep.observations, ep.length);
    let ret = 0;
    for (let t = 0; t < ep.length; t++) ret += ep.rewards[t];
    this.lengths.push(ep.length);
    this.returns.push(ret);
    this.totalSteps += ep.length;
    try {
      this.write(ep);
    } catch (err) {
      this.abort();
      throw writeFailure(this.target, err);
    }
  }

  protected abstract write(ep: Episode): void;
  protected abstract commit(meta: Record<string, unknown>): void;
  protected abstract discard(): void;

  /** Finishes the dataset and renames it into place. An empty dataset is an input error. */
  close(): WriteResult {
    if (this.finished) throw new Error(`${this.target}: writer already closed`);
    if (this.numEpisodes === 0) {
      this.abort();
      throw new InputError(`${this.target}: empty dataset: expected at least one episode; got 0`);
    }
    const sha = this.hash.digest('hex');
    const { mean, std } = this.moments.result();
    const meta = {
      ...this.meta,
      total_episodes: this.numEpisodes,
      total_steps: this.totalSteps,
      ring_digest: sha.slice(0, 8),
      ring_content_sha256: sha,
      ring_obs_mean: mean,
      ring_obs_std: std,
    };
    try {
      this.commit(meta);
    } catch (err) {
      this.abort();
      throw writeFailure(this.target, err);
    }
    this.finished = true;
    open.delete(this);
    return {
      path: this.target,
      layout: this.layout,
      totalEpisodes: this.numEpisodes,
      totalSteps: this.totalSteps,
      digest: sha.slice(0, 8),
      contentSha256: sha,
    };
  }

  /** Drops everything written so far; the target is left as it was. Safe to call twice. */
  abort(): void {
    if (this.finished) return;
    this.finished = true;
    open.delete(this);
    this.discard();
  }
}

// ---------------------------------------------------------------- arrow columns

function listData(values: Float32Array | Float64Array, width: number, rows: number): Data {
  const f64 = values instanceof Float64Array;
  const child = makeData({
    type: f64 ? new Float64() : new Float32(),
    length: rows * width,
    nullCount: 0,
    data: values,
  });
  return makeData({
    type: new FixedSizeList(width, new Field('item', f64 ? new Float64() : new Float32(), true)),
    length: rows,
    nullCount: 0,
    child,
  });
}

function listField(name: string, width: number, f64 = false, metadata?: Map<string, string>): Field {
  const item = new Field('item', f64 ? new Float64() : new Float32(), true);
  return new Field(name, new FixedSizeList(width, item), false, metadata);
}

function boolData(flags: Uint8Array): Data {
  return makeData({ type: new Bool(), length: flags.length, nullCount: 0, data: packBits(flags) });
}

function infoFields(infoDims: Map<string, number>): Field[] {
  return [...infoDims].map(([name, dim]) => listField(name, dim, false, new Map([['shape', String(dim)]])));
}

/** Fields of a trajectory table; `ids` adds our `episode_id`/`step` columns (file layout). */
function trajectoryFields(
  obs: { dim: number; f64: boolean },
  act: { dim: number; f64: boolean; discrete: boolean },
  infoDims: Map<string, number> | undefined,
  ids: boolean,
): Field[] {
  const fields: Field[] = [];
  if (ids) fields.push(new Field('episode_id', new Int32(), false), new Field('step', new Int32(), false));
  fields.push(listField('observations', obs.dim, obs.f64));
  fields.push(
    act.discrete ? new Field('actions', new Int64(), false) : listField('actions', act.dim, act.f64),
  );
  fields.push(new Field('rewards', new Float64(), false));
  fields.push(new Field('terminations', new Bool(), false));
  fields.push(new Field('truncations', new Bool(), false));
  if (infoDims && infoDims.size > 0) fields.push(new Field('infos', new Struct(infoFields(infoDims)), false));
  return fields;
}

/** Concatenated columns of whole episodes, N+1 rows each (final row: last observation, zero padding). */
function episodeColumns(
  episodes: Episode[],
  obsDim: number,
  actDim: number,
  opts: { obsF64: boolean; actF64: boolean; discrete: boolean; ids: boolean; infoDims?: Map<string, number> },
): Data[] {
  let rows = 0;
  for (const ep of episodes) rows += ep.length + 1;
  const obs = opts.obsF64 ? new Float64Array(rows * obsDim) : new Float32Array(rows * obsDim);
  const act = opts.actF64 ? new Float64Array(rows * actDim) : new Float32Array(rows * actDim);
  const disc = new BigInt64Array(opts.discrete ? rows : 0);
  const rew = new Float64Array(rows);
  const term = new Uint8Array(rows);
  const trunc = new Uint8Array(rows);
  const epIds = new Int32Array(opts.ids ? rows : 0);
  const steps = new Int32Array(opts.ids ? rows : 0);
  const infos = new Map([...(opts.infoDims ?? [])].map(([k, d]) => [k, new Float32Array(rows * d)]));
  let r = 0;
  for (const ep of episodes) {
    const T = ep.length;
    obs.set(ep.observations, r * obsDim);
    if (opts.discrete) for (let t = 0; t < T; t++) disc[r + t] = BigInt(Math.round(ep.actions[t]));
    else act.set(ep.actions, r * actDim);
    rew.set(ep.rewards, r);
    term.set(ep.terminations, r);
    trunc.set(ep.truncations, r);
    if (opts.ids) {
      epIds.fill(ep.id, r, r + T + 1);
      for (let t = 0; t <= T; t++) steps[r + t] = t;
    }
    for (const [k, buf] of infos)
      buf.set((ep.infos as Record<string, Float32Array>)[k], r * (buf.length / rows));
    r += T + 1;
  }
  const cols: Data[] = [];
  if (opts.ids) {
    cols.push(makeData({ type: new Int32(), length: rows, nullCount: 0, data: epIds }));
    cols.push(makeData({ type: new Int32(), length: rows, nullCount: 0, data: steps }));
  }
  cols.push(listData(obs, obsDim, rows));
  cols.push(
    opts.discrete
      ? makeData({ type: new Int64(), length: rows, nullCount: 0, data: disc })
      : listData(act, actDim, rows),
  );
  cols.push(makeData({ type: new Float64(), length: rows, nullCount: 0, data: rew }));
  cols.push(boolData(term));
  cols.push(boolData(trunc));
  if (infos.size > 0) {
    const fields = infoFields(opts.infoDims as Map<string, number>);
    const children = [...infos].map(([k, buf]) =>
      listData(buf, (opts.infoDims as Map<string, number>).get(k) ?? 1, rows),
    );
    cols.push(makeData({ type: new Struct(fields), length: rows, nullCount: 0, children }));
  }
  return cols;
}

function recordBatch(schema: Schema, cols: Data[]): RecordBatch {
  const rows = cols[0].length;
  return new RecordBatch(
    schema,
    makeData({ type: new Struct(schema.fields), length: rows, nullCount: 0, children: cols }),
  );
}

// ---------------------------------------------------------------- single file

class ArrowFileWriter extends TrajectoryWriter {
  private readonly tmp: string;
  private body: ArrowBodyWriter | undefined;
  private schema: Schema | undefined;
  private pending: Episode[] = [];
  private pendingRows = 0;
  private readonly batchFirst: number[] = [];

  constructor(
    target: string,
    description: DatasetDescription,
    private readonly batchRows: number,
  ) {
    super(target, description, 'file');
    mkdirSync(dirname(target), { recursive: true });
    this.tmp = temporarySibling(target);
  }

  private fields(): Field[] {
    return trajectoryFields(
      { dim: this.obsDim, f64: false },
      { dim: this.actDim, f64: false, discrete: false },
      this.infoDims,
      true,
    );
  }

  protected write(ep: Episode): void {
    if (!this.body) {
      // The scratch file's schema carries the metadata known so far; the final file's is complete.
      this.schema = new Schema(this.fields(), new Map([[METADATA_KEY, JSON.stringify(this.meta)]]));
      this.body = new ArrowBodyWriter(`${this.tmp}.body`, this.schema);
    }
    if (this.pending.length === 0) this.batchFirst.push(ep.id);
    this.pending.push(ep);
    this.pendingRows += ep.length + 1;
    if (this.pendingRows >= this.batchRows) this.flush();
  }

  private flush(): void {
    if (this.pending.length === 0 || !this.body || !this.schema) return;
    const cols = episodeColumns(this.pending, this.obsDim, this.actDim, {
      obsF64: false,
      actF64: false,
      discrete: false,
      ids: true,
      infoDims: this.infoDims,
    });
    this.body.write(recordBatch(this.schema, cols));
    this.pending = [];
    this.pendingRows = 0;
  }

  protected commit(meta: Record<string, unknown>): void {
    this.flush();
    const body = this.body as ArrowBodyWriter;
    body.closeFile();
    const index: EpisodeIndex = {
      ids: this.lengths.map((_, i) => i),
      lengths: this.lengths,
      returns: this.returns,
      batch_first_episode: this.batchFirst,
    };
    const schema = new Schema(
      this.fields(),
      new Map([
        [METADATA_KEY, JSON.stringify(meta)],
        [INDEX_KEY, JSON.stringify(index)],
      ]),
    );
    finalizeArrowFile(body, schema, this.tmp);
    rmSync(body.path, { force: true });
    renameSync(this.tmp, this.target);
  }

  protected discard(): void {
    try {
      this.body?.closeFile();
    } catch {
      // already closed
    }
    rmSync(`${this.tmp}.body`, { force: true });
    rmSync(this.tmp, { force: true });
  }
}

// ---------------------------------------------------------------- minari directory

class MinariDirWriter extends TrajectoryWriter {
  private readonly tmp: string;
  private readonly obsF64: boolean;
  private readonly actF64: boolean;
  private readonly discrete: boolean;

  constructor(target: string, description: DatasetDescription) {
    super(target, description, 'minari');
    mkdirSync(dirname(target), { recursive: true });
    this.tmp = temporarySibling(target);
    mkdirSync(join(this.tmp, 'data'), { recursive: true });
    const f64 = (s: Space) => s.type === 'Box' && s.dtype === 'float64';
    // Values are written in the dtype the space declares, as Minari's encoder does.
    this.obsF64 = f64(description.observationSpace);
    this.actF64 = f64(description.actionSpace);
    this.discrete = description.actionSpace.type === 'Discrete';
  }

  protected write(ep: Episode): void {
    const dir = join(this.tmp, 'data', String(ep.id));
    mkdirSync(dir);
    const up = (a: Float32Array, f64: boolean) => (f64 ? Float64Array.from(a) : a);
    const cast = { ...ep, observations: up(ep.observations, this.obsF64) as Float32Array };
    if (this.actF64) cast.actions = up(ep.actions, true) as unknown as Float32Array;
    const fields = trajectoryFields(
      { dim: this.obsDim, f64: this.obsF64 },
      { dim: this.actDim, f64: this.actF64, discrete: this.discrete },
      this.infoDims,
      false,
    );
    const schema = new Schema(fields);
    const cols = episodeColumns([cast], this.obsDim, this.actDim, {
      obsF64: this.obsF64,
      actF64: this.actF64,
      discrete: this.discrete,
      ids: false,
      infoDims: this.infoDims,
    });
    writeFileSync(join(dir, 'part-0.arrow'), tableToIPC(new Table(recordBatch(schema, cols)), 'file'));
    const epMeta: Record<string, unknown> = { id: ep.id, total_steps: ep.length };
    if (ep.seed !== undefined) epMeta.seed = ep.seed;
    writeFileSync(join(dir, 'metadata.json'), JSON.stringify(epMeta));
  }

  protected commit(meta: Record<string, unknown>): void {
    writeFileSync(join(this.tmp, 'data', 'metadata.json'), JSON.stringify(meta));
    // Swap directories: the old one is removed only once the new one is in place.
    const old = `${this.tmp}.old`;
    let moved = false;
    if (existsSync(this.target)) {
      renameSync(this.target, old);
      moved = true;
    }
    renameSync(this.tmp, this.target);
    if (moved) rmSync(old, { recursive: true, force: true });
  }

  protected discard(): void {
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** Writes a whole iterable of episodes (a convenience over `createWriter`). */
export function writeEpisodes(
  target: string,
  description: DatasetDescription,
  episodes: Iterable<EpisodeInput>,
  options: WriterOptions = {},
): WriteResult {
  const w = createWriter(target, description, options);
  try {
    for (const ep of episodes) w.addEpisode(ep);
  } catch (err) {
    w.abort();
    throw err;
  }
  return w.close();
}
