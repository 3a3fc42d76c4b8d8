/**
 * Recorded rollouts as one Arrow IPC file (issue 18): a row per instant of each kept episode
 * (the reset state, then one row per step), the scene and the episodes' summaries in the schema's
 * metadata, so a reader (the page, pyarrow, pandas) needs nothing else.
 *
 *   episode int32 · step int32 · reward float64 (0 at the reset row) · return float64 (so far)
 *   qpos FixedSizeList<float64>[nq] (a classic task's state) · MuJoCo tasks also:
 *   xpos FixedSizeList<float32>[nbody·3] · xquat FixedSizeList<float32>[nbody·4] (w, x, y, z)
 */
import { readFileSync } from 'node:fs';
import {
  type Data,
  Field,
  FixedSizeList,
  Float32,
  Float64,
  Int32,
  makeData,
  RecordBatch,
  Schema,
  Struct,
  Table,
  tableFromIPC,
  tableToIPC,
} from 'apache-arrow';
import { InputError, writeFileAtomic } from '../../common/index.js';
import type { EpisodeLabel, RecordedEpisode, Rollouts } from './recorder.js';
import type { Scene } from './scene.js';

export const ROLLOUT_FORMAT = 'ring-rollout/1';

/** An episode's summary as the schema metadata keeps it (`rollout.episodes`). */
interface EpisodeMeta {
  index: number;
  seed?: number;
  labels: EpisodeLabel[];
  return: number;
  steps: number;
}

function listData(values: Float32Array | Float64Array, width: number, rows: number): Data {
  const item = values instanceof Float64Array ? new Float64() : new Float32();
  const child = makeData({ type: item, length: rows * width, nullCount: 0, data: values });
  return makeData({
    type: new FixedSizeList(width, new Field('item', item, false)),
    length: rows,
    nullCount: 0,
    child,
  });
}
function listField(name: string, width: number, f64: boolean): Field {
  return new Field(
    name,
    new FixedSizeList(width, new Field('item', f64 ? new Float64() : new Float32(), false)),
    false,
  );
}

/** The file's bytes: one record batch, metadata in the schema. */
export function rolloutsToIPC(r: Rollouts): Uint8Array {
  const rows = r.episodes.reduce((n, e) => n + e.states.length, 0);
  const nq = r.episodes[0].states[0].qpos.length;
  const mujoco = r.scene.kind === 'mujoco';
  const nbody = r.scene.kind === 'mujoco' ? r.scene.nbody : 0;
  const episode = new Int32Array(rows);
  const step = new Int32Array(rows);
  const reward = new Float64Array(rows);
  const ret = new Float64Array(rows);
  const qpos = new Float64Array(rows * nq);
  const xpos = new Float32Array(rows * nbody * 3);
  const xquat = new Float32Array(rows * nbody * 4);
  let row = 0;
  for (const ep of r.episodes) {
    let total = 0;
    ep.states.forEach((s, t) => {
      if (s.qpos.length !== nq)
        throw new InputError(
          `rolloutsToIPC: episode ${ep.index} step ${t}: qpos has ${s.qpos.length} values; expected ${nq}`,
        );
      episode[row] = ep.index;
      step[row] = t;
      reward[row] = t > 0 ? ep.rewards[t - 1] : 0;
      total += reward[row];
      ret[row] = total;
      qpos.set(s.qpos, row * nq);
      if (mujoco) {
        if (!s.xpos || !s.xquat || s.xpos.length !== nbody * 3 || s.xquat.length !== nbody * 4)
          throw new InputError(
            `rolloutsToIPC: episode ${ep.index} step ${t}: expected xpos (${nbody}, 3) and xquat (${nbody}, 4)`,
          );
        xpos.set(s.xpos, row * nbody * 3);
        xquat.set(s.xquat, row * nbody * 4);
      }
      row++;
    });
  }
  const episodes: EpisodeMeta[] = r.episodes.map((e) => ({
    index: e.index,
    ...(e.seed !== undefined ? { seed: e.seed } : {}),
    labels: e.labels,
    return: e.return,
    steps: e.rewards.length,
  }));
  const metadata = new Map<string, string>([
    ['rollout.format', ROLLOUT_FORMAT],
    ['rollout.env_id', r.envId],
    ['rollout.dt', String(r.dt)],
    ['rollout.scene', JSON.stringify(r.scene)],
    ['rollout.episodes', JSON.stringify(episodes)],
    ['rollout.source', JSON.stringify(r.source ?? {})],
  ]);
  const fields = [
    new Field('episode', new Int32(), false),
    new Field('step', new Int32(), false),
    new Field('reward', new Float64(), false),
    new Field('return', new Float64(), false),
    listField('qpos', nq, true),
    ...(mujoco ? [listField('xpos', nbody * 3, false), listField('xquat', nbody * 4, false)] : []),
  ];
  const cols = [
    makeData({ type: new Int32(), length: rows, nullCount: 0, data: episode }),
    makeData({ type: new Int32(), length: rows, nullCount: 0, data: step }),
    makeData({ type: new Float64(), length: rows, nullCount: 0, data: reward }),
    makeData({ type: new Float64(), length: rows, nullCount: 0, data: ret }),
    listData(qpos, nq, rows),
    ...(mujoco ? [listData(xpos, nbody * 3, rows), listData(xquat, nbody * 4, rows)] : []),
  ];
  const schema = new Schema(fields, metadata);
  const batch = new RecordBatch(
    schema,
    makeData({ type: new Struct(fields), length: rows, nullCount: 0, children: cols }),
  );
  return tableToIPC(new Table(batch), 'file');
}

