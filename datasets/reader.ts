/**
 * Lazy trajectory readers for both layouts. Opening reads the metadata and the record batch
 * headers only and checks the schema; data is read on demand with positioned reads of just the
 * rows asked for (`steps`, `episode`) or batch by batch (`scan`), so memory stays bounded by
 * what the caller holds, whatever the dataset's size.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type DataType, type Field, Type } from 'apache-arrow';
import { assertRegularFile, InputError } from '../common/index.js';
import { type Episode, hashEpisode } from './episode.js';
import {
  ArrowFile,
  type BatchLayout,
  type LeafLayout,
  leafKind,
  readLeafRaw,
  readLeafRowsF32,
  readLeafRowsF64,
  Scratch,
  typeName,
} from './ipc.js';
import { type DatasetInfo, readInfo } from './metadata.js';
import { INDEX_KEY, type Layout, METADATA_KEY } from './writer.js';

/** Steps [start, start+count) of one episode. Shapes: (count, obsDim), (count, actDim), (count). */
export interface StepSlice {
  observations: Float32Array;
  actions: Float32Array;
  rewards: Float64Array;
  terminations: Uint8Array;
  truncations: Uint8Array;
}

/** One record batch of a scan: rows of whole episodes, T+1 rows per episode (Minari's layout). */
export interface StepBatch {
  rows: number;
  /** (rows) */
  episodeIds: Int32Array;
  /** (rows) step index; equal to the episode's length on its final (observation-only) row. */
  steps: Int32Array;
  /** (rows, obsDim) */
  observations: Float32Array;
  /** (rows, actDim); zero on final rows */
  actions: Float32Array;
  /** (rows); zero on final rows */
  rewards: Float64Array;
  terminations: Uint8Array;
  truncations: Uint8Array;
}

/** Columns a scan can read. */
export type ScanColumn =
  | 'episodeIds'
  | 'steps'
  | 'observations'
  | 'actions'
  | 'rewards'
  | 'terminations'
  | 'truncations';

const ALL_COLUMNS: readonly ScanColumn[] = [
  'episodeIds',
  'steps',
  'observations',
  'actions',
  'rewards',
  'terminations',
  'truncations',
];

/** A dataset opened for reading; see `openDataset`. */
export interface TrajectoryDataset {
  readonly path: string;
  readonly layout: Layout;
  readonly info: DatasetInfo;
  readonly numEpisodes: number;
  readonly totalSteps: number;
  readonly obsDim: number;
  readonly actDim: number;
  /** (numEpisodes) steps per episode. */
  readonly lengths: Int32Array;
  /** What opening checked of the step data (see `OpenOptions.verify`). */
  readonly verification: Verification;
  /** (numEpisodes) undiscounted return per episode (stored, or computed once on first call). */
  returns(): Float64Array;
  /** A whole episode. */
  episode(i: number): Episode;
  /** Steps [start, start+count) of episode i (count ≤ length − start). */
  steps(i: number, start: number, count: number): StepSlice;
  /** Rewards of steps [start, start+count) of episode i only (one small read). */
  rewards(i: number, start: number, count: number): Float64Array;
  /**
   * All record batches in order. `columns` limits what is read (the rest come back empty).
   * With `reuse`, float columns are read into buffers reused by the next batch (faster; copy
   * what you keep).
   */
  scan(columns?: readonly ScanColumn[], options?: { reuse?: boolean }): Iterable<StepBatch>;
  close(): void;
}

function isFloat(t: DataType): boolean {
  const k = leafKind(t);
  return k === 'f32' || k === 'f64';
}

