/** Summaries, full validation and layout conversion of trajectory datasets (`exp data ...`). */
import { createHash } from 'node:crypto';
import { basename, isAbsolute, relative, resolve, sep } from 'node:path';
import { InputError } from '../common/index.js';
import { hashEpisode } from './episode.js';
import { minariRoot } from './importers.js';
import {
  checkDatasetId,
  type DatasetDescription,
  envSpecJson,
  gymnasiumEntryPoint,
  parsePythonJson,
} from './metadata.js';
import { openDataset } from './reader.js';
import { createWriter, type Layout, type WriteResult } from './writer.js';

export interface DatasetSummary {
  path: string;
  layout: Layout;
  datasetId: string;
  envId?: string;
  source?: string;
  episodes: number;
  steps: number;
  obsDim: number;
  actDim: number;
  episodeLength: { mean: number; min: number; max: number };
  return: { mean: number; min: number; max: number };
  /** The dataset's own reference returns (random, expert); rl/score.ts normalises by them. */
  refMinScore?: number;
  refMaxScore?: number;
  digest?: string;
}

function stats(a: ArrayLike<number>) {
  let s = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < a.length; i++) {
    s += a[i];
    min = Math.min(min, a[i]);
    max = Math.max(max, a[i]);
  }
  return { mean: s / Math.max(1, a.length), min, max };
}

export function inspectDataset(path: string): DatasetSummary {
  const ds = openDataset(path);
  try {
    const info = ds.info;
    const ret = stats(ds.returns());
    return {
      path,
      layout: ds.layout,
      datasetId: info.datasetId,
      envId: info.envId,
      source: info.source,
      episodes: ds.numEpisodes,
      steps: ds.totalSteps,
      obsDim: ds.obsDim,
      actDim: ds.actDim,
      episodeLength: stats(ds.lengths),
      return: ret,
      refMinScore: info.refMinScore,
      refMaxScore: info.refMaxScore,
      digest: info.digest,
    };
  } finally {
    ds.close();
  }
}

/**
 * Reads every episode and checks values (finite rewards and observations, 0/1 flags, lengths)
 * and, when the dataset records one, that the content digest matches.
 */
export function validateDataset(path: string): {
  path: string;
  episodes: number;
  steps: number;
  contentSha256: string;
  digestChecked: boolean;
} {
  // verify: never: the checks below read everything once (and say which value is bad)
  const ds = openDataset(path, { verify: 'never' });
  try {
    const hash = createHash('sha256');
    let steps = 0;
    for (let i = 0; i < ds.numEpisodes; i++) {
      const ep = ds.episode(i);
      for (let t = 0; t < ep.length; t++) {
        if (!Number.isFinite(ep.rewards[t]))
          throw new InputError(
            `${path}: episode ${i}: key "rewards": expected finite values; got ${ep.rewards[t]} at step ${t}`,
          );
      }
      for (let k = 0; k < ep.observations.length; k++) {
        if (!Number.isFinite(ep.observations[k]))
          throw new InputError(
            `${path}: episode ${i}: key "observations": expected finite values; got ${ep.observations[k]} at row ${Math.floor(k / ds.obsDim)}`,
          );
      }
      hashEpisode(hash, ep, ds.obsDim, ds.actDim);
      steps += ep.length;
    }
    const sha = hash.digest('hex');
    const stored = ds.info.contentSha256;
    if (stored && stored !== sha)
      throw new InputError(
        `${path}: content digest mismatch: metadata says ${stored.slice(0, 8)}, the data hashes to ${sha.slice(0, 8)} (modified or corrupt)`,
      );
    return { path, episodes: ds.numEpisodes, steps, contentSha256: sha, digestChecked: stored !== undefined };
  } finally {
    ds.close();
  }
}

/**
 * The dataset id a Minari-layout folder must carry. Minari lists a dataset under its root only
 * when the id is the folder's path below the root (`list_local_datasets` calls any other
 * "misconfigured" and hides it), so under the root the id is that path; elsewhere the folder's
 * name when it is a valid id (`name-vN`), else `fallback` (issue 15: convert kept the source's id).
 */
export function minariDatasetIdFor(out: string, fallback: string): string {
  const root = resolve(minariRoot());
  const rel = relative(root, resolve(out));
  if (rel && !rel.startsWith('..') && !isAbsolute(rel)) {
    const id = rel.split(sep).join('/');
    checkDatasetId(
      id,
      `--out ${out} (a folder under the Minari root ${root}, whose path below it is the dataset id)`,
    );
    return id;
  }
  const name = basename(resolve(out));
  return /^[-_\w]+?-v\d+$/.test(name) ? name : fallback;
}

/**
 * A stored env_spec with Gymnasium's entry point filled in where it was written as null (files
 * from before issue 15) and the id is one Gymnasium registers; otherwise unchanged.
 */
function repairedEnvSpec(spec: unknown): unknown {
  if (typeof spec !== 'string') return spec;
  try {
    const o = parsePythonJson(spec) as {
      id?: string;
      entry_point?: unknown;
      max_episode_steps?: number | null;
      kwargs?: Record<string, unknown>;
    };
    if (o.entry_point !== null || !o.id || !gymnasiumEntryPoint(o.id)) return spec;
    return envSpecJson(o.id, o.max_episode_steps ?? undefined, o.kwargs ?? {});
  } catch {
    return spec;
  }
}

export interface ConvertOptions {
  /** The output's dataset id; default: kept for the file layout, minariDatasetIdFor(out) for Minari's. */
  datasetId?: string;
  onProgress?: (done: number, total: number) => void;
}

/** Copies a dataset into the other layout (or the same one), keeping its metadata. */
export function convertDataset(
  input: string,
  out: string,
  layout: Layout,
  options: ConvertOptions = {},
): WriteResult {
  const { datasetId, onProgress } = options;
  if (datasetId !== undefined) checkDatasetId(datasetId, '--dataset-id');
  const ds = openDataset(input);
  try {
    const extra: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(ds.info.raw)) {
      if (
        ['total_episodes', 'total_steps', 'data_format', 'dataset_size', 'dataset_id'].includes(k) ||
        k.startsWith('ring_digest')
      )
        continue;
      if (['ring_content_sha256', 'ring_obs_mean', 'ring_obs_std'].includes(k)) continue;
      extra[k] = k === 'env_spec' ? repairedEnvSpec(v) : v;
    }
    const kept = ds.info.datasetId || 'converted/dataset-v0';
    const description: DatasetDescription = {
      datasetId: datasetId ?? (layout === 'minari' ? minariDatasetIdFor(out, kept) : kept),
      observationSpace: ds.info.observationSpace,
      actionSpace: ds.info.actionSpace,
      extra,
    };
    const w = createWriter(out, description, { layout });
    try {
      for (let i = 0; i < ds.numEpisodes; i++) {
        w.addEpisode(ds.episode(i));
        onProgress?.(i + 1, ds.numEpisodes);
      }
      return w.close();
    } catch (err) {
      w.abort();
      throw err;
    }
  } finally {
    ds.close();
  }
}
