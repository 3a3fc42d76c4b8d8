/**
 * Basic ops with gradients that avoid tfjs-backend-wasm's slow paths (DEVELOPERS.md):
 * - `BatchMatMul` on wasm is fast only for one 2-D product without transpose flags; batched or
 *   transposed products fall to a naive loop (≈10× slower, measured). So every product here is
 *   2-D, and gradients transpose explicitly instead of passing `transposeA/B`.
 * - wasm has no `gather` gradient, so embedding lookups get a scatter-add gradient in JS.
 * - `checkpoint` recomputes a function in the backward pass instead of keeping its activations.
 * - On wasm and cpu, matMul runs on the native addon's sgemm when it loads (native/kernels.ts,
 *   issue 7), transposes folded into its packing.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeMatmulApplies, scatterAddRows } from '../native/index.js';

/** A tensor's shape as a plain array (tfjs types shapes as a union of tuples). */
export function dims(x: tf.Tensor): number[] {
  return x.shape as number[];
}

/** What a custom-gradient op returns: its value and the gradient of each input. */
export interface CustomOpResult {
  value: tf.Tensor;
  gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[];
}

/** tf.customGrad with typed inputs: `f(inputs, save)`. */
export function customOp(
  f: (inputs: tf.Tensor[], save: tf.GradSaveFunc) => CustomOpResult,
): (...inputs: tf.Tensor[]) => tf.Tensor {
  const g = tf.customGrad(((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    return f(args as tf.Tensor[], save);
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (...inputs: tf.Tensor[]) => g(...inputs);
}

/**
 * Inside a custom op's gradFunc, once its gradients are computed: frees the output gradient `dy`
 * and the op's saved tensors (both clones or handles of their own; `grads`, what the op returns,
 * are spared). NOTE: tfjs keeps every node's output gradient and saved tensors until the whole
 * backward pass ends, so without this a layer's input and its gradient live through the layers
 * below it: one (B, T, Dm) tensor of each per layer (issue 14's memory). A node's output gradient
 * is read by that node alone, so nothing needs it afterwards.
 */
export function releaseAfterBackward(
  dy: tf.Tensor | tf.Tensor[],
  saved: tf.Tensor[],
  grads: tf.Tensor[],
): void {
  const keep = new Set(grads);
  // NOTE: a dy made outside this backward pass is the caller's (tf.grads(f)(xs, dy)): it stays
  for (const t of Array.isArray(dy) ? dy : [dy]) if (madeInThisBackward(t) && !keep.has(t)) t.dispose();
  for (const t of saved) if (!keep.has(t)) t.dispose();
}

/**
 * Whether tfjs is recording for a gradient (tf.grads, variableGrads, a checkpoint's recompute):
 * ops that end the graph (a loss) compute their gradients in the forward only then.
 */
export function gradientBeingTaken(): boolean {
  const engine = tf.engine() as unknown as { state: { gradientDepth: number } };
  return engine.state.gradientDepth > 0;
}

/**
 * The gradFunc of an op that ends the graph (a loss) and computed its gradients in the forward
 * (`saved`): each scaled by the upstream scalar dy (clones where it is 1, sharing the saved data),
 * dy and the saved tensors released.
 */
export function upstreamScaled(dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] {
  const g = dy.dataSync()[0];
  const grads = g === 1 ? saved.map((t) => tf.clone(t)) : saved.map((t) => tf.mul(t, g));
  releaseAfterBackward(dy, saved, grads);
  return grads;
}

/**
 * Inside a custom op's gradFunc: whether `t` was made by this backward pass (an upstream op's
 * gradient) rather than handed in by the caller (tf.grads(f)(xs, dy)). The pass runs in one engine
 * scope, which tracks every gradient made in it (tfjs 4 internals).
 */
export function madeInThisBackward(t: tf.Tensor): boolean {
  const scope = (tf.engine() as unknown as { state: { activeScope?: { id: number } } }).state.activeScope;
  return scope !== undefined && (t as unknown as { scopeId?: number }).scopeId === scope.id;
}

/**
 * op(a) @ op(b), op = transpose when flagged: (M, K) @ (K, N) → (M, N). Native (native/kernels.ts)
 * takes the flags into its packing; wasm's own kernel gets explicit transposes instead.
 */
export function product(a: tf.Tensor2D, b: tf.Tensor2D, transA: boolean, transB: boolean): tf.Tensor2D {
  const [M, K] = transA ? [a.shape[1], a.shape[0]] : a.shape;
  const N = transB ? b.shape[0] : b.shape[1];
  if (a.dtype === 'float32' && nativeMatmulApplies(M, N, K)) return tf.matMul(a, b, transA, transB);
  return tf.tidy(() => tf.matMul(transA ? tf.transpose(a) : a, transB ? tf.transpose(b) : b));
}

/** a (M, K) @ b (K, N) → (M, N), with explicit-transpose gradients. */
const matmulOp = customOp(([a, b], save) => {
  save([a, b]);
  return {
    value: product(a as tf.Tensor2D, b as tf.Tensor2D, false, false),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as tf.Tensor2D[];
      return [product(dy as tf.Tensor2D, sb, false, true), product(sa, dy as tf.Tensor2D, true, false)];
    },
  };
});
export const matmul = matmulOp as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/** x (..., in) @ w (in, out) → (..., out): flattens leading dims into one 2-D product. */
export function linear(x: tf.Tensor, w: tf.Tensor2D): tf.Tensor {
  const [inDim, outDim] = w.shape;
  const lead = x.shape.slice(0, -1);
  const flat = tf.reshape(x, [-1, inDim]) as tf.Tensor2D; // (N, in)
  return tf.reshape(matmul(flat, w), [...lead, outDim]);
}

/**
 * x (N, in) @ w (in, out) → (N, out) for an x that takes no gradient (features read from data):
 * the backward computes xᵀ · dy for w alone. `matmul` would also form dy · wᵀ for x, a product as
 * large as the forward's, and autodiff would drop it (a third of the policies' token embedding).
 */
export function constantLinear(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const op = customOp(([wIn], save) => {
    save([x]);
    return {
      value: product(x, wIn as tf.Tensor2D, false, false),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        product(saved[0] as tf.Tensor2D, dy as tf.Tensor2D, true, false),
      ],
    };
  });
  return op(w) as tf.Tensor2D;
}

/**
 * table (V, D) gathered at integer ids (any shape) → (...ids.shape, D). The gradient scatter-adds
 * rows (native/ `scatterAddRows`: the wasm backend has no gather gradient), O(N·D), not O(N·V·D)
 * as a one-hot product would be.
 */
export function embeddingLookup(table: tf.Tensor2D, ids: tf.Tensor): tf.Tensor {
  const [vocab, dim] = table.shape;
  const flatIds = tf.reshape(ids, [-1]) as tf.Tensor1D;
  const lookup = customOp(([t], save) => {
    save([flatIds]);
    return {
      value: tf.gather(t, flatIds),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const grad = scatterAddRows(dy as tf.Tensor2D, saved[0] as tf.Tensor1D, vocab);
        releaseAfterBackward(dy, saved, [grad]);
        return [grad];
      },
    };
  });
  const rows = lookup(table) as tf.Tensor2D;
  return tf.reshape(rows, [...ids.shape, dim]);
}