/** Checks the columns of a trajectory table against the dataset's dimensions. */
function checkColumns(path: string, fields: Field[], info: DatasetInfo, ids: boolean): void {
  const byName = new Map(fields.map((f) => [f.name, f]));
  const want = (name: string, ok: (t: DataType) => boolean, expected: string) => {
    const f = byName.get(name);
    if (!f) throw new InputError(`${path}: missing column "${name}" (expected ${expected})`);
    if (!ok(f.type))
      throw new InputError(`${path}: column "${name}": expected ${expected}; got ${typeName(f.type)}`);
  };
  const list = (dim: number) => (t: DataType) =>
    t.typeId === Type.FixedSizeList &&
    (t as unknown as { listSize: number }).listSize === dim &&
    leafKind(t.children[0].type) !== undefined;
  if (ids) {
    want('episode_id', (t) => leafKind(t) === 'i32', 'int32');
    want('step', (t) => leafKind(t) === 'i32', 'int32');
  }
  want('observations', list(info.obsDim), `fixed_size_list<float32>[${info.obsDim}] (observation_space)`);
  if (info.actionSpace.type === 'Discrete')
    want(
      'actions',
      (t) => leafKind(t) !== undefined || list(1)(t),
      'an integer column (Discrete action_space)',
    );
  else want('actions', list(info.actDim), `fixed_size_list<float32>[${info.actDim}] (action_space)`);
  want('rewards', isFloat, 'float64');
  want('terminations', (t) => leafKind(t) === 'bool', 'bool');
  want('truncations', (t) => leafKind(t) === 'bool', 'bool');
}

function leafOf(path: string, b: BatchLayout, name: string): LeafLayout {
  const leaf = b.leaves.get(name);
  if (!leaf) throw new InputError(`${path}: missing column "${name}"`);
  if (leaf.nullCount > 0)
    throw new InputError(`${path}: column "${name}" has ${leaf.nullCount} nulls; expected none`);
  return leaf;
}

function flags(file: ArrowFile, leaf: LeafLayout, start: number, count: number): Uint8Array {
  return readLeafRaw(file, leaf, start, count) as Uint8Array;
}

/** Reads a slice of rows of one batch (rows relative to the batch). */
function sliceOf(file: ArrowFile, b: BatchLayout, start: number, count: number): StepSlice {
  const p = file.path;
  return {
    observations: readLeafRowsF32(file, leafOf(p, b, 'observations'), start, count),
    actions: readLeafRowsF32(file, leafOf(p, b, 'actions'), start, count),
    rewards: readLeafRowsF64(file, leafOf(p, b, 'rewards'), start, count),
    terminations: flags(file, leafOf(p, b, 'terminations'), start, count),
    truncations: flags(file, leafOf(p, b, 'truncations'), start, count),
  };
}

function infosOf(
  file: ArrowFile,
  b: BatchLayout,
  start: number,
  rows: number,
): Record<string, Float32Array> | undefined {
  const out: Record<string, Float32Array> = {};
  for (const [name, leaf] of b.leaves) {
    if (!name.startsWith('infos.')) continue;
    out[name.slice(6)] = readLeafRowsF32(file, leaf, start, rows);
  }
  return Object.keys(out).length ? out : undefined;
}

/** JSON text read from `where` (a file, and the key inside it); malformed text names both. */
function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError(`${where}: invalid JSON (${(err as Error).message})`);
  }
}

/** A JSON object (not null, not an array) or an InputError naming `where`. */
function jsonObject(raw: unknown, where: string, what: string): Record<string, unknown> {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw new InputError(
      `${where}: expected a JSON object (${what}); got ${JSON.stringify(raw)?.slice(0, 80)}`,
    );
  return raw as Record<string, unknown>;
}

/** `key` of `m`: absent or null → undefined, else a non-negative integer or an InputError. */
function optionalInt(m: Record<string, unknown>, key: string, where: string): number | undefined {
  const v = m[key];
  if (v === undefined || v === null) return undefined;
  if (!Number.isInteger(v) || (v as number) < 0)
    throw new InputError(`${where}: "${key}" must be a non-negative integer; got ${JSON.stringify(v)}`);
  return v as number;
}

/** `key` of `m` as an array of `n` numbers passing `ok`, or an InputError naming file and key. */
function numberArray(
  m: Record<string, unknown>,
  key: string,
  n: number,
  ok: (x: number) => boolean,
  expected: string,
  where: string,
): number[] {
  const v = m[key];
  if (!Array.isArray(v) || v.length !== n)
    throw new InputError(
      `${where}.${key}: expected ${n} entries; got ${Array.isArray(v) ? v.length : JSON.stringify(v)}`,
    );
  const bad = v.findIndex((x) => typeof x !== 'number' || !ok(x));
  if (bad >= 0)
    throw new InputError(`${where}.${key}[${bad}]: expected ${expected}; got ${JSON.stringify(v[bad])}`);
  return v as number[];
}

/**
 * The single-file layout's episode index (writer.ts `EpisodeIndex`), checked: `lengths` per
 * episode, optional `returns` per episode, `batch_first_episode` per record batch, from 0 and
 * non-decreasing (batches hold whole episodes).
 */
