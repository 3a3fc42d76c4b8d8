/** Shared helpers of the dataset tests: fresh random episodes and temp directories. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RecordBatch, Schema, Table, tableFromIPC, tableToIPC } from 'apache-arrow';
import { Rng } from '../../common/index.js';
import { boxSpace, type DatasetDescription, type EpisodeInput } from '../../datasets/index.js';

export function tempDir(prefix = 'ring-ds-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A seed that differs every run (printed by the tests on failure through their names). */
export function freshSeed(): number {
  return (Date.now() ^ (process.pid << 8)) >>> 0;
}

export interface RandomEpisodes {
  episodes: (EpisodeInput & { observations: Float32Array; actions: Float32Array; rewards: Float64Array })[];
  obsDim: number;
  actDim: number;
}

export function randomEpisodes(
  seed: number,
  count: number,
  opts: { obsDim?: number; actDim?: number; maxLen?: number; infos?: boolean } = {},
): RandomEpisodes {
  const rng = new Rng(seed);
  const obsDim = opts.obsDim ?? 1 + rng.int(6);
  const actDim = opts.actDim ?? 1 + rng.int(3);
  const episodes: RandomEpisodes['episodes'] = [];
  for (let e = 0; e < count; e++) {
    const T = 1 + rng.int(opts.maxLen ?? 40);
    const terminated = rng.next() < 0.5;
    episodes.push({
      observations: rng.normalArray((T + 1) * obsDim),
      actions: rng.normalArray(T * actDim),
      rewards: Float64Array.from({ length: T }, () => rng.normal() * 3),
      terminations: Array.from({ length: T }, (_, t) => terminated && t === T - 1),
      truncations: Array.from({ length: T }, (_, t) => !terminated && t === T - 1),
      infos: opts.infos ? { qpos: rng.normalArray((T + 1) * 2), speed: rng.normalArray(T + 1) } : undefined,
      seed: e * 7,
    });
  }
  return { episodes, obsDim, actDim };
}

export function description(obsDim: number, actDim: number, id = 'test/random-v0'): DatasetDescription {
  return {
    datasetId: id,
    observationSpace: boxSpace(obsDim),
    actionSpace: boxSpace(actDim, 'float32', -1, 1),
    envId: 'Test-v0',
    algorithmName: 'random',
    refMinScore: -10,
    refMaxScore: 10,
  };
}

/**
 * Runs one of this folder's Python scripts (test/datasets/py) with the test venv's python;
 * returns stdout, throws with stderr on failure.
 */
export function runPyScript(script: string, args: string[]): string {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const py = join(process.env.RING_VENV ?? join(root, '.venv'), 'bin', 'python');
  const res = spawnSync(py, [join(root, 'test', 'datasets', 'py', script), ...args], {
    encoding: 'utf8',
    maxBuffer: 256 * 2 ** 20,
    timeout: 300_000,
    env: { ...process.env, PYTHONWARNINGS: 'ignore' },
  });
  if (res.status !== 0)
    throw new Error(`${script} exited with ${res.status ?? res.signal}: ${res.stderr ?? res.error}`);
  return res.stdout;
}

/** Rewrites an Arrow file with one schema metadata key replaced, data untouched (a hand-edited file). */
export function withSchemaMetadata(path: string, key: string, value: string): void {
  const t = tableFromIPC(readFileSync(path));
  const md = new Map(t.schema.metadata);
  md.set(key, value);
  const schema = new Schema(t.schema.fields, md);
  writeFileSync(
    path,
    tableToIPC(
      new Table(
        schema,
        t.batches.map((b) => new RecordBatch(schema, b.data)),
      ),
      'file',
    ),
  );
}
