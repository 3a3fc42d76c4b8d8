import type * as tf from '@tensorflow/tfjs';
import { InputError } from '../../common/index.js';
import { dims } from '../ops.js';
import { type AttentionOptions, DEFAULT_BLOCK_SIZE } from './types.js';

/** Named dimensions of a checked attention call. */
export interface AttentionShape {
  B: number;
  H: number;
  Hk: number;
  Tq: number;
  Tk: number;
  D: number;
  scale: number;
  blockSize: number;
  causal: boolean;
}

/**
 * Checks q (B, H, Tq, D), k and v (B, Hk, Tk, D) and the options at the public boundary (STYLE
 * §4), naming the function, what was expected and what came.
 */
export function checkAttentionInputs(
  fn: string,
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: AttentionOptions,
): AttentionShape {
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const) {
    if (t.rank !== 4) throw new InputError(`${fn}: ${name} must be 4-D (B, H, T, D); got shape [${t.shape}]`);
    if (t.dtype !== 'float32') throw new InputError(`${fn}: ${name} must be float32; got ${t.dtype}`);
  }
  const [B, H, Tq, D] = dims(q);
  const [Bk, Hk, Tk, Dk] = dims(k);
  if (dims(v).join() !== dims(k).join())
    throw new InputError(`${fn}: k and v must have the same shape; got k [${k.shape}] and v [${v.shape}]`);
  if (Bk !== B) throw new InputError(`${fn}: batch of q (${B}) and k/v (${Bk}) differ`);
  if (Dk !== D) throw new InputError(`${fn}: head dim of q (${D}) and k/v (${Dk}) differ`);
  if (H % Hk !== 0)
    throw new InputError(
      `${fn}: query heads (${H}) must be a multiple of key/value heads (${Hk}) for grouped-query attention`,
    );
  if (Tq > Tk)
    throw new InputError(
      `${fn}: more queries (${Tq}) than keys (${Tk}); queries are the last Tq positions of the keys`,
    );
  if (Tq === 0 || D === 0) throw new InputError(`${fn}: empty input, shape [${q.shape}]`);
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (!Number.isInteger(blockSize) || blockSize < 1)
    throw new InputError(`${fn}: blockSize must be a positive integer; got ${blockSize}`);
  const scale = options.scale ?? 1 / Math.sqrt(D);
  if (!Number.isFinite(scale)) throw new InputError(`${fn}: scale must be finite; got ${scale}`);
  if (options.segmentIds !== undefined) {
    if (Tq !== Tk)
      throw new InputError(`${fn}: segmentIds need as many queries as keys; got ${Tq} and ${Tk}`);
    if (options.segmentIds.length !== B * Tk)
      throw new InputError(
        `${fn}: segmentIds must have B·T = ${B}·${Tk} = ${B * Tk} entries (row-major (B, T)); got ${options.segmentIds.length}`,
      );
  }
  return { B, H, Hk, Tq, Tk, D, scale, blockSize, causal: options.causal ?? false };
}