function readEpisodeIndex(
  text: string,
  where: string,
  episodes: number,
  batches: number,
): { lengths: Int32Array; returns: Float64Array | undefined; batchFirst: number[] } {
  const m = jsonObject(parseJson(text, where), where, 'the episode index');
  const isCount = (x: number) => Number.isInteger(x) && x >= 0 && x <= 2 ** 31 - 1;
  const lengths = numberArray(m, 'lengths', episodes, isCount, 'a non-negative integer', where);
  const returns =
    m.returns === undefined
      ? undefined
      : numberArray(m, 'returns', episodes, Number.isFinite, 'a finite number', where);
  const batchFirst = numberArray(
    m,
    'batch_first_episode',
    batches,
    (x) => Number.isInteger(x) && x >= 0 && x <= episodes,
    `an episode index in 0..${episodes}`,
    where,
  );
  for (let b = 0; b < batches; b++)
    if ((b === 0 && batchFirst[b] !== 0) || (b > 0 && batchFirst[b] < batchFirst[b - 1]))
      throw new InputError(
        `${where}.batch_first_episode: expected to start at 0 and never decrease; got ${JSON.stringify(batchFirst)}`,
      );
  return {
    lengths: Int32Array.from(lengths),
    returns: returns && Float64Array.from(returns),
    batchFirst,
  };
}

function checkEpisodeIndex(i: number, n: number, path: string): void {
  if (!Number.isInteger(i) || i < 0 || i >= n)
    throw new InputError(`${path}: episode ${i} out of range (expected 0..${n - 1})`);
}

// ---------------------------------------------------------------- single file

class ArrowFileDataset implements TrajectoryDataset {
  readonly layout = 'file' as const;
  readonly info: DatasetInfo;
  verification: Verification = NOT_CHECKED;
  readonly lengths: Int32Array;
  private readonly storedReturns: Float64Array | undefined;
  private readonly batchOf: Int32Array;
  private readonly rowInBatch: Int32Array;
  private readonly file: ArrowFile;

  constructor(readonly path: string) {
    this.file = new ArrowFile(path);
    try {
      const md = this.file.schema.metadata;
      const text = md.get(METADATA_KEY);
      if (text === undefined)
        throw new InputError(
          `${path}: schema metadata has no "${METADATA_KEY}" key (not a trajectory dataset?)`,
        );
      const where = `${path}: schema metadata "${METADATA_KEY}"`;
      this.info = readInfo(parseJson(text, where), where);
      checkColumns(path, this.file.schema.fields, this.info, true);
      const indexText = md.get(INDEX_KEY);
      if (indexText === undefined) throw new InputError(`${path}: schema metadata has no "${INDEX_KEY}" key`);
      const E = this.info.totalEpisodes;
      const index = readEpisodeIndex(
        indexText,
        `${path}: schema metadata "${INDEX_KEY}"`,
        E,
        this.file.numBatches,
      );
      this.lengths = index.lengths;
      this.storedReturns = index.returns;
      let steps = 0;
      for (const l of this.lengths) steps += l;
      if (steps !== this.info.totalSteps)
        throw new InputError(
          `${path}: episode lengths sum to ${steps}; "total_steps" says ${this.info.totalSteps}`,
        );
      // Episode → (batch, first row); batches hold whole episodes.
      this.batchOf = new Int32Array(E);
      this.rowInBatch = new Int32Array(E);
      const first = [...index.batchFirst, E];
      for (let b = 0; b < this.file.numBatches; b++) {
        let row = 0;
        for (let e = first[b]; e < first[b + 1]; e++) {
          this.batchOf[e] = b;
          this.rowInBatch[e] = row;
          row += this.lengths[e] + 1;
        }
        const rows = this.file.batch(b).rows;
        if (rows !== row)
          throw new InputError(
            `${path}: record batch ${b} has ${rows} rows; the episode index implies ${row}`,
          );
      }
    } catch (err) {
      this.file.close();
      throw err;
    }
  }

  get numEpisodes() {
    return this.info.totalEpisodes;
  }
  get totalSteps() {
    return this.info.totalSteps;
  }
  get obsDim() {
    return this.info.obsDim;
  }
  get actDim() {
    return this.info.actDim;
  }

  returns(): Float64Array {
    return this.storedReturns ?? computeReturns(this);
  }

