/**
 * Behaviour data (issue 6): roll a saved PPO policy out on its env and write the episodes as an
 * Arrow trajectory dataset (datasets/ writer), and `ensureAntMediumDataset`, the embedded default
 * of ant-medium: Minari's `mujoco/ant/medium-v0` or D4RL's `ant_medium-v2.hdf5` when present
 * locally, else a dataset regenerated from rl/behavior/ant-medium.json and cached.
 *
 * Determinism: sub-env i is reset once with seed + i and then autoresets from its own RNG, and
 * draws its action noise from its own Rng; episode k of the dataset is the (k div E)-th episode of
 * sub-env k mod E. So the content (and digest) depends only on the policy, seed, size and E —
 * not on how the worker threads interleave.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError, Rng } from '../common/index.js';
import {
  createWriter,
  importD4rl,
  importMinari,
  type Layout,
  minariDataDir,
  minariRoot,
  type Space,
  type TrajectoryWriter,
  type WriteResult,
} from '../datasets/index.js';
import { type Box, Discrete, make, makeVec } from './envs/index.js';
import { PpoPolicy } from './ppo-policy.js';
import { d4rlReferenceScores } from './score.js';

export interface CollectOptions {
  policy: PpoPolicy;
  /** Output path (a `.arrow` file, or a directory for the Minari layout). */
  out: string;
  /** Number of whole episodes; or `steps`, a step total where the last episode is cut (truncated). */
  episodes?: number;
  steps?: number;
  seed: number;
  /** Sample from the Gaussian (or categorical) head; default the mean action. */
  stochastic?: boolean;
  /** Parallel envs (worker threads when > 1); default 2. Part of what fixes the content. */
  numEnvs?: number;
  layout?: Layout;
  /** Default `ring/<env>-ppo-<stochastic|deterministic>-v0`. */
  datasetId?: string;
  description?: string;
  /** Called after each episode is written, with steps written so far. */
  onProgress?: (steps: number, episodes: number) => void;
  signal?: AbortSignal;
}

/** Space JSON as Minari writes it, from an rl/envs space. */
export function datasetSpace(space: Box | Discrete): Space {
  if (space instanceof Discrete) return { type: 'Discrete', dtype: 'int64', n: space.n, start: space.start };
  return {
    type: 'Box',
    dtype: space.dtype,
    shape: [...space.shape],
    low: Array.from(space.low),
    high: Array.from(space.high),
  };
}

interface OpenEpisode {
  obs: number[];
  act: number[];
  rew: number[];
  term: boolean[];
  trunc: boolean[];
}

const newEpisode = (): OpenEpisode => ({ obs: [], act: [], rew: [], term: [], trunc: [] });

/** Collects a dataset from a policy; see the module note for what fixes its content. */
export function collectDataset(o: CollectOptions): WriteResult {
  const who = 'collectDataset';
  if ((o.episodes === undefined) === (o.steps === undefined))
    throw new InputError(`${who}: give exactly one of episodes or steps`);
  const want = (o.episodes ?? o.steps) as number;
  if (!Number.isInteger(want) || want < 1)
    throw new InputError(
      `${who}: ${o.episodes !== undefined ? 'episodes' : 'steps'} must be a positive integer; got ${want}`,
    );
  if (!Number.isInteger(o.seed) || o.seed < 0)
    throw new InputError(`${who}: seed must be a non-negative integer; got ${o.seed}`);
  const E = o.numEnvs ?? 2;
  const stochastic = o.stochastic ?? false;
  const envId = o.policy.json.envId;
  const writer = openCollectWriter(who, o.policy, o, {
    datasetId:
      o.datasetId ?? `ring/${envId.toLowerCase()}-ppo-${stochastic ? 'stochastic' : 'deterministic'}-v0`,
    algorithmName: o.policy.describe(stochastic),
    description:
      o.description ??
      `${want} ${o.episodes !== undefined ? 'episodes' : 'steps'} of ${envId} from a PPO policy (${stochastic ? 'stochastic' : 'deterministic'}), seed ${o.seed}, ${E} envs (rl/collect.ts)`,
    extra: { ring_collect_seed: o.seed, ring_collect_num_envs: E, ring_collect_stochastic: stochastic },
  });
  try {
    rollInto(
      writer,
      { policy: o.policy, seed: o.seed, numEnvs: E, stochastic, episodes: o.episodes, steps: o.steps },
      o,
    );
    return writer.close();
  } catch (err) {
    writer.abort();
    throw err;
  }
}

