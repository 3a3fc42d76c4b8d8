/**
 * The training state a checkpoint holds, as named tensors: a replica's weights and AdamW's
 * moments. Names are `weights.<i>`, `optimizer.m.<i>`, `optimizer.v.<i>` (i in the model's
 * variable order); AdamW's step count travels in the checkpoint's JSON state beside them.
 * Checkpoints written before this codec named them `w<i>`, `m<i>`, `v<i>`: those still load, so a
 * run started by an older version resumes.
 */
import type { OptimizerState } from './optim.js';

export interface TrainingState {
  /** Per variable, flat, in the model's variable order. */
  weights: Float32Array[];
  optimizer: OptimizerState;
}

/** A named tensor as checkpoints store it: (shape) and its values, row-major. */
export interface NamedArray {
  shape: number[];
  data: Float32Array;
}

const NAMES = { weights: 'weights.', m: 'optimizer.m.', v: 'optimizer.v.' } as const;
const LEGACY = { weights: 'w', m: 'm', v: 'v' } as const;

export function encodeTrainingState(s: TrainingState): Record<string, NamedArray> {
  const out: Record<string, NamedArray> = {};
  const put = (prefix: string, list: Float32Array[]) => {
    list.forEach((data, i) => {
      out[`${prefix}${i}`] = { shape: [data.length], data };
    });
  };
  put(NAMES.weights, s.weights);
  put(NAMES.m, s.optimizer.m);
  put(NAMES.v, s.optimizer.v);
  return out;
}

/**
 * The state back from a checkpoint's tensors; `optimizerStep` is AdamW's step from its JSON.
 * Throws, naming what is missing, when the weights and moments do not line up.
 */
export function decodeTrainingState(
  tensors: Record<string, { data: Float32Array | Int32Array }>,
  optimizerStep: number,
): TrainingState {
  const modern = Object.keys(tensors).some((k) => k.startsWith(NAMES.weights));
  const names = modern ? NAMES : LEGACY;
  const take = (prefix: string): Float32Array[] => {
    const found = Object.keys(tensors)
      .filter((k) => k.startsWith(prefix) && /^\d+$/.test(k.slice(prefix.length)))
      .map((k) => Number(k.slice(prefix.length)))
      .sort((a, b) => a - b);
    found.forEach((index, i) => {
      if (index !== i)
        throw new Error(`checkpoint: tensor '${prefix}${i}' is missing (found '${prefix}${index}')`);
    });
    return found.map((i) => {
      const data = tensors[`${prefix}${i}`].data;
      if (!(data instanceof Float32Array))
        throw new Error(`checkpoint: tensor '${prefix}${i}' is not float32`);
      return data;
    });
  };
  const weights = take(names.weights);
  const m = take(names.m);
  const v = take(names.v);
  if (weights.length === 0) throw new Error(`checkpoint: no weights (tensors '${names.weights}<i>')`);
  if (m.length !== weights.length || v.length !== weights.length)
    throw new Error(
      `checkpoint: ${weights.length} weights but ${m.length} first and ${v.length} second moments`,
    );
  weights.forEach((w, i) => {
    if (m[i].length !== w.length || v[i].length !== w.length)
      throw new Error(
        `checkpoint: moments of weight ${i} have ${m[i].length}/${v[i].length} values, weight ${w.length}`,
      );
  });
  return { weights, optimizer: { step: optimizerStep, m, v } };
}
