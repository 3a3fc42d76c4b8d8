/**
 * The LM head and the token cross-entropy as one op, in chunks of rows (issue 22): the logits
 * (rows, V) of one chunk exist at a time, in the forward and again (recomputed) in the backward,
 * so a training step keeps x (rows, Dm) and one log-sum-exp per row instead of the dozen
 * (rows, V) tensors that autodiff of head + logSoftmax keeps (≈1.8 MiB per token at V = 32000:
 * the vocabulary, not attention, capped the window one device could train). This is the paper's
 * blockwise treatment (§3: compute in blocks, keep only what the backward needs) applied to the
 * vocabulary projection.
 *
 * Where the native addon runs (native/fused.ts `fusedHeadLoss`, issue 14) one call computes the
 * loss and, when a gradient is being taken, its gradients in the same pass: the loss ends the
 * graph, so d loss / d logits is known up to the upstream scalar and the backward only scales.
 * That saves recomputing the logits (a third of the head's FLOPs) and holds dx and dW (the sizes
 * of x and w) in place of nothing; the tfjs chunks stay the reference and the fallback.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../common/index.js';
import { fusedHeadLoss, nativeThreads } from '../native/index.js';
import { customOp, dims, gradientBeingTaken, product, upstreamScaled } from '../ring/index.js';

/** Targets equal to this are not counted (Hugging Face's convention). */
export const IGNORE_INDEX = -100;

/**
 * Targets checked against the vocabulary V: each row's class (0 where ignored), its weight (1, or
 * 0 for −100) and the counted rows. `fn` names the caller in errors.
 */
export function countedTargets(
  targets: Int32Array,
  V: number,
  fn: string,
): { safe: Int32Array; weight: Float32Array; count: number } {
  const N = targets.length;
  const safe = new Int32Array(N);
  const weight = new Float32Array(N);
  let count = 0;
  for (let i = 0; i < N; i++) {
    if (targets[i] === IGNORE_INDEX) continue;
    if (!(targets[i] >= 0 && targets[i] < V))
      throw new InputError(`${fn}: target ${targets[i]} at ${i} is outside [0, ${V}) and is not −100`);
    safe[i] = targets[i];
    weight[i] = 1;
    count++;
  }
  return { safe, weight, count };
}

/** Floats of one chunk's logits (rows · V): 2 MiB (16 rows at V = 32000). */
const CHUNK_FLOATS = 1 << 19;
/** Floats of one chunk's logits on the native path, per thread: 16 MiB (131 rows at V = 32000). */
const NATIVE_CHUNK_FLOATS = 1 << 22;

/** How `headCrossEntropy` counts and lays out its terms. */
export interface HeadLossOptions {
  /** Divides the sum (default: the counted rows; on a ring pass the global count). */
  denominator?: number;
  /** Rows per chunk of the tfjs path (default: 2 MiB of logits). */
  chunkRows?: number;
  /**
   * One per row: scale each counted row's term instead of 1, a weighted objective such as line
   * retrieval's answer/prompt mix, whose weights already hold their normalisation (pass
   * denominator 1).
   */
  rowWeights?: Float32Array;
  /**
   * w is (V, Dm), a tied input embedding, and the logits are x · wᵀ: no transpose of the (V, Dm)
   * table is made, forward or backward, and the gradient comes back in the table's layout.
   */
  transposed?: boolean;
}

/**
 * x (..., Dm) → Σ over counted rows of −log softmax(x·w)[target] / denominator (default: the
 * counted rows). w (Dm, V) (or (V, Dm) with `transposed`); targets one per row of x, −100 =
 * ignored. Same value and gradients as `maskedCrossEntropy(linear(x, w), targets, denominator)`.
 */
