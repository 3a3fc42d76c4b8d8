/**
 * Importers: D4RL HDF5 files and Minari datasets (HDF5 or Arrow storage) into our writers.
 * HDF5 goes through h5wasm, read in row chunks so memory stays bounded by a chunk plus the
 * episode in progress.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { assertRegularFile, InputError } from '../common/index.js';
import { boxSpace, type DatasetDescription, readInfo } from './metadata.js';
import { minariDataDir, openDataset } from './reader.js';
import { createWriter, type Layout, type WriteResult } from './writer.js';

// h5wasm's types come with its package; we use a small structural slice of them.
interface H5Dataset {
  shape: number[] | null;
  dtype: unknown;
  metadata: { type: number; size: number };
  slice(ranges: [number, number][]): ArrayLike<number | bigint> | null;
  value: unknown;
}
interface H5Group {
  keys(): string[];
  get(path: string): H5Dataset | H5Group | null | undefined;
}
interface H5File extends H5Group {
  close(): void;
}

async function openHdf5(path: string): Promise<H5File> {
  if (!existsSync(path)) throw new InputError(`${path}: no such file`);
  assertRegularFile(path, 'HDF5 file');
  const head = Buffer.alloc(8);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, 8, 0);
  } finally {
    closeSync(fd);
  }
  // HDF5 signature \x89HDF\r\n\x1a\n (at offset 0 for files written by h5py).
  if (head.toString('latin1') !== '\x89HDF\r\n\x1a\n')
    throw new InputError(`${path}: not an HDF5 file (no HDF5 signature at the start)`);
  const h5 = (await import('h5wasm/node')).default;
  await h5.ready;
  try {
    const f = new h5.File(path, 'r') as unknown as H5File;
    f.keys();
    return f;
  } catch (err) {
    throw new InputError(`${path}: unreadable HDF5 file (truncated or corrupt?): ${(err as Error).message}`);
  }
}

function isDataset(x: unknown): x is H5Dataset {
  return !!x && typeof (x as H5Dataset).slice === 'function';
}

/** Resolves on the next turn of the event loop, so pending signal handlers run. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** HDF5 datatype class names, for messages. */
const H5_CLASS_NAMES: Record<number, string> = {
  0: 'integer',
  1: 'float',
  2: 'time',
  3: 'string',
  4: 'bitfield',
  5: 'opaque',
  6: 'compound',
  7: 'reference',
  8: 'enum',
  9: 'variable-length',
  10: 'array',
};

function readRows(
  file: string,
  key: string,
  ds: H5Dataset,
  start: number,
  end: number,
): ArrayLike<number | bigint> {
  try {
    const v = ds.slice([[start, end]]);
    if (!v) throw new Error('no data');
    return v;
  } catch (err) {
    throw new InputError(
      `${file}: key "${key}": cannot read rows ${start}..${end} (corrupt?): ${(err as Error).message}`,
    );
  }
}

/** A growable float array (episode in progress). */
class Grow {
  data: Float64Array;
  length = 0;
  constructor(initial = 1024) {
    this.data = new Float64Array(initial);
  }
  push(src: ArrayLike<number | bigint>, from: number, count: number): void {
    if (this.length + count > this.data.length) {
      const next = new Float64Array(Math.max(this.data.length * 2, this.length + count));
      next.set(this.data.subarray(0, this.length));
      this.data = next;
    }
    for (let k = 0; k < count; k++) this.data[this.length + k] = Number(src[from + k]);
    this.length += count;
  }
  take(): Float64Array {
    const out = this.data.slice(0, this.length);
    this.length = 0;
    return out;
  }
}