/** Writes `r` to `path` atomically. */
export function writeRollouts(path: string, r: Rollouts): void {
  if (!r.episodes.length) throw new InputError(`writeRollouts ${path}: no episodes to write`);
  writeFileAtomic(path, rolloutsToIPC(r));
}

function flat<T extends Float32Array | Float64Array>(table: Table, name: string, make: (n: number) => T): T {
  const col = table.getChild(name);
  if (!col) throw new InputError(`missing column '${name}'`);
  const parts = col.data.map(
    (d) =>
      d.children[0].values.subarray(
        d.offset * (col.type as FixedSizeList).listSize,
        (d.offset + d.length) * (col.type as FixedSizeList).listSize,
      ) as T,
  );
  const out = make(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Reads a rollout file; throws InputError naming `path` when it is not one. */
export function readRollouts(path: string): Rollouts {
  let table: Table;
  try {
    table = tableFromIPC(readFileSync(path));
  } catch (err) {
    throw new InputError(`${path}: not an Arrow IPC rollout file: ${(err as Error).message}`);
  }
  const meta = table.schema.metadata;
  if (meta.get('rollout.format') !== ROLLOUT_FORMAT)
    throw new InputError(
      `${path}: schema metadata rollout.format is ${JSON.stringify(meta.get('rollout.format') ?? null)}; expected "${ROLLOUT_FORMAT}"`,
    );
  try {
    const scene = JSON.parse(meta.get('rollout.scene') ?? '') as Scene;
    const metas = JSON.parse(meta.get('rollout.episodes') ?? '') as EpisodeMeta[];
    const episodeCol = table.getChild('episode')!.toArray() as Int32Array;
    const reward = table.getChild('reward')!.toArray() as Float64Array;
    const qpos = flat(table, 'qpos', (n) => new Float64Array(n));
    const nq = (table.getChild('qpos')!.type as FixedSizeList).listSize;
    const mujoco = scene.kind === 'mujoco';
    const nbody = mujoco ? scene.nbody : 0;
    const xpos = mujoco ? flat(table, 'xpos', (n) => new Float32Array(n)) : undefined;
    const xquat = mujoco ? flat(table, 'xquat', (n) => new Float32Array(n)) : undefined;
    let row = 0;
    const episodes: RecordedEpisode[] = metas.map((m) => {
      const states = [];
      const rewards: number[] = [];
      for (let t = 0; t <= m.steps; t++, row++) {
        if (episodeCol[row] !== m.index)
          throw new Error(`row ${row} belongs to episode ${episodeCol[row]}; the metadata says ${m.index}`);
        if (t > 0) rewards.push(reward[row]);
        states.push({
          qpos: qpos.slice(row * nq, (row + 1) * nq),
          ...(xpos && xquat
            ? {
                xpos: Float64Array.from(xpos.subarray(row * nbody * 3, (row + 1) * nbody * 3)),
                xquat: Float64Array.from(xquat.subarray(row * nbody * 4, (row + 1) * nbody * 4)),
              }
            : {}),
        });
      }
      return { index: m.index, seed: m.seed, labels: m.labels, return: m.return, states, rewards };
    });
    if (row !== table.numRows)
      throw new Error(`${table.numRows} rows; the episodes' metadata accounts for ${row}`);
    return {
      envId: meta.get('rollout.env_id') ?? '',
      scene,
      dt: Number(meta.get('rollout.dt')),
      episodes,
      source: JSON.parse(meta.get('rollout.source') ?? '{}') as Record<string, string>,
    };
  } catch (err) {
    if (err instanceof InputError) throw new InputError(`${path}: ${err.message}`);
    throw new InputError(`${path}: malformed rollout file: ${(err as Error).message}`);
  }
}