  /** The returns stored in the episode index, if the file has them. */
  storedReturnsOrUndefined(): Float64Array | undefined {
    return this.storedReturns;
  }

  steps(i: number, start: number, count: number): StepSlice {
    checkEpisodeIndex(i, this.numEpisodes, this.path);
    const b = this.file.batch(this.batchOf[i]);
    return sliceOf(
      this.file,
      b,
      this.rowInBatch[i] + start,
      Math.max(0, Math.min(count, this.lengths[i] - start)),
    );
  }

  rewards(i: number, start: number, count: number): Float64Array {
    checkEpisodeIndex(i, this.numEpisodes, this.path);
    const b = this.file.batch(this.batchOf[i]);
    const n = Math.max(0, Math.min(count, this.lengths[i] - start));
    return readLeafRowsF64(this.file, leafOf(this.path, b, 'rewards'), this.rowInBatch[i] + start, n);
  }

  episode(i: number): Episode {
    checkEpisodeIndex(i, this.numEpisodes, this.path);
    const b = this.file.batch(this.batchOf[i]);
    const T = this.lengths[i];
    const r0 = this.rowInBatch[i];
    const s = sliceOf(this.file, b, r0, T);
    return {
      id: i,
      length: T,
      ...s,
      observations: readLeafRowsF32(this.file, leafOf(this.path, b, 'observations'), r0, T + 1),
      infos: infosOf(this.file, b, r0, T + 1),
    };
  }

  *scan(
    columns: readonly ScanColumn[] = ALL_COLUMNS,
    options: { reuse?: boolean } = {},
  ): Iterable<StepBatch> {
    const want = new Set(columns);
    const scratchOf = scanScratch(options.reuse);
    for (let i = 0; i < this.file.numBatches; i++) {
      const b = this.file.batch(i);
      // One positioned read per wanted column; unwanted columns are never read.
      const leaf = (name: string) => leafOf(this.path, b, name);
      const f32 = (name: string, key: ScanColumn) =>
        want.has(key)
          ? readLeafRowsF32(this.file, leaf(name), 0, b.rows, scratchOf(name))
          : new Float32Array(0);
      const f64 = (name: string, key: ScanColumn) =>
        want.has(key)
          ? readLeafRowsF64(this.file, leaf(name), 0, b.rows, scratchOf(name))
          : new Float64Array(0);
      const u8 = (name: string, key: ScanColumn) =>
        want.has(key) ? flags(this.file, leaf(name), 0, b.rows) : new Uint8Array(0);
      const i32 = (name: string, key: ScanColumn) =>
        want.has(key)
          ? Int32Array.from(readLeafRaw(this.file, leaf(name), 0, b.rows) as Int32Array)
          : new Int32Array(0);
      yield {
        rows: b.rows,
        episodeIds: i32('episode_id', 'episodeIds'),
        steps: i32('step', 'steps'),
        observations: f32('observations', 'observations'),
        actions: f32('actions', 'actions'),
        rewards: f64('rewards', 'rewards'),
        terminations: u8('terminations', 'terminations'),
        truncations: u8('truncations', 'truncations'),
      };
    }
  }

  close(): void {
    this.file.close();
  }
}

/** With `reuse`, one buffer per float column, reused batch after batch; else none (fresh arrays). */
function scanScratch(reuse: boolean | undefined): (column: string) => Scratch | undefined {
  if (!reuse) return () => undefined;
  const byColumn = new Map<string, Scratch>();
  return (column) => {
    const s = byColumn.get(column) ?? new Scratch();
    byColumn.set(column, s);
    return s;
  };
}

function computeReturns(ds: TrajectoryDataset): Float64Array {
  const out = new Float64Array(ds.numEpisodes);
  for (let i = 0; i < ds.numEpisodes; i++) {
    const r = ds.rewards(i, 0, ds.lengths[i]);
    let s = 0;
    for (let t = 0; t < r.length; t++) s += r[t];
    out[i] = s;
  }
  return out;
}

// ---------------------------------------------------------------- minari directory (arrow storage)

/** `<dir>/data` when `dir` is a Minari dataset directory, or `dir` when it is the data dir. */
export function minariDataDir(dir: string): string | undefined {
  if (existsSync(join(dir, 'data', 'metadata.json'))) return join(dir, 'data');
  if (existsSync(join(dir, 'metadata.json'))) return dir;
  return undefined;
}