export function headCrossEntropy(
  x: tf.Tensor,
  w: tf.Tensor2D,
  targets: Int32Array,
  options: HeadLossOptions = {},
): tf.Scalar {
  const { denominator, chunkRows, rowWeights, transposed = false } = options;
  const [Dm, V] = transposed ? [w.shape[1], w.shape[0]] : w.shape;
  const N = targets.length;
  if (dims(x)[x.rank - 1] !== Dm || x.size !== N * Dm)
    throw new InputError(
      `headCrossEntropy: x [${x.shape}] must hold ${N} rows (one per target) of ${Dm} features`,
    );
  const { safe, weight, count } = countedTargets(targets, V, 'headCrossEntropy');
  if (rowWeights) {
    if (rowWeights.length !== N)
      throw new InputError(
        `headCrossEntropy: rowWeights must hold ${N} values (one per target); got ${rowWeights.length}`,
      );
    for (let i = 0; i < N; i++) if (weight[i] !== 0) weight[i] = rowWeights[i];
  }
  const denom = denominator ?? Math.max(1, count);
  const rows = chunkRows ?? Math.max(1, Math.floor(CHUNK_FLOATS / V));
  // NOTE: the addon's chunks are larger (16 MiB of logits per thread): each chunk adds its
  // rows' xᵀ · P into the whole (Dm, V) dW, so small chunks make the head memory-bound; but
  // every thread gets one
  const nativeRows =
    chunkRows ?? Math.max(16, Math.min(Math.floor(NATIVE_CHUNK_FLOATS / V), Math.ceil(N / nativeThreads())));
  const chunks: [number, number][] = [];
  for (let r0 = 0; r0 < N; r0 += rows) chunks.push([r0, Math.min(N, r0 + rows)]);
  /** The logits (r1 − r0, V) of rows r0..r1. */
  const logitsOf = (xf: tf.Tensor2D, wt: tf.Tensor2D, r0: number, r1: number) =>
    product(tf.slice(xf, [r0, 0], [r1 - r0, Dm]), wt, false, transposed);

  const op = customOp(([xIn, wIn], save) => {
    const xf = tf.reshape(xIn, [N, Dm]) as tf.Tensor2D;
    const wt = wIn as tf.Tensor2D;
    const native = fusedHeadLoss(
      xf,
      wt,
      safe,
      weight.map((wi) => wi / denom),
      gradientBeingTaken(),
      transposed,
      nativeRows,
    );
    if (native) {
      const grads = native.grads ?? [];
      save(grads);
      return {
        value: tf.scalar(native.loss),
        gradFunc: (dy, saved) => {
          if (saved.length !== 2)
            throw new Error('headCrossEntropy: no gradient was computed in the forward');
          const [dx, dW] = upstreamScaled(dy, saved);
          const grads = [tf.reshape(dx, xIn.shape), dW];
          dx.dispose();
          return grads;
        },
      };
    }
    const lse = new Float32Array(N);
    let total = 0;
    for (const [r0, r1] of chunks) {
      const [l, picked] = tf.tidy(() => {
        const logits = logitsOf(xf, wt, r0, r1); // (r, V)
        const at = Int32Array.from({ length: r1 - r0 }, (_, i) => i * V + safe[r0 + i]);
        return [tf.logSumExp(logits, 1), tf.gather(tf.reshape(logits, [-1]), tf.tensor1d(at, 'int32'))];
      });
      const lv = l.dataSync();
      const pv = picked.dataSync();
      tf.dispose([l, picked]);
      for (let i = r0; i < r1; i++) {
        lse[i] = lv[i - r0];
        total += weight[i] * (lv[i - r0] - pv[i - r0]);
      }
    }
    save([xf, wt]);
    return {
      value: tf.scalar(total / denom),
      gradFunc: (dy, saved) => {
        const [sx, sw] = saved as tf.Tensor2D[];
        const g = dy.dataSync()[0] / denom;
        let dW: tf.Tensor = tf.zeros(sw.shape);
        const dxParts: tf.Tensor[] = [];
        for (const [r0, r1] of chunks) {
          const r = r1 - r0;
          const [dxChunk, dWNext] = tf.tidy(() => {
            const logits = logitsOf(sx, sw, r0, r1); // (r, V)
            const p = tf.exp(tf.sub(logits, tf.tensor2d(lse.subarray(r0, r1), [r, 1]))); // softmax
            const scale = tf.tensor2d(
              weight.subarray(r0, r1).map((wi) => wi * g),
              [r, 1],
            );
            // d/dlogits of w·(lse − logit[t]) = w·(softmax − onehot(t))
            const dLogits = tf.mul(
              tf.sub(p, tf.oneHot(tf.tensor1d(safe.subarray(r0, r1), 'int32'), V)),
              scale,
            ) as tf.Tensor2D;
            const xChunk = tf.slice(sx, [r0, 0], [r, Dm]) as tf.Tensor2D;
            return [
              product(dLogits, sw, false, !transposed), // (r, Dm)
              // (Dm, V), or (V, Dm) transposed
              tf.add(
                dW,
                transposed ? product(dLogits, xChunk, true, false) : product(xChunk, dLogits, true, false),
              ),
            ];
          });
          dW.dispose();
          dW = dWNext;
          dxParts.push(dxChunk);
        }
        const dx = tf.reshape(dxParts.length === 1 ? dxParts[0] : tf.concat(dxParts, 0), xIn.shape);
        if (dxParts.length > 1) tf.dispose(dxParts);
        return [dx, dW];
      },
    };
  });
  return op(x, w) as tf.Scalar;
}
