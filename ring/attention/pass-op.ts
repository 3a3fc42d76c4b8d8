/**
 * An attention pass (types.ts `AttentionPass`) as a tfjs op with its gradient: what blockwise.ts
 * and ring.ts export, while the native block (ring/transformer.ts) runs their passes itself.
 */
import type * as tf from '@tensorflow/tfjs';
import { customOp } from '../ops.js';
import type { AttentionPass } from './types.js';

/** The op of `pass` on q, k, v: the pass's output; its backward from the tensors it keeps. */
export function passOp(
  pass: (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => AttentionPass,
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
): tf.Tensor4D {
  const op = customOp(([qi, ki, vi], save) => {
    const p = pass(qi, ki, vi);
    save(p.keep);
    return { value: p.out, gradFunc: (dy, saved) => p.backward(dy, saved) };
  });
  return op(q, k, v) as tf.Tensor4D;
}