class MinariArrowDataset implements TrajectoryDataset {
  readonly layout = 'minari' as const;
  readonly info: DatasetInfo;
  verification: Verification = NOT_CHECKED;
  readonly lengths: Int32Array;
  private readonly dataDir: string;
  private cachedReturns: Float64Array | undefined;
  /** (numEpisodes) each episode's reset seed from its metadata.json, when recorded. */
  private readonly seeds: (number | undefined)[];
  private readonly files = new Map<number, ArrowFile>();

  constructor(
    readonly path: string,
    dataDir: string,
    info: DatasetInfo,
  ) {
    this.dataDir = dataDir;
    this.info = info;
    const E = info.totalEpisodes;
    this.lengths = new Int32Array(E);
    this.seeds = new Array(E).fill(undefined);
    let steps = 0;
    for (let i = 0; i < E; i++) {
      const dir = join(dataDir, String(i));
      if (!existsSync(dir))
        throw new InputError(`${dataDir}: missing episode directory "${i}" (total_episodes is ${E})`);
      const mdPath = join(dir, 'metadata.json');
      let len: number | undefined;
      if (existsSync(mdPath)) {
        assertRegularFile(mdPath, 'episode metadata'); // a FIFO would block the read (issue 16)
        const m = jsonObject(parseJson(readFileSync(mdPath, 'utf8'), mdPath), mdPath, 'episode metadata');
        len = optionalInt(m, 'total_steps', mdPath);
        this.seeds[i] = optionalInt(m, 'seed', mdPath);
      }
      if (len === undefined) len = this.file(i).batch(0).rows - 1;
      this.lengths[i] = len;
      steps += len;
    }
    if (steps !== info.totalSteps)
      throw new InputError(
        `${dataDir}: episode lengths sum to ${steps}; metadata.json "total_steps" says ${info.totalSteps}`,
      );
    if (E > 0) this.file(0); // check one episode's schema on open
  }

  get numEpisodes() {
    return this.info.totalEpisodes;
  }
  get totalSteps() {
    return this.info.totalSteps;
  }
  get obsDim() {
    return this.info.obsDim;
  }
  get actDim() {
    return this.info.actDim;
  }

  /** The episode's Arrow file (a few kept open, least recently used closed first). */
  private file(i: number): ArrowFile {
    const hit = this.files.get(i);
    if (hit) {
      this.files.delete(i);
      this.files.set(i, hit);
      return hit;
    }
    const dir = join(this.dataDir, String(i));
    const names = readdirSync(dir).filter(
      (n) =>
        !n.startsWith('_') && !n.startsWith('.') && n !== 'metadata.json' && statSync(join(dir, n)).isFile(),
    );
    if (names.length !== 1)
      throw new InputError(
        `${dir}: expected one Arrow file per episode (Minari's layout); got ${names.length}`,
      );
    const f = new ArrowFile(join(dir, names[0]));
    try {
      checkColumns(f.path, f.schema.fields, this.info, false);
      let rows = 0;
      for (let b = 0; b < f.numBatches; b++) rows += f.batch(b).rows;
      const want = this.lengths[i] ? this.lengths[i] + 1 : rows;
      if (rows !== want)
        throw new InputError(
          `${f.path}: expected ${want} rows (total_steps + 1); got ${rows} (mismatched lengths)`,
        );
    } catch (err) {
      f.close();
      throw err;
    }
    this.files.set(i, f);
    if (this.files.size > 16) {
      const [oldest, of] = this.files.entries().next().value as [number, ArrowFile];
      of.close();
      this.files.delete(oldest);
    }
    return f;
  }

  /** Rows [start, start+count) across the file's record batches. */
  private rows(
    i: number,
    start: number,
    count: number,
    withInfos: boolean,
  ): StepSlice & { infos?: Record<string, Float32Array> } {
    const f = this.file(i);
    const parts: (StepSlice & { infos?: Record<string, Float32Array> })[] = [];
    let base = 0;
    for (let b = 0; b < f.numBatches && count > 0; b++) {
      const layout = f.batch(b);
      const lo = Math.max(start, base);
      const hi = Math.min(start + count, base + layout.rows);
      if (hi > lo) {
        const part: StepSlice & { infos?: Record<string, Float32Array> } = sliceOf(
          f,
          layout,
          lo - base,
          hi - lo,
        );
        if (withInfos) part.infos = infosOf(f, layout, lo - base, hi - lo);
        parts.push(part);
      }
      base += layout.rows;
    }
    return parts.length === 1 ? parts[0] : concatSlices(parts);
  }

