/**
 * Mixed-quality datasets (issue 17), as D4RL builds them, from the project's own PPO runs:
 *
 * - `<env>-medium-replay`: what a PPO run collected on its way to the medium policy, replayed as
 *   equal step shares of every snapshot up to and including the medium one (D4RL's is the replay
 *   buffer of that run; snapshots every 10 updates, 20 480 env steps apart, stand in for it);
 * - `<env>-medium-expert`: half the steps from the medium policy, half from the expert one.
 *
 * The policies live in `rl/behavior/levels/<env>/` beside the `levels.json` that
 * rl/behavior/pick-levels.ts wrote when it chose them (every evaluation, the medium and expert
 * picks). Generated datasets are cached like ant-medium's: deterministic given the policy files,
 * steps and seed, named by a digest of all three, written atomically.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../common/index.js';
import { collectMixedDataset } from './collect.js';
import { PpoPolicy } from './ppo-policy.js';

/** levels.json as rl/behavior/pick-levels.ts writes it (the parts read here). */
interface LevelsManifest {
  envId: string;
  expertReference: number;
  medium: { update: number; mean: number; std: number; envSteps: number };
  expert: { update: number; mean: number; std: number; envSteps: number };
}

export type LevelKind = 'medium-replay' | 'medium-expert';
const KINDS: LevelKind[] = ['medium-replay', 'medium-expert'];

/** A named mixed dataset: where its policies are and what share each contributes. */
export interface LevelDataset {
  /** `hopper-medium-replay`: the name a config's `dataset:` takes. */
  name: string;
  kind: LevelKind;
  envId: string;
  datasetId: string;
  /** Policy files in dataset order; shares sum to 1. */
  sources: { file: string; label: string; share: number }[];
  description: string;
}

