/**
 * An offline run's checkpoint as the checkpoint store holds it: the training state as named
 * tensors (train/'s codec) and a small JSON state — AdamW's step, the evaluations so far, the
 * batch generator's state. Checkpoints written before rl/offline (tensors `w<i>`, no BC generator
 * state) still load, so those runs resume.
 */
import { decodeTrainingState, encodeTrainingState, type NamedArray } from '../../train/index.js';
import type { EvalPoint, OfflineCheckpoint } from './common.js';

/** The JSON part (plain numbers and lists, so any JSON store takes it). */
export type OfflineCheckpointState = { [key: string]: number | { [key: string]: number }[] };

export function encodeOfflineCheckpoint(k: OfflineCheckpoint): {
  step: number;
  state: OfflineCheckpointState;
  tensors: Record<string, NamedArray>;
} {
  const state: OfflineCheckpointState = {
    optStep: k.training.optimizer.step,
    evals: k.evals.map((e) => ({
      step: e.step,
      score: e.score,
      ...(e.best !== undefined ? { best: e.best } : {}),
    })),
  };
  if (k.samplerRng !== undefined) state.samplerRng = k.samplerRng;
  return { step: k.step, state, tensors: encodeTrainingState(k.training) };
}

/**
 * The checkpoint back; `legacyRng` is the generator state to use when the JSON has none (BC drew
 * its batches from the run's main generator before it had its own).
 */
export function decodeOfflineCheckpoint(
  step: number,
  state: unknown,
  tensors: Record<string, { data: Float32Array | Int32Array }>,
  legacyRng?: number,
): OfflineCheckpoint {
  const s = (state ?? {}) as { optStep?: unknown; evals?: EvalPoint[]; samplerRng?: unknown };
  if (typeof s.optStep !== 'number')
    throw new Error(`checkpoint of step ${step}: state.optStep is missing (not an offline RL checkpoint?)`);
  return {
    step,
    training: decodeTrainingState(tensors, s.optStep),
    samplerRng: typeof s.samplerRng === 'number' ? s.samplerRng : legacyRng,
    evals: Array.isArray(s.evals) ? s.evals : [],
  };
}