  returns(): Float64Array {
    this.cachedReturns ??= computeReturns(this);
    return this.cachedReturns;
  }

  steps(i: number, start: number, count: number): StepSlice {
    checkEpisodeIndex(i, this.numEpisodes, this.path);
    return this.rows(i, start, Math.max(0, Math.min(count, this.lengths[i] - start)), false);
  }

  rewards(i: number, start: number, count: number): Float64Array {
    return this.steps(i, start, count).rewards;
  }

  episode(i: number): Episode {
    checkEpisodeIndex(i, this.numEpisodes, this.path);
    const T = this.lengths[i];
    const all = this.rows(i, 0, T + 1, true);
    return {
      id: i,
      length: T,
      observations: all.observations,
      actions: all.actions.subarray(0, T * this.actDim),
      rewards: all.rewards.subarray(0, T),
      terminations: all.terminations.subarray(0, T),
      truncations: all.truncations.subarray(0, T),
      infos: all.infos,
      seed: this.seeds[i],
    };
  }

  /** One batch per episode (T+1 rows); only the wanted columns are read, as in the file layout. */
  *scan(
    columns: readonly ScanColumn[] = ALL_COLUMNS,
    options: { reuse?: boolean } = {},
  ): Iterable<StepBatch> {
    const want = new Set(columns);
    const scratchOf = scanScratch(options.reuse);
    for (let i = 0; i < this.numEpisodes; i++) {
      const rows = this.lengths[i] + 1;
      const f = this.file(i);
      const column = <A extends Float32Array | Float64Array | Uint8Array>(
        name: string,
        key: ScanColumn,
        read: (leaf: LeafLayout, start: number, count: number, scratch?: Scratch) => A,
        empty: A,
      ): A => (want.has(key) ? episodeColumn(f, name, rows, read, scratchOf(name)) : empty);
      yield {
        rows,
        // Minari files carry no id or step columns: they follow from the file's place and row
        episodeIds: want.has('episodeIds') ? new Int32Array(rows).fill(i) : new Int32Array(0),
        steps: want.has('steps') ? Int32Array.from({ length: rows }, (_, t) => t) : new Int32Array(0),
        observations: column(
          'observations',
          'observations',
          (l, s, n, sc) => readLeafRowsF32(f, l, s, n, sc),
          new Float32Array(0),
        ),
        actions: column(
          'actions',
          'actions',
          (l, s, n, sc) => readLeafRowsF32(f, l, s, n, sc),
          new Float32Array(0),
        ),
        rewards: column(
          'rewards',
          'rewards',
          (l, s, n, sc) => readLeafRowsF64(f, l, s, n, sc),
          new Float64Array(0),
        ),
        terminations: column(
          'terminations',
          'terminations',
          (l, s, n) => flags(f, l, s, n),
          new Uint8Array(0),
        ),
        truncations: column('truncations', 'truncations', (l, s, n) => flags(f, l, s, n), new Uint8Array(0)),
      };
    }
  }

  close(): void {
    for (const f of this.files.values()) f.close();
    this.files.clear();
  }
}

/** Arrays of one type end to end. */
function cat<A extends Float32Array | Float64Array | Uint8Array>(arrs: A[]): A {
  const n = arrs.reduce((s, a) => s + a.length, 0);
  const out = new (arrs[0].constructor as new (n: number) => A)(n);
  let o = 0;
  for (const a of arrs) {
    out.set(a as never, o);
    o += a.length;
  }
  return out;
}

/**
 * Rows [0, rows) of one column of an episode file, across its record batches. A file of one
 * batch (what our writer and Minari write) reads straight into `scratch`; several are joined.
 */
function episodeColumn<A extends Float32Array | Float64Array | Uint8Array>(
  f: ArrowFile,
  name: string,
  rows: number,
  read: (leaf: LeafLayout, start: number, count: number, scratch?: Scratch) => A,
  scratch: Scratch | undefined,
): A {
  const parts: A[] = [];
  let base = 0;
  for (let b = 0; b < f.numBatches && base < rows; b++) {
    const layout = f.batch(b);
    const count = Math.min(layout.rows, rows - base);
    if (count > 0)
      parts.push(read(leafOf(f.path, layout, name), 0, count, f.numBatches === 1 ? scratch : undefined));
    base += layout.rows;
  }
  return parts.length === 1 ? parts[0] : cat(parts);
}

