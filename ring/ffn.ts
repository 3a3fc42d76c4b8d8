/**
 * Feedforward networks, plain and blockwise (paper §3: "the FFN is applied chunk by chunk over
 * the sequence, so its hidden activations never exist for the whole sequence at once"). The
 * blockwise form checkpoints each chunk: the forward keeps only the chunk's input, the backward
 * recomputes one chunk's hidden activations at a time.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../common/index.js';
import { type FfnSublayer, fusedFfnApplies, fusedFfnBackward, fusedFfnForward } from '../native/index.js';
import { customOp, dims, linear, recomputeGrads } from './ops.js';

export type FeedForwardKind = 'swiglu' | 'gelu' | 'relu';

/**
 * Weights: `up` (Dm, F) and `down` (F, Dm); SwiGLU (LLaMA: down(silu(gate(x)) · up(x))) also
 * has `gate` (Dm, F). No biases (LLaMA has none; the RL policies do without).
 */
export interface FeedForwardWeights {
  kind: FeedForwardKind;
  up: tf.Tensor2D;
  down: tf.Tensor2D;
  gate?: tf.Tensor2D;
}

function gelu(x: tf.Tensor): tf.Tensor {
  // tanh approximation (GPT-2). NOTE: x³ as x·x·x, not tf.pow: wasm's Pow (and its gradient,
  // two more Pows) was the costliest kernel of an Agentic Transformer step, 24–27% of it
  // (bench/results/rl-train-profile*.json, issue 14)
  const c = Math.sqrt(2 / Math.PI);
  const cube = tf.mul(tf.mul(x, x), x);
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(tf.mul(c, tf.add(x, tf.mul(0.044715, cube))))));
}

function apply(
  kind: FeedForwardKind,
  x: tf.Tensor,
  up: tf.Tensor2D,
  down: tf.Tensor2D,
  gate?: tf.Tensor2D,
): tf.Tensor {
  const h = linear(x, up);
  let act: tf.Tensor;
  if (kind === 'swiglu') {
    const g = linear(x, gate!);
    act = tf.mul(tf.mul(g, tf.sigmoid(g)), h);
  } else if (kind === 'gelu') act = gelu(h);
  else act = tf.relu(h);
  return linear(act, down);
}

function check(fn: string, x: tf.Tensor, w: FeedForwardWeights): void {
  const Dm = dims(x)[x.rank - 1];
  if (w.up.shape[0] !== Dm || w.down.shape[1] !== Dm || w.up.shape[1] !== w.down.shape[0])
    throw new InputError(
      `${fn}: weights do not fit input width ${Dm}: up [${w.up.shape}], down [${w.down.shape}] (expected (${Dm}, F) and (F, ${Dm}))`,
    );
  if (w.kind === 'swiglu' && (!w.gate || w.gate.shape.join() !== w.up.shape.join()))
    throw new InputError(
      `${fn}: swiglu needs gate with up's shape [${w.up.shape}]; got ${w.gate ? `[${w.gate.shape}]` : 'none'}`,
    );
}

/** x (B, T, Dm) → (B, T, Dm), the whole sequence at once. */
export function feedForward(x: tf.Tensor, w: FeedForwardWeights): tf.Tensor {
  check('feedForward', x, w);
  return apply(w.kind, x, w.up, w.down, w.gate);
}

/**
 * x (B, T, Dm) → (B, T, Dm), `chunkSize` tokens at a time with recomputation in backward. One op
 * for the whole sequence: the forward keeps x and the weights only, and the backward recomputes
 * and differentiates one chunk at a time, writing that chunk's rows of dx and adding its weight
 * gradients into one sum. NOTE: per-chunk `tf.slice` under autodiff gave each chunk a full-size
 * (B, T, Dm) padded gradient, all alive at once: O(T²/c) memory (88.9 MiB at T=2048 for the LM).
 */
