/**
 * The transformer block as one native op (issue 14): ring/'s attention pass (blockwise, or the
 * ring's per-step attention on a ring device) between native/'s two block halves, forward and a
 * recomputing backward. ring/transformer.ts keeps the tfjs block (the reference, the fallback and
 * the GPU path); `transformerBlock` here runs this one wherever the addon can and that one
 * elsewhere, so models call it from here.
 */
import * as tf from '@tensorflow/tfjs';
import {
  type BlockHalves,
  blockHalvesApply,
  postBackward,
  postForward,
  postForwardKeeping,
  qkvBackward,
  qkvForward,
} from '../native/index.js';
import {
  type AttentionPass,
  attentionOptions,
  type BlockWeights,
  blockVariables,
  blockwisePass,
  customOp,
  dims,
  localPositions,
  releaseAfterBackward,
  ringPass,
  ropeTables,
  type SequenceContext,
  type TransformerBlockConfig,
  transformerBlock as tfjsTransformerBlock,
} from '../ring/index.js';
import { chunkedBlockBackward } from './chunked-backward.js';

/** Query rows per chunk of the native backward when the config does not say (see backwardChunk). */
const DEFAULT_BACKWARD_CHUNK = 1024;

/** x (B, T, Dm) → (B, T, Dm): the native block where it runs, else ring/'s tfjs block. */
export function transformerBlock(
  x: tf.Tensor,
  w: BlockWeights,
  c: TransformerBlockConfig,
  seq: SequenceContext,
): tf.Tensor {
  return nativeTransformerBlock(x, w, c, seq) ?? tfjsTransformerBlock(x, w, c, seq);
}

/**
 * Whether `transformerBlock` runs this block as one native op, which checkpoints it (keeps only x
 * and the weights): a caller that checkpoints layers itself need not wrap it again.
 */
export function transformerBlockIsNative(
  x: tf.Tensor,
  w: BlockWeights,
  c: TransformerBlockConfig,
  seq: SequenceContext,
): boolean {
  if (c.attention !== 'blockwise' && !(c.attention === 'ring' && seq.ring)) return false;
  return blockHalvesApply([x, ...blockVariables(w)]);
}

let nativeBlocks = 0;

/** Blocks this thread has run as native ops so far (tests check the path was taken). */
export function nativeBlockCount(): number {
  return nativeBlocks;
}

/**
 * The block as one op on the native addon (issue 14): its input side (norm, projections, RoPE)
 * and output side (output projection, residuals, FFN) are one native call each, with the
 * blockwise or ring attention pass between them. The op keeps only x and the weights: the
 * backward recomputes q, k, v and the attention's forward pass from x (the paper's BPT with full
 * checkpointing per layer, §4), then runs the three backwards in reverse. Undefined where the
 * addon cannot run it (other attention implementations, backends, an old addon): the tfjs block
 * then runs, which stays the reference.
 */