export interface MixedCollectOptions
  extends Omit<CollectOptions, 'policy' | 'episodes' | 'steps' | 'datasetId'> {
  /** The behaviours in dataset order, each with its step share (its last episode cut there). */
  sources: { policy: PpoPolicy; steps: number; label: string }[];
  datasetId: string;
}

/**
 * Collects one dataset from several policies of one env (a mixed-quality dataset: D4RL's
 * medium-replay and medium-expert, issue 17): source j's episodes follow source j-1's, rolled out
 * with seed + 100 003·j, so the content depends only on the policies, shares, seed and E.
 */
export function collectMixedDataset(o: MixedCollectOptions): WriteResult {
  const who = 'collectMixedDataset';
  if (o.sources.length === 0) throw new InputError(`${who}: no sources`);
  if (!Number.isInteger(o.seed) || o.seed < 0)
    throw new InputError(`${who}: seed must be a non-negative integer; got ${o.seed}`);
  const first = o.sources[0].policy;
  for (const s of o.sources) {
    if (!Number.isInteger(s.steps) || s.steps < 1)
      throw new InputError(`${who}: ${s.label}: steps must be a positive integer; got ${s.steps}`);
    if (s.policy.json.envId !== first.json.envId || s.policy.obsDim !== first.obsDim)
      throw new InputError(
        `${who}: ${s.label} acts on ${s.policy.json.envId} (${s.policy.obsDim} obs values); ${o.sources[0].label} on ${first.json.envId} (${first.obsDim})`,
      );
  }
  const E = o.numEnvs ?? 2;
  const stochastic = o.stochastic ?? false;
  const total = o.sources.reduce((n, s) => n + s.steps, 0);
  const writer = openCollectWriter(who, first, o, {
    datasetId: o.datasetId,
    algorithmName: o.sources.map((s) => `${s.label}: ${s.steps} steps`).join('; '),
    description:
      o.description ??
      `${total} steps of ${first.json.envId} from ${o.sources.length} PPO policies (${stochastic ? 'stochastic' : 'deterministic'}), seed ${o.seed}, ${E} envs (rl/collect.ts)`,
    extra: {
      ring_collect_seed: o.seed,
      ring_collect_num_envs: E,
      ring_collect_stochastic: stochastic,
      ring_collect_sources: o.sources.map((s) => ({ label: s.label, steps: s.steps })),
    },
  });
  try {
    let before = 0;
    let episodesBefore = 0;
    o.sources.forEach((s, j) => {
      let last = { steps: 0, episodes: 0 };
      rollInto(
        writer,
        { policy: s.policy, seed: o.seed + 100_003 * j, numEnvs: E, stochastic, steps: s.steps },
        {
          signal: o.signal,
          onProgress: (steps, episodes) => {
            last = { steps, episodes };
            o.onProgress?.(before + steps, episodesBefore + episodes);
          },
        },
      );
      before += last.steps;
      episodesBefore += last.episodes;
    });
    return writer.close();
  } catch (err) {
    writer.abort();
    throw err;
  }
}

/** Checks the policy against its env and opens the dataset writer with the env's spaces and refs. */
function openCollectWriter(
  who: string,
  policy: PpoPolicy,
  o: { out: string; layout?: Layout },
  meta: { datasetId: string; algorithmName: string; description: string; extra: Record<string, unknown> },
): TrajectoryWriter {
  const envId = policy.json.envId;
  const probe = make(envId, policy.json.envKwargs) as {
    observationSpace: unknown;
    actionSpace: unknown;
    spec?: { maxEpisodeSteps?: number };
    close(): void;
  };
  const os = probe.observationSpace as Box;
  const as = probe.actionSpace as Box | Discrete;
  const maxEpisodeSteps = probe.spec?.maxEpisodeSteps;
  probe.close();
  if (os.size !== policy.obsDim)
    throw new InputError(
      `${who}: policy expects ${policy.obsDim} observation values; ${envId} gives ${os.size}`,
    );
  // the dataset records D4RL's refs for its env, so its own metadata scores it later
  const ref = d4rlReferenceScores(envId);
  return createWriter(
    o.out,
    {
      datasetId: meta.datasetId,
      observationSpace: datasetSpace(os),
      actionSpace: datasetSpace(as),
      envId,
      maxEpisodeSteps,
      envKwargs: policy.json.envKwargs,
      source: 'ppo',
      algorithmName: meta.algorithmName,
      refMinScore: ref?.min,
      refMaxScore: ref?.max,
      description: meta.description,
      extra: meta.extra,
    },
    { layout: o.layout ?? 'file' },
  );
}