export function blockwiseFeedForward(x: tf.Tensor, w: FeedForwardWeights, chunkSize: number): tf.Tensor {
  check('blockwiseFeedForward', x, w);
  if (!Number.isInteger(chunkSize) || chunkSize < 1)
    throw new InputError(`blockwiseFeedForward: chunkSize must be a positive integer; got ${chunkSize}`);
  const [B, T, Dm] = dims(x);
  if (chunkSize >= T) return apply(w.kind, x, w.up, w.down, w.gate);
  const weights = w.gate ? [w.up, w.down, w.gate] : [w.up, w.down];
  // xc (B, c, Dm), then up, down and (SwiGLU) gate
  const f = (...t: tf.Tensor[]) =>
    apply(w.kind, t[0], t[1] as tf.Tensor2D, t[2] as tf.Tensor2D, t[3] as tf.Tensor2D | undefined);
  const ranges: [number, number][] = [];
  for (let start = 0; start < T; start += chunkSize) ranges.push([start, Math.min(chunkSize, T - start)]);
  const rows = (t: tf.Tensor, [start, size]: [number, number]) => tf.slice(t, [0, start, 0], [B, size, Dm]);
  const op = customOp((inputs, save) => {
    save(inputs);
    const [xIn, ...ws] = inputs;
    // each chunk's hidden activations (B, c, F) are freed before the next chunk runs
    const outs = ranges.map((r) => tf.tidy(() => f(rows(xIn, r), ...ws)));
    const value = tf.concat(outs, 1);
    tf.dispose(outs);
    return {
      value,
      gradFunc: (dy, saved) => {
        const [sx, ...sw] = saved;
        const dxParts: tf.Tensor[] = [];
        let dws: tf.Tensor[] | undefined;
        for (const r of ranges) {
          const [dxc, ...dwc] = tf.tidy(() => recomputeGrads(f, [rows(sx, r), ...sw], rows(dy, r)));
          dxParts.push(dxc);
          if (!dws) dws = dwc;
          else {
            const sum: tf.Tensor[] = dws.map((d, i) => tf.add(d, dwc[i]));
            tf.dispose([...dws, ...dwc]);
            dws = sum;
          }
        }
        const dx = tf.concat(dxParts, 1);
        tf.dispose(dxParts);
        return [dx, ...(dws as tf.Tensor[])];
      },
    };
  });
  return op(x, ...weights);
}

/**
 * The FFN sublayer of a pre-norm block, y = x + FFN(norm(x) ∘ gain), fused into one native call
 * forward and one backward (native/fused.ts, issue 14), or undefined where the addon cannot run
 * it (the caller then composes its tfjs ops, which stay the reference). The forward keeps x and
 * the weights only; the backward recomputes each chunk's hidden activations, as
 * `blockwiseFeedForward` does. `reference` is the tfjs composition, for a backward that finds the
 * addon switched off since the forward (configureNative between the two).
 */
export function fusedFeedForwardSublayer(
  x: tf.Tensor,
  gain: tf.Tensor,
  w: FeedForwardWeights,
  norm: FfnSublayer['norm'],
  eps: number,
  reference: (x: tf.Tensor, gain: tf.Tensor, ...weights: tf.Tensor[]) => tf.Tensor,
): tf.Tensor | undefined {
  check('fusedFeedForwardSublayer', x, w);
  const sublayer = (xs: tf.Tensor[]): FfnSublayer => ({
    x: xs[0],
    gain: xs[1],
    up: xs[2],
    down: xs[3],
    gate: xs[4] ?? null,
    activation: w.kind,
    norm,
    eps,
  });
  const inputs = [x, gain, w.up, w.down, ...(w.gate ? [w.gate] : [])];
  if (!fusedFfnApplies(sublayer(inputs))) return undefined;
  const op = customOp((xs, save) => {
    save(xs);
    const value = fusedFfnForward(sublayer(xs));
    if (!value) throw new Error('fusedFeedForwardSublayer: the native FFN stopped applying mid-call');
    return {
      value,
      gradFunc: (dy, saved) => fusedFfnBackward(sublayer(saved), dy) ?? recomputeGrads(reference, saved, dy),
    };
  });
  return op(...inputs);
}