export interface D4rlImportOptions {
  out: string;
  layout?: Layout;
  /** Default `d4rl/<file name without .hdf5>-v0`. */
  datasetId?: string;
  envId?: string;
  /** Episode length cap used when the file has no `timeouts` key (D4RL's `_max_episode_steps`; 1000 for MuJoCo). */
  maxEpisodeSteps?: number;
  refMinScore?: number;
  refMaxScore?: number;
  /** Rows read per HDF5 slice (default 65536). */
  chunkRows?: number;
  /** Called with rows done after each chunk. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Imports a D4RL HDF5 file. Episodes end where `terminals[i] || timeouts[i]`; without a
 * `timeouts` key, an episode also ends after `maxEpisodeSteps` steps (what d4rl's
 * `qlearning_dataset` does; its `sequence_dataset` miscounts after the first episode). The final
 * observation comes from `next_observations` when the file has it, else the last observation is
 * repeated (D4RL's flat arrays hold no successor of an episode's last step). Trailing steps after
 * the last episode end form a final episode marked truncated.
 */
export async function importD4rl(file: string, options: D4rlImportOptions): Promise<WriteResult> {
  const f = await openHdf5(file);
  try {
    const get = (key: string, required: boolean) => {
      const d = f.get(key);
      if (!isDataset(d)) {
        if (required)
          throw new InputError(
            `${file}: missing key "${key}" (a D4RL file has observations, actions, rewards, terminals and usually timeouts)`,
          );
        return undefined;
      }
      return d;
    };
    const obs = get('observations', true) as H5Dataset;
    const act = get('actions', true) as H5Dataset;
    const rew = get('rewards', true) as H5Dataset;
    const term = get('terminals', true) as H5Dataset;
    const tout = get('timeouts', false);
    const next = get('next_observations', false);
    const N = obs.shape?.[0] ?? 0;
    if (N === 0) throw new InputError(`${file}: empty dataset: key "observations" has 0 rows`);
    const dimOf = (d: H5Dataset) => (d.shape ?? []).slice(1).reduce((a, b) => a * b, 1);
    const obsDim = dimOf(obs);
    const actDim = dimOf(act);
    const checkRows = (key: string, d: H5Dataset, width?: number) => {
      const rows = d.shape?.[0];
      if (rows !== N)
        throw new InputError(
          `${file}: key "${key}": expected ${N} rows (as "observations"); got ${rows} (mismatched lengths)`,
        );
      if (width !== undefined && dimOf(d) !== width)
        throw new InputError(
          `${file}: key "${key}": expected ${width} values per row; got ${dimOf(d)} (shape ${JSON.stringify(d.shape)})`,
        );
    };
    // HDF5 type classes (H5T_class_t): 0 integer, 1 float, 8 enum (h5py's bool); a string or
    // compound column would read as NaN and train on garbage (issue 16).
    const checkNumeric = (key: string, d: H5Dataset, classes: number[]) => {
      if (!classes.includes(d.metadata.type))
        throw new InputError(
          `${file}: key "${key}": expected ${classes.includes(8) ? 'booleans or numbers' : 'numbers'}; got HDF5 type class ${d.metadata.type} (${H5_CLASS_NAMES[d.metadata.type] ?? 'unknown'})`,
        );
    };
    checkNumeric('observations', obs, [0, 1]);
    checkNumeric('actions', act, [0, 1]);
    checkNumeric('rewards', rew, [0, 1]);
    checkNumeric('terminals', term, [0, 1, 8]);
    if (tout) checkNumeric('timeouts', tout, [0, 1, 8]);
    if (next) checkNumeric('next_observations', next, [0, 1]);
    checkRows('actions', act);
    checkRows('rewards', rew, 1);
    checkRows('terminals', term, 1);
    if (tout) checkRows('timeouts', tout, 1);
    if (next) checkRows('next_observations', next, obsDim);
    const infos: [string, H5Dataset, number][] = [];
    const infoGroup = f.get('infos') as H5Group | undefined;
    if (infoGroup && typeof infoGroup.keys === 'function' && !isDataset(infoGroup)) {
      for (const k of infoGroup.keys()) {
        const d = infoGroup.get(k);
        if (!isDataset(d) || d.shape?.[0] !== N || d.metadata.type > 1) continue; // numeric per-step infos only
        infos.push([k, d, dimOf(d)]);
      }
    }
    const maxSteps = options.maxEpisodeSteps ?? 1000;
    const base = basename(file).replace(/\.(hdf5|h5)$/i, '');
    const description: DatasetDescription = {
      datasetId: options.datasetId ?? `d4rl/${base.replace(/[^-\w]/g, '_').replace(/-v\d+$/, '')}-v0`,
      observationSpace: boxSpace(obsDim),
      actionSpace: boxSpace(actDim, 'float32', -1, 1),
      envId: options.envId,
      maxEpisodeSteps: maxSteps,
      source: `d4rl:${basename(file)}`,
      refMinScore: options.refMinScore,
      refMaxScore: options.refMaxScore,
      extra: {
        ring_d4rl_episode_ends: tout ? 'terminals|timeouts' : `terminals|${maxSteps} steps (no timeouts key)`,
        ring_final_observation: next ? 'next_observations' : 'repeated_last',
      },
    };
    const writer = createWriter(options.out, description, { layout: options.layout, inputs: [file] });
    try {
      const chunk = options.chunkRows ?? 65536;
      const eObs = new Grow();
      const eAct = new Grow();
      const eRew: number[] = [];
      const eTerm: number[] = [];
      const eTrunc: number[] = [];
      const eInfos = infos.map(() => new Grow());
      let lastRow: { obs: Float64Array; next?: Float64Array; infos: Float64Array[] } | undefined;
      const emit = () => {
        if (eRew.length === 0) return;
        const T = eRew.length;
        const o = eObs.take();
        const observations = new Float32Array((T + 1) * obsDim);
        observations.set(o);
        observations.set(lastRow?.next ?? lastRow?.obs ?? o.subarray(o.length - obsDim), T * obsDim);
        const infoArrays: Record<string, Float32Array> = {};
        infos.forEach(([k, , d], j) => {
          const v = new Float32Array((T + 1) * d);
          v.set(eInfos[j].take());
          v.set(v.subarray((T - 1) * d, T * d), T * d); // final row repeats the last step's info
          infoArrays[k] = v;
        });
        writer.addEpisode({
          observations,
          actions: eAct.take(),
          rewards: eRew.splice(0),
          terminations: eTerm.splice(0),
          truncations: eTrunc.splice(0),
          infos: infos.length ? infoArrays : undefined,
        });
      };
      for (let start = 0; start < N; start += chunk) {
        // Let the event loop run between chunks: a Ctrl-C or SIGTERM handler (exp data import)
        // runs now, not after the whole import (issue 16).
        await yieldToEventLoop();
        const end = Math.min(N, start + chunk);
        const o = readRows(file, 'observations', obs, start, end);
        const a = readRows(file, 'actions', act, start, end);
        const r = readRows(file, 'rewards', rew, start, end);
        const te = readRows(file, 'terminals', term, start, end);
        const to = tout ? readRows(file, 'timeouts', tout, start, end) : undefined;
        const nx = next ? readRows(file, 'next_observations', next, start, end) : undefined;
        const inf = infos.map(([k, d]) => readRows(file, `infos/${k}`, d, start, end));
        for (let i = 0; i < end - start; i++) {
          const row = start + i;
          const reward = Number(r[i]);
          if (!Number.isFinite(reward))
            throw new InputError(
              `${file}: key "rewards": expected finite values; got ${reward} at row ${row}`,
            );
          for (let d = 0; d < obsDim; d++) {
            const x = Number(o[i * obsDim + d]);
            if (!Number.isFinite(x))
              throw new InputError(
                `${file}: key "observations": expected finite values; got ${x} at row ${row}`,
              );
          }
          eObs.push(o, i * obsDim, obsDim);
          eAct.push(a, i * actDim, actDim);
          eRew.push(reward);
          infos.forEach(([, , d], j) => {
            eInfos[j].push(inf[j], i * d, d);
          });
          const terminal = Number(te[i]) !== 0;
          const timeout = to ? Number(to[i]) !== 0 : eRew.length >= maxSteps;
          eTerm.push(terminal ? 1 : 0);
          eTrunc.push(timeout ? 1 : 0);
          if (terminal || timeout) {
            lastRow = {
              obs: Float64Array.from({ length: obsDim }, (_, d) => Number(o[i * obsDim + d])),
              next: nx
                ? Float64Array.from({ length: obsDim }, (_, d) => Number(nx[i * obsDim + d]))
                : undefined,
              infos: [],
            };
            emit();
          }
        }
        options.onProgress?.(end, N);
      }
      if (eRew.length > 0) {
        // Steps after the last episode end: keep them as an episode cut by the end of the data.
        eTrunc[eTrunc.length - 1] = 1;
        lastRow = undefined;
        const o = eObs.data.subarray(eObs.length - obsDim, eObs.length);
        lastRow = { obs: Float64Array.from(o), infos: [] };
        if (next) {
          const nx = readRows(file, 'next_observations', next, N - 1, N);
          lastRow.next = Float64Array.from({ length: obsDim }, (_, d) => Number(nx[d]));
        }
        emit();
      }
      return writer.close();
    } catch (err) {
      writer.abort();
      throw err;
    }
  } finally {
    f.close();
  }
}

/** Root of local Minari datasets: `$MINARI_DATASETS_PATH` or `~/.minari/datasets`. */
export function minariRoot(): string {
  return process.env.MINARI_DATASETS_PATH ?? join(homedir(), '.minari', 'datasets');
}

export interface MinariImportOptions {
  out: string;
  layout?: Layout;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Imports a local Minari dataset (an id under the Minari root, or a directory path), in either
 * of Minari's storages.
 */
export async function importMinari(idOrPath: string, options: MinariImportOptions): Promise<WriteResult> {
  const candidates = [idOrPath, join(minariRoot(), idOrPath)];
  const dir = candidates.find((p) => existsSync(p) && statSync(p).isDirectory() && minariDataDir(p));
  if (!dir)
    throw new InputError(
      `${idOrPath}: no Minari dataset here or at ${join(minariRoot(), idOrPath)} (expected <dir>/data/metadata.json; set MINARI_DATASETS_PATH)`,
    );
  const dataDir = minariDataDir(dir) as string;
  const mdPath = join(dataDir, 'metadata.json');
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(mdPath, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new InputError(`${mdPath}: invalid JSON (${(err as Error).message})`);
  }
  const info = readInfo(raw, mdPath);
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (
      [
        'total_episodes',
        'total_steps',
        'data_format',
        'dataset_size',
        'minari_version',
        'jpeg_encoding',
      ].includes(k)
    )
      continue;
    if (k.startsWith('ring_')) continue;
    extra[k] = v;
  }
  const description: DatasetDescription = {
    datasetId: info.datasetId || 'minari/imported-v0',
    observationSpace: info.observationSpace,
    actionSpace: info.actionSpace,
    source: `minari:${idOrPath}`,
    extra: { ...extra, ring_source: `minari:${idOrPath}` },
  };
  const writer = createWriter(options.out, description, { layout: options.layout, inputs: [dir] });
  try {
    if (raw.data_format === 'hdf5') {
      await copyMinariHdf5(
        join(dataDir, 'main_data.hdf5'),
        info.totalEpisodes,
        info.obsDim,
        info.actDim,
        writer,
        options,
      );
    } else {
      const ds = openDataset(dir);
      try {
        for (let i = 0; i < ds.numEpisodes; i++) {
          if (i % 16 === 0) await yieldToEventLoop();
          writer.addEpisode(ds.episode(i));
          options.onProgress?.(i + 1, ds.numEpisodes);
        }
      } finally {
        ds.close();
      }
    }
    return writer.close();
  } catch (err) {
    writer.abort();
    throw err;
  }
}

async function copyMinariHdf5(
  file: string,
  episodes: number,
  obsDim: number,
  actDim: number,
  writer: ReturnType<typeof createWriter>,
  options: MinariImportOptions,
): Promise<void> {
  const f = await openHdf5(file);
  try {
    for (let i = 0; i < episodes; i++) {
      if (i % 16 === 0) await yieldToEventLoop();
      const g = f.get(`episode_${i}`) as H5Group | undefined;
      if (!g || isDataset(g)) throw new InputError(`${file}: missing group "episode_${i}"`);
      const read = (key: string, width: number) => {
        const d = g.get(key);
        if (!isDataset(d))
          throw new InputError(
            `${file}: episode_${i}: missing key "${key}" (Dict/Tuple spaces are not supported)`,
          );
        const rows = d.shape?.[0] ?? 0;
        const v = rows ? readRows(file, `episode_${i}/${key}`, d, 0, rows) : [];
        if (v.length !== rows * width)
          throw new InputError(
            `${file}: episode_${i}/${key}: expected ${width} values per row; got shape ${JSON.stringify(d.shape)}`,
          );
        return Float64Array.from(v as ArrayLike<number>, Number);
      };
      const rewards = read('rewards', 1);
      const infos: Record<string, Float32Array> = {};
      const ig = g.get('infos') as H5Group | undefined;
      if (ig && !isDataset(ig)) {
        for (const k of ig.keys()) {
          const d = ig.get(k);
          if (!isDataset(d) || d.metadata.type > 1 || d.shape?.[0] !== rewards.length + 1) continue;
          const v = readRows(file, `episode_${i}/infos/${k}`, d, 0, rewards.length + 1);
          infos[k] = Float32Array.from(v as ArrayLike<number>, Number);
        }
      }
      writer.addEpisode({
        observations: read('observations', obsDim),
        actions: read('actions', actDim),
        rewards,
        terminations: read('terminations', 1),
        truncations: read('truncations', 1),
        infos: Object.keys(infos).length ? infos : undefined,
      });
      options.onProgress?.(i + 1, episodes);
    }
  } finally {
    f.close();
  }
}