/**
 * Gradient checkpointing: the forward keeps only `inputs`; the backward re-runs `f` under
 * autodiff. The paper trains with full checkpointing per layer (§4); memeff uses it per query
 * chunk (Rabe & Staats). Gradients flow to `inputs` only, so parameters must be passed as inputs.
 */
export function checkpoint(f: (...inputs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[]): tf.Tensor {
  const wrapped = customOp((xs, save) => {
    save(xs);
    return {
      value: tf.tidy(() => f(...xs)),
      gradFunc: (dy, saved) => {
        const grads = recomputeGrads(f, saved, dy);
        releaseAfterBackward(dy, saved, grads);
        return grads;
      },
    };
  });
  return wrapped(...inputs);
}

/**
 * Inside a custom op's gradFunc: re-runs `f` on `inputs` under autodiff and returns the gradient
 * of each input for the output gradient `dy`. NOTE: tfjs resets the engine's tape when a gradient
 * computation starts at depth 0, which is where a gradFunc runs; the outer backward pass still
 * needs its tape to free saved tensors afterwards, so it is put back.
 */
export function recomputeGrads(
  f: (...inputs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
  dy: tf.Tensor,
): tf.Tensor[] {
  const engine = tf.engine() as unknown as { state: { activeTape: unknown } };
  const outerTape = engine.state.activeTape;
  try {
    return tf.grads((...ys: tf.Tensor[]) => f(...ys))(inputs, dy);
  } finally {
    engine.state.activeTape = outerTape;
  }
}

/** Identity in the forward pass, zero gradient (jax.lax.stop_gradient). */
export const stopGradient = customOp(([x]) => ({
  value: x.clone(),
  gradFunc: (dy) => [tf.zerosLike(dy)],
}));