function concatSlices<T extends StepSlice & { infos?: Record<string, Float32Array> }>(parts: T[]): T {
  const infos: Record<string, Float32Array> = {};
  for (const k of Object.keys(parts[0]?.infos ?? {}))
    infos[k] = cat(parts.map((p) => (p.infos as Record<string, Float32Array>)[k]));
  return {
    observations: cat(parts.map((p) => p.observations)),
    actions: cat(parts.map((p) => p.actions)),
    rewards: cat(parts.map((p) => p.rewards)),
    terminations: cat(parts.map((p) => p.terminations)),
    truncations: cat(parts.map((p) => p.truncations)),
    infos: Object.keys(infos).length ? infos : undefined,
  } as T;
}

// ---------------------------------------------------------------- verification on open

/** How much of the step data opening reads to check it (issue 16 item 6, issue 21). */
export type VerifyMode = 'auto' | 'always' | 'never';

export interface OpenOptions {
  /**
   * 'always': read every episode, check that every observation, action and reward is finite and
   * that the content hashes to the stored digest (`ring_content_sha256`); 'auto' (default): the
   * same when the step data is at most AUTO_VERIFY_BYTES, else read the rewards only (finite, and
   * summing to the stored returns) and say so in `verification`; 'never': read no step data.
   */
  verify?: VerifyMode;
  /** The 'auto' limit in bytes of step data; default AUTO_VERIFY_BYTES. */
  autoLimitBytes?: number;
}

/** What opening checked; `note` is one line for a run's log. */
export interface Verification {
  /**
   * 'verified': values finite, content digest matches; 'no-digest': values finite, the file
   * records no digest; 'rewards-only': rewards finite and matching the stored returns, the rest
   * not read (large file under 'auto'); 'not-checked': 'never'.
   */
  status: 'verified' | 'no-digest' | 'rewards-only' | 'not-checked';
  note: string;
  /** sha256 of the content as read (full checks only). */
  contentSha256?: string;
}

/**
 * Step data up to which 'auto' verifies everything: 256 MiB (the 100k-step ant-medium default is
 * 46 MiB; D4RL's 1M-step files are ≈ 0.5 GB, whose full read is left to --verify).
 */
export const AUTO_VERIFY_BYTES = 256 * 2 ** 20;

const NOT_CHECKED: Verification = {
  status: 'not-checked',
  note: 'step data not verified on open (verify: never)',
};

/** Bytes of step data as hashed: float32 observations (T+1 rows) and actions, float64 rewards, flags. */
function stepDataBytes(ds: TrajectoryDataset): number {
  return (ds.totalSteps + ds.numEpisodes) * ds.obsDim * 4 + ds.totalSteps * (ds.actDim * 4 + 8 + 2);
}

function firstNonFinite(a: ArrayLike<number>): number {
  for (let k = 0; k < a.length; k++) if (!Number.isFinite(a[k])) return k;
  return -1;
}

/** Reads every episode: finite values, then the content digest against the stored one. */
function verifyAll(ds: TrajectoryDataset): Verification {
  const hash = createHash('sha256');
  for (let i = 0; i < ds.numEpisodes; i++) {
    const ep = ds.episode(i);
    for (const [key, values, width, unit] of [
      ['rewards', ep.rewards, 1, 'step'],
      ['observations', ep.observations, ds.obsDim, 'row'],
      ['actions', ep.actions, ds.actDim, 'step'],
    ] as const) {
      const k = firstNonFinite(values);
      if (k >= 0)
        throw new InputError(
          `${ds.path}: episode ${i}: key "${key}": expected finite values; got ${values[k]} at ${unit} ${Math.floor(k / width)} (corrupt data)`,
        );
    }
    hashEpisode(hash, ep, ds.obsDim, ds.actDim);
  }
  const sha = hash.digest('hex');
  const stored = ds.info.contentSha256;
  if (stored && stored !== sha)
    throw new InputError(
      `${ds.path}: content digest mismatch: metadata says ${stored.slice(0, 8)}, the data hashes to ${sha.slice(0, 8)} (modified or corrupt)`,
    );
  return stored
    ? {
        status: 'verified',
        note: `content digest ${sha.slice(0, 8)} verified; values finite`,
        contentSha256: sha,
      }
    : {
        status: 'no-digest',
        note: 'values finite; the file records no content digest (ring_content_sha256), so the content is not verified',
        contentSha256: sha,
      };
}