function nativeTransformerBlock(
  x: tf.Tensor,
  w: BlockWeights,
  c: TransformerBlockConfig,
  seq: SequenceContext,
): tf.Tensor | undefined {
  if (!transformerBlockIsNative(x, w, c, seq)) return undefined;
  const inputs = [x, ...blockVariables(w)];
  nativeBlocks++;
  const [B, T, Dm] = dims(x);
  const Dh = c.dModel / c.heads;
  const rope = c.rope
    ? ropeTables(
        localPositions(T, seq),
        Dh,
        c.rope.theta,
        c.rope.interpolation,
        c.rope.frequencies?.(seq.ring?.seqLen ?? T),
      )
    : null;
  const g: BlockHalves = {
    B,
    T,
    Dm,
    H: c.heads,
    Hk: c.kvHeads,
    Dh,
    F: c.ffnHidden,
    norm: c.norm,
    eps: c.normEps,
    activation: c.ffn,
    rope,
  };
  // inputs in blockVariables' order: x, attnNorm, wq, wk, wv, wo, ffnNorm, up, down, gate?
  const split = (xs: tf.Tensor[]) => ({
    x: xs[0],
    qkv: { gain: xs[1], wq: xs[2], wk: xs[3], wv: xs[4] },
    post: { wo: xs[5], gain: xs[6], up: xs[7], down: xs[8], gate: xs[9] ?? null },
  });
  const { options, ring } = attentionOptions(c, seq, T);
  const attention = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): AttentionPass =>
    ring ? ringPass(q, k, v, ring) : blockwisePass(q, k, v, options);
  const op = customOp((xs, save) => {
    const s = split(xs);
    if (c.keepAttention) {
      const [q, k, v] = qkvForward(g, s.x, s.qkv);
      const pass = attention(q, k, v);
      // keepFfn: the output side's x1 and pre-activations too, saved after the attention's
      const { y, kept: ffnKept } = c.keepFfn
        ? postForwardKeeping(g, s.x, pass.out, s.post)
        : { y: postForward(g, s.x, pass.out, s.post), kept: [] };
      save([...xs, pass.out, ...pass.keep, ...ffnKept]);
      // the saved copies share memory with these (wasm, cpu): nothing is freed but the handles
      tf.dispose([q, k, v, pass.out, ...pass.keep, ...ffnKept]);
      const attentionKept = pass.keep.length;
      return {
        value: y,
        gradFunc: (dy, saved) => {
          const r = split(saved.slice(0, xs.length));
          const [out, ...rest] = saved.slice(xs.length);
          const kept = rest.slice(0, attentionKept);
          const grads = blockBackward(
            r,
            out,
            (dO) => pass.backward(dO, kept),
            dy,
            () => {},
            rest.slice(attentionKept),
          );
          releaseAfterBackward(dy, saved, grads);
          return grads;
        },
      };
    }
    save(xs);
    const y = tf.tidy(() => {
      const [q, k, v] = qkvForward(g, s.x, s.qkv);
      const pass = attention(q, k, v);
      // NOTE: freed before the output side allocates y: q, k, v and the attention's saved state
      // beside the output and y were the step's peak (issue 14's memory)
      tf.dispose([q, k, v, ...pass.keep.filter((t) => t !== pass.out)]);
      return postForward(g, s.x, pass.out, s.post);
    });
    const chunk = c.backwardChunk ?? DEFAULT_BACKWARD_CHUNK;
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const r = split(saved);
        if (!ring && chunk > 0 && T > chunk) {
          const grads = chunkedBlockBackward(g, r, dy, options, chunk);
          releaseAfterBackward(dy, saved, grads);
          return grads;
        }
        const [q, k, v] = qkvForward(g, r.x, r.qkv);
        const pass = attention(q, k, v);
        const grads = blockBackward(
          r,
          pass.out,
          (dO) => pass.backward(dO, pass.keep),
          dy,
          () => tf.dispose([q, k, v, pass.out, ...pass.keep]),
        );
        releaseAfterBackward(dy, saved, grads);
        return grads;
      },
    };
  });
  /**
   * The output side's, the attention's and the input side's backwards, in that order.
   * `releaseAttention` frees the recomputed q, k, v and output once the attention's backward is
   * done (the input side's backward reads only x and the gradients).
   */
  const blockBackward = (
    r: ReturnType<typeof split>,
    out: tf.Tensor,
    attentionBackward: (dO: tf.Tensor) => tf.Tensor[],
    dy: tf.Tensor,
    releaseAttention: () => void,
    ffnKept: tf.Tensor[] = [],
  ): tf.Tensor[] => {
    const [dx, dO, ...postGrads] = postBackward(g, r.x, out, r.post, dy, ffnKept);
    // NOTE: dy is not read again: freed here (when this backward pass made it) rather than after
    // the block, one (B, T, Dm) less at the attention backward's peak (issue 14's memory)
    releaseAfterBackward(dy, [], []);
    const [dq, dk, dv] = attentionBackward(dO);
    dO.dispose();
    releaseAttention();
    const qkvGrads = qkvBackward(g, r.x, r.qkv, dq, dk, dv, dx);
    tf.dispose([dq, dk, dv]);
    // in the op's input order: x, attnNorm, wq, wk, wv (qkvGrads), wo, ffnNorm, up, down, gate? (postGrads)
    return [dx, ...qkvGrads, ...postGrads];
  };
  return op(...inputs);
}
