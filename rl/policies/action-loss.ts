/**
 * The trajectory transformer's action head and loss as one op (issue 14): the final LayerNorm,
 * the (Dm, A) head with its bias, tanh, and the weighted squared error against the target actions.
 * In tfjs autodiff these were ≈ 30 kernels a step (three products, the norm, tanh, the loss and
 * their gradients, each with its tensors): ≈ 1 ms of a 17 ms ant-medium step for ≈ 4M
 * multiply-adds. Where the native addon runs, one call computes the loss and, when a gradient is
 * being taken, its gradients in the same pass (the loss ends the graph, as in lm/head-loss.ts);
 * the tfjs composition stays the reference and the fallback.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../../common/index.js';
import { fusedActionLoss, fusedActionLossApplies } from '../../native/index.js';
import { customOp, gradientBeingTaken, linear, normalize, upstreamScaled } from '../../ring/index.js';

/** LayerNorm's epsilon of the head's norm (the policies' `normalize(…, 'layer', 1e-5)`). */
export const HEAD_NORM_EPS = 1e-5;

/** The head's weights: the final norm's gain (Dm), w (Dm, A) and b (A). */
export interface ActionHead {
  gain: tf.Tensor1D;
  w: tf.Tensor2D;
  b: tf.Tensor1D;
}

/** Predicted actions (..., A) = tanh(layerNorm(h) ∘ gain · w + b), in (−1, 1). */
export function actionHead(h: tf.Tensor, head: ActionHead): tf.Tensor {
  const y = linear(normalize(h, head.gain, 'layer', HEAD_NORM_EPS), head.w);
  return tf.tanh(tf.add(y, head.b));
}

/**
 * h (rows..., Dm) → Σ_rows weight[row] · Σ_a (actionHead(h)[row, a] − targets[row, a])² /
 * denominator. targets (rows · A) and weights (rows) are the batch's arrays; padding rows weigh 0
 * (on the native path they add nothing even where their prediction is NaN; tfjs multiplies by 0).
 */
export function actionLoss(
  h: tf.Tensor,
  head: ActionHead,
  targets: Float32Array,
  weights: Float32Array,
  denominator: number,
): tf.Scalar {
  const [Dm, A] = head.w.shape;
  const rows = h.size / Dm;
  if (h.shape[h.rank - 1] !== Dm || weights.length !== rows || targets.length !== rows * A)
    throw new InputError(
      `actionLoss: h [${h.shape}] must hold one row of ${Dm} per weight (${weights.length}) and ${A} targets per row (${targets.length} given)`,
    );
  const factor = weights.map((w) => w / denominator);
  // tfjs: autodiff of the composition (the reference, and the path without the addon)
  if (!fusedActionLossApplies([h, head.gain, head.w, head.b]))
    return tf.tidy(() => squaredError(actionHead(h, head), targets, factor));
  const op = customOp(([x, gain, w, b], save) => {
    const native = fusedActionLoss(
      x,
      gain as tf.Tensor1D,
      w as tf.Tensor2D,
      b as tf.Tensor1D,
      targets,
      factor,
      'layer',
      HEAD_NORM_EPS,
      gradientBeingTaken(),
    );
    if (!native) throw new Error('actionLoss: the native action loss did not run where it applies');
    save(native.grads ?? []);
    return {
      value: tf.scalar(native.loss),
      gradFunc: (dy, saved) => {
        if (saved.length !== 4) throw new Error('actionLoss: no gradient was computed in the forward');
        return upstreamScaled(dy, saved);
      },
    };
  });
  return op(h, head.gain, head.w, head.b) as tf.Scalar;
}

/** Σ_rows factor[row] · Σ_a (pred − target)² for pred (rows..., A). */
function squaredError(pred: tf.Tensor, targets: Float32Array, factor: Float32Array): tf.Scalar {
  const A = pred.shape[pred.rank - 1] as number;
  const rows = factor.length;
  const diff = tf.sub(tf.reshape(pred, [rows, A]), tf.tensor2d(targets, [rows, A]));
  return tf.sum(tf.mul(tf.square(diff), tf.tensor2d(factor, [rows, 1])));
}