/** One behaviour's share of a dataset: whole episodes, or a step total where the last episode is cut. */
export interface RolloutSource {
  policy: PpoPolicy;
  seed: number;
  numEnvs: number;
  stochastic: boolean;
  episodes?: number;
  steps?: number;
}

/**
 * Rolls `src.policy` out on E envs and appends its episodes to `writer` in the fixed order
 * k → env k mod E (see the module note), until the episode or step budget is met.
 */
function rollInto(
  writer: TrajectoryWriter,
  src: RolloutSource,
  o: { signal?: AbortSignal; onProgress?: (steps: number, episodes: number) => void },
): void {
  const who = 'collectDataset';
  const { policy, numEnvs: E, stochastic } = src;
  const envId = policy.json.envId;
  const D = policy.obsDim;
  const A = policy.actDim;
  const envs = makeVec(envId, E, {
    vectorizationMode: E > 1 ? 'async' : 'sync',
    kwargs: policy.json.envKwargs,
  });
  const discrete = envs.singleActionSpace instanceof Discrete;
  try {
    let [obs] = envs.reset({ seed: src.seed });
    const rngs = Array.from({ length: E }, (_, i) => new Rng((src.seed + 1_000_003 * (i + 1)) >>> 0));
    const open = Array.from({ length: E }, newEpisode);
    for (let i = 0; i < E; i++) open[i].obs.push(...obs.subarray(i * D, (i + 1) * D));
    const done: OpenEpisode[][] = Array.from({ length: E }, () => []);
    const pendingReset = new Uint8Array(E);
    let written = 0;
    let steps = 0;
    const finished = () =>
      src.episodes !== undefined ? written >= src.episodes : steps >= (src.steps as number);
    while (!finished()) {
      if (o.signal?.aborted) throw new Error(`${who}: aborted`);
      // Per-env actions from per-env RNGs (so the interleaving of envs never changes the data).
      const actions = discrete ? new Int32Array(E) : new Float32Array(E * A);
      for (let i = 0; i < E; i++) {
        if (pendingReset[i]) continue; // ignored by the NEXT_STEP reset step
        const a = policy.act(obs.subarray(i * D, (i + 1) * D), 1, stochastic, rngs[i]);
        actions.set(a, i * A);
      }
      const [next, rewards, terms, truncs] = envs.step(actions);
      for (let i = 0; i < E; i++) {
        const ep = open[i];
        if (pendingReset[i]) {
          // The reset step: its observation starts the next episode.
          pendingReset[i] = 0;
          ep.obs.push(...next.subarray(i * D, (i + 1) * D));
          continue;
        }
        ep.act.push(...actions.subarray(i * A, (i + 1) * A));
        ep.rew.push(rewards[i]);
        ep.term.push(terms[i]);
        ep.trunc.push(truncs[i]);
        ep.obs.push(...next.subarray(i * D, (i + 1) * D));
        if (terms[i] || truncs[i]) {
          done[i].push(ep);
          open[i] = newEpisode();
          pendingReset[i] = 1;
        }
      }
      obs = next;
      // Write episodes in the fixed order k → env k mod E while the next one is ready.
      while (!finished() && done[written % E].length > 0) {
        const ep = done[written % E].shift() as OpenEpisode;
        let T = ep.rew.length;
        if (src.steps !== undefined && steps + T > src.steps) {
          // Cut the last episode at the step budget: a time-limit end, as D4RL's 1M-step files.
          T = src.steps - steps;
          ep.trunc[T - 1] = true;
          ep.term[T - 1] = false;
        }
        writer.addEpisode({
          observations: ep.obs.slice(0, (T + 1) * D),
          actions: ep.act.slice(0, T * A),
          rewards: ep.rew.slice(0, T),
          terminations: ep.term.slice(0, T),
          truncations: ep.trunc.slice(0, T),
        });
        written++;
        steps += T;
        o.onProgress?.(steps, written);
      }
    }
  } finally {
    envs.close();
  }
}

// ------------------------------------------------------------------------ ant-medium default

/** The shipped medium Ant-v5 behaviour policy. */
export const ANT_MEDIUM_POLICY = fileURLToPath(new URL('../../rl/behavior/ant-medium.json', import.meta.url));

export function loadPolicy(path: string): PpoPolicy {
  if (!existsSync(path)) throw new InputError(`loadPolicy: ${path}: no such file`);
  return PpoPolicy.fromJSONText(readFileSync(path, 'utf8'), path);
}

