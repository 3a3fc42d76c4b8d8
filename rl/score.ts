/**
 * The D4RL normalised score, written once (issue 13): 100·(R − random)/(expert − random), where
 * `random` and `expert` are the returns of a random and an expert policy on the task (Fu et al.,
 * D4RL, 2020 §5). The references come from the dataset when it carries them (Minari's
 * `ref_min_score`/`ref_max_score`, which our writer also records), else from D4RL's table below.
 * Where neither knows the task there is no normalised score: callers log none rather than a
 * made-up one.
 */
import { InputError } from '../common/index.js';

/** Returns of a random (`min`) and an expert (`max`) policy; where they came from. */
export interface ReferenceScores {
  min: number;
  max: number;
  /** `dataset`: the dataset's own metadata; `d4rl`: the table in this file. */
  source: 'dataset' | 'd4rl';
}

/**
 * D4RL's reference returns (random, expert) (PAPER.md §2), keyed by the Gymnasium env name
 * without its version (`Ant` serves `Ant-v2` … `Ant-v5`): D4RL measured them on the v2 envs, and
 * we score every version of the same task against them, as D4RL-based papers do.
 */
const D4RL_REFERENCE_SCORES: Readonly<Record<string, { min: number; max: number }>> = {
  Ant: { min: -325.6, max: 3879.7 },
  HalfCheetah: { min: -280.18, max: 12135.0 },
  Hopper: { min: -20.27, max: 3234.3 },
  Walker2d: { min: 1.63, max: 4592.3 },
};

/** The table's key for an env id: `Ant-v5` → `Ant`; matched case-insensitively. */
function tableKey(envId: string): string | undefined {
  const name = envId.replace(/-v\d+$/, '').toLowerCase();
  return Object.keys(D4RL_REFERENCE_SCORES).find((k) => k.toLowerCase() === name);
}

/** D4RL's table entry for an env id (`Ant-v5`, `Walker2d-v2`, ...), or undefined. */
export function d4rlReferenceScores(envId: string): ReferenceScores | undefined {
  const key = tableKey(envId);
  return key === undefined ? undefined : { ...D4RL_REFERENCE_SCORES[key], source: 'd4rl' };
}

export interface ReferenceScoresQuery {
  /** The dataset's metadata (`TrajectoryDataset.info`): its refs win when both are recorded. */
  info?: { refMinScore?: number; refMaxScore?: number; envId?: string };
  /** The env scored on; default the dataset's `envId`. */
  envId?: string;
}

/**
 * The references to normalise by: the dataset's own pair when it records both, else D4RL's table
 * for the env, else undefined (no normalised score). A dataset with only one of the two falls
 * back to the table: half a pair cannot normalise.
 */
export function referenceScores(q: ReferenceScoresQuery): ReferenceScores | undefined {
  const { refMinScore, refMaxScore } = q.info ?? {};
  if (refMinScore !== undefined && refMaxScore !== undefined) {
    checkReferences('referenceScores', refMinScore, refMaxScore, 'the dataset metadata');
    return { min: refMinScore, max: refMaxScore, source: 'dataset' };
  }
  const envId = q.envId ?? q.info?.envId;
  return envId === undefined ? undefined : d4rlReferenceScores(envId);
}

function checkReferences(who: string, min: number, max: number, from: string): void {
  if (!Number.isFinite(min) || !Number.isFinite(max) || !(max > min))
    throw new InputError(
      `${who}: reference scores from ${from} must be finite with max > min; got min ${min}, max ${max}`,
    );
}

/** 100·(R − min)/(max − min): 0 is the random policy's return, 100 the expert's. */
export function normalizedScore(returnValue: number, refs: Pick<ReferenceScores, 'min' | 'max'>): number {
  checkReferences('normalizedScore', refs.min, refs.max, 'the caller');
  return (100 * (returnValue - refs.min)) / (refs.max - refs.min);
}