const LEVELS_ROOT = fileURLToPath(new URL('../../rl/behavior/levels/', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The env folders under rl/behavior/levels (e.g. hopper-v5) → short name (hopper). */
function levelEnvs(): { short: string; dir: string }[] {
  if (!existsSync(LEVELS_ROOT)) return [];
  return readdirSync(LEVELS_ROOT)
    .filter((d) => existsSync(join(LEVELS_ROOT, d, 'levels.json')))
    .sort()
    .map((d) => ({ short: d.replace(/-v\d+$/, ''), dir: join(LEVELS_ROOT, d) }));
}

/** The `snap-<update>.json` files a train-levels run wrote in `dir`, by update. */
export function snapshotFiles(dir: string): { update: number; file: string }[] {
  return readdirSync(dir)
    .map((f) => ({ m: /^snap-(\d+)\.json$/.exec(f), f }))
    .filter((x) => x.m)
    .map((x) => ({ update: Number(x.m?.[1]), file: join(dir, x.f) }))
    .sort((a, b) => a.update - b.update);
}

function describeLevel(short: string, dir: string, kind: LevelKind): LevelDataset {
  const m = JSON.parse(readFileSync(join(dir, 'levels.json'), 'utf8')) as LevelsManifest;
  const snaps = snapshotFiles(dir);
  const at = (update: number) => {
    const s = snaps.find((x) => x.update === update);
    if (!s)
      throw new InputError(`${join(dir, 'levels.json')}: names snap-${update}.json, which is not in ${dir}`);
    return s;
  };
  const pct = (x: number) => ((100 * x) / m.expertReference).toFixed(0);
  const name = `${short}-${kind}`;
  if (kind === 'medium-expert') {
    const med = at(m.medium.update);
    const exp = at(m.expert.update);
    return {
      name,
      kind,
      envId: m.envId,
      datasetId: `ring/${name}-v0`,
      sources: [
        { file: med.file, label: `medium snap-${med.update}`, share: 0.5 },
        { file: exp.file, label: `expert snap-${exp.update}`, share: 0.5 },
      ],
      description: `${m.envId}: half medium (PPO update ${m.medium.update}, return ${m.medium.mean.toFixed(0)}, ${pct(m.medium.mean)}% of D4RL's expert reference), half expert (update ${m.expert.update}, return ${m.expert.mean.toFixed(0)}, ${pct(m.expert.mean)}%)`,
    };
  }
  const upTo = snaps.filter((s) => s.update <= m.medium.update);
  at(m.medium.update);
  return {
    name,
    kind,
    envId: m.envId,
    datasetId: `ring/${name}-v0`,
    sources: upTo.map((s) => ({ file: s.file, label: `snap-${s.update}`, share: 1 / upTo.length })),
    description: `${m.envId}: equal shares of the ${upTo.length} PPO snapshots up to the medium one (updates ${upTo[0].update}–${m.medium.update}, medium return ${m.medium.mean.toFixed(0)}, ${pct(m.medium.mean)}% of D4RL's expert reference)`,
  };
}

/** Every mixed dataset the shipped levels make, by name. */
export function levelDatasets(): LevelDataset[] {
  return levelEnvs().flatMap(({ short, dir }) => KINDS.map((k) => describeLevel(short, dir, k)));
}

/** The mixed dataset called `name`, or undefined when no shipped levels make it. */
export function levelDataset(name: string): LevelDataset | undefined {
  return levelDatasets().find((d) => d.name === name);
}

/** Steps per source: floor of each share, the remainder to the last (so they sum to `steps`). */
export function shareSteps(shares: number[], steps: number): number[] {
  const out = shares.map((s) => Math.floor(s * steps));
  out[out.length - 1] += steps - out.reduce((a, b) => a + b, 0);
  return out;
}

export interface LevelDatasetOptions {
  /** Folder of cached datasets; default `<repo>/.cache/datasets`. */
  cacheDir?: string;
  steps: number;
  seed?: number;
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

/**
 * The cached file of mixed dataset `name` at `steps` steps and `seed`, generated on first use
 * (stochastic actions, 2 envs). Same policies, steps and seed → same file and content digest.
 */
export function ensureLevelDataset(name: string, o: LevelDatasetOptions): { path: string; created: boolean } {
  const d = levelDataset(name);
  if (!d)
    throw new InputError(
      `${name}: not a mixed dataset; known: ${
        levelDatasets()
          .map((x) => x.name)
          .join(', ') || 'none'
      }`,
    );
  const seed = o.seed ?? 0;
  const counts = shareSteps(
    d.sources.map((s) => s.share),
    o.steps,
  );
  if (counts.some((c) => c < 1))
    throw new InputError(`${name}: ${o.steps} steps leave a source of ${d.sources.length} without a step`);
  const texts = d.sources.map((s) => readFileSync(s.file, 'utf8'));
  const hash = createHash('sha256');
  for (const [i, t] of texts.entries()) hash.update(t).update(String(counts[i]));
  const cacheDir = resolve(o.cacheDir ?? join(REPO_ROOT, '.cache', 'datasets'));
  const out = join(cacheDir, `${name}-${hash.digest('hex').slice(0, 8)}-s${seed}-n${o.steps}.arrow`);
  if (existsSync(out)) return { path: out, created: false };
  const log = o.onProgress ?? (() => {});
  log(
    `generating ${out}: ${o.steps} steps of ${d.envId} from ${d.sources.length} policies (first use; cached after)`,
  );
  let lastLog = 0;
  collectMixedDataset({
    sources: d.sources.map((s, i) => ({
      policy: PpoPolicy.fromJSONText(texts[i], s.file),
      steps: counts[i],
      label: s.label,
    })),
    out,
    seed,
    stochastic: true,
    numEnvs: 2,
    datasetId: d.datasetId,
    description: `${d.description}; ${o.steps} steps, seed ${seed} (rl/levels.ts)`,
    signal: o.signal,
    onProgress: (steps) => {
      if (steps - lastLog >= 10_000 || steps === o.steps) {
        lastLog = steps;
        log(`${name}: ${steps}/${o.steps} steps`);
      }
    },
  });
  return { path: out, created: true };
}