export interface AntMediumOptions {
  /** Folder of cached datasets; default `<repo>/.cache/datasets`. */
  cacheDir?: string;
  /** Steps of the regenerated dataset; default 100 000 (100 episodes of 1000 steps at most). */
  steps?: number;
  seed?: number;
  /** Use only the regenerated dataset, even when Minari's or D4RL's is present. */
  regenerate?: boolean;
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

export interface AntMediumDataset {
  path: string;
  source: 'minari' | 'd4rl' | 'ppo';
  /** True when this call wrote the file (first use), false when it was cached. */
  created: boolean;
}

export const ANT_MEDIUM_DEFAULTS = { steps: 100_000, seed: 0 } as const;

/** The repository root: this module runs as dist/rl/collect.js. */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Where a local D4RL ant_medium-v2.hdf5 would be (D4RL_DATASET_DIR or ~/.d4rl/datasets). */
function d4rlAntMedium(): string | undefined {
  const dir = process.env.D4RL_DATASET_DIR ?? join(homedir(), '.d4rl', 'datasets');
  const f = join(dir, 'ant_medium-v2.hdf5');
  return existsSync(f) ? f : undefined;
}

/**
 * The ant-medium dataset's path: Minari's `mujoco/ant/medium-v0` (under MINARI_DATASETS_PATH or
 * ~/.minari/datasets), else D4RL's `ant_medium-v2.hdf5`, imported once into the cache; else the
 * dataset regenerated from rl/behavior/ant-medium.json (stochastic actions, `steps` steps, `seed`)
 * and cached as `ant-medium-ppo-<policy digest>-s<seed>-n<steps>.arrow`. The regeneration is
 * deterministic: the same policy file, seed and size always give the same content digest.
 */
export async function ensureAntMediumDataset(o: AntMediumOptions = {}): Promise<AntMediumDataset> {
  const cacheDir = resolve(o.cacheDir ?? join(REPO_ROOT, '.cache', 'datasets'));
  const log = o.onProgress ?? (() => {});
  if (!o.regenerate) {
    const minariDir = join(minariRoot(), 'mujoco', 'ant', 'medium-v0');
    if (existsSync(minariDir) && minariDataDir(minariDir)) {
      const out = join(cacheDir, 'ant-medium-minari.arrow');
      if (existsSync(out)) return { path: out, source: 'minari', created: false };
      log(`importing Minari mujoco/ant/medium-v0 from ${minariDir}`);
      await importMinari(minariDir, { out });
      return { path: out, source: 'minari', created: true };
    }
    const h5 = d4rlAntMedium();
    if (h5) {
      const out = join(cacheDir, 'ant-medium-d4rl.arrow');
      if (existsSync(out)) return { path: out, source: 'd4rl', created: false };
      log(`importing D4RL ${h5}`);
      // NOTE: D4RL's ant-v2 observations are 111-d (Ant-v2 with contact forces); Ant-v5 gives 105,
      // so policies trained on this file cannot be evaluated on our Ant-v5 (the lead's check).
      await importD4rl(h5, {
        out,
        datasetId: 'd4rl/ant-medium-v2',
        envId: 'Ant-v2',
        refMinScore: d4rlReferenceScores('Ant-v2')?.min,
        refMaxScore: d4rlReferenceScores('Ant-v2')?.max,
      });
      return { path: out, source: 'd4rl', created: true };
    }
  }
  const steps = o.steps ?? ANT_MEDIUM_DEFAULTS.steps;
  const seed = o.seed ?? ANT_MEDIUM_DEFAULTS.seed;
  const text = readFileSync(ANT_MEDIUM_POLICY, 'utf8');
  const policyDigest = createHash('sha256').update(text).digest('hex').slice(0, 8);
  const out = join(cacheDir, `ant-medium-ppo-${policyDigest}-s${seed}-n${steps}.arrow`);
  if (existsSync(out)) return { path: out, source: 'ppo', created: false };
  const policy = PpoPolicy.fromJSONText(text, ANT_MEDIUM_POLICY);
  log(
    `generating ${out}: ${steps} steps of Ant-v5 from rl/behavior/ant-medium.json (first use; cached after)`,
  );
  let lastLog = 0;
  // The writer renames into place on close, so a crash never leaves a half file in the cache.
  collectDataset({
    policy,
    out,
    steps,
    seed,
    stochastic: true,
    numEnvs: 2,
    datasetId: 'ring/ant-medium-ppo-v0',
    description: `Ant-v5 medium behaviour data regenerated from rl/behavior/ant-medium.json (${policy.describe(true)}), ${steps} steps, seed ${seed}`,
    signal: o.signal,
    onProgress: (s) => {
      if (s - lastLog >= 10_000 || s === steps) {
        lastLog = s;
        log(`ant-medium: ${s}/${steps} steps`);
      }
    },
  });
  return { path: out, source: 'ppo', created: true };
}