/** Reads the rewards only: finite, and each episode's sum equal to the stored return. */
function verifyRewards(ds: TrajectoryDataset, stored: Float64Array | undefined): Verification {
  for (let i = 0; i < ds.numEpisodes; i++) {
    const r = ds.rewards(i, 0, ds.lengths[i]);
    const k = firstNonFinite(r);
    if (k >= 0)
      throw new InputError(
        `${ds.path}: episode ${i}: key "rewards": expected finite values; got ${r[k]} at step ${k} (corrupt data)`,
      );
    if (!stored) continue;
    let sum = 0;
    for (let t = 0; t < r.length; t++) sum += r[t];
    if (Math.abs(sum - stored[i]) > 1e-9 * Math.max(1, Math.abs(stored[i])))
      throw new InputError(
        `${ds.path}: episode ${i}: rewards sum to ${sum}; the stored return is ${stored[i]} (modified or corrupt)`,
      );
  }
  const mib = (stepDataBytes(ds) / 2 ** 20).toFixed(0);
  return {
    status: 'rewards-only',
    note: `content digest NOT verified (${mib} MiB of step data; verify: always reads it all): rewards finite and matching the stored returns, observations and actions not read`,
  };
}

/** Checks the step data as `mode` says; throws InputError naming the file, episode and key. */
function verifyOnOpen(
  ds: ArrowFileDataset | MinariArrowDataset,
  mode: VerifyMode,
  limit: number,
  storedReturns: Float64Array | undefined,
): void {
  if (mode === 'never') return;
  ds.verification =
    mode === 'always' || stepDataBytes(ds) <= limit ? verifyAll(ds) : verifyRewards(ds, storedReturns);
}

function opened<T extends ArrowFileDataset | MinariArrowDataset>(
  ds: T,
  o: OpenOptions,
  storedReturns: Float64Array | undefined,
): T {
  const mode = o.verify ?? 'auto';
  if (!['auto', 'always', 'never'].includes(mode))
    throw new InputError(
      `openDataset: verify must be 'auto', 'always' or 'never'; got ${JSON.stringify(mode)}`,
    );
  try {
    verifyOnOpen(ds, mode, o.autoLimitBytes ?? AUTO_VERIFY_BYTES, storedReturns);
  } catch (err) {
    ds.close();
    throw err;
  }
  return ds;
}

/**
 * Opens a dataset: an Arrow IPC file (single-file layout), or a Minari dataset directory (or its
 * `data/` directory) in Arrow storage. Checks the schema and metadata, then the step data as
 * `options.verify` says (default 'auto': everything for files up to AUTO_VERIFY_BYTES); what was
 * checked is in `verification`.
 */
export function openDataset(path: string, options: OpenOptions = {}): TrajectoryDataset {
  if (!existsSync(path)) throw new InputError(`${path}: no such file or directory`);
  if (!statSync(path).isDirectory()) {
    const ds = new ArrowFileDataset(path);
    return opened(ds, options, ds.storedReturnsOrUndefined());
  }
  const dataDir = minariDataDir(path);
  if (!dataDir)
    throw new InputError(
      `${path}: not a dataset (expected an Arrow file, or a directory with data/metadata.json)`,
    );
  const mdPath = join(dataDir, 'metadata.json');
  // NOTE: reading a FIFO blocks until a writer appears, ignoring Ctrl-C (issue 16)
  assertRegularFile(mdPath, 'Minari dataset metadata');
  const info = readInfo(parseJson(readFileSync(mdPath, 'utf8'), mdPath), mdPath);
  const format = info.raw.data_format;
  if (format === 'hdf5')
    throw new InputError(
      `${mdPath}: "data_format" is hdf5; import it first (exp data import minari <dir> --out <file>)`,
    );
  if (format !== 'arrow')
    throw new InputError(
      `${mdPath}: "data_format": expected "arrow" (or "hdf5" to import); got ${JSON.stringify(format)}`,
    );
  return opened(new MinariArrowDataset(path, dataDir, info), options, undefined);
}
