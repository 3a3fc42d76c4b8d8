/**
 * The native block's recomputing backward in query chunks (issue 14's memory): one layer's backward
 * held q, the attention output, dO, dQ and the residual gradient for the whole sequence at once
 * (≈ 4·Dm floats a token beside k, v, dK, dV), which made a training step's peak ≈ 2.7× the paper's
 * BPT model for the 2-layer context-scaling model. Here only k, v, dK, dV (the keys every query
 * chunk reads and writes) and the layer's output gradient dx are whole; q, the output, dO, dQ and
 * the chunk's slices of x and dy exist for `rows` tokens at a time.
 *
 * Per query chunk r (rows r0 … r0 + R): q_r from x_r (the input side again), the attention forward
 * of q_r over all keys (its output and log-sum-exp), the output side's backward on x_r (dx_r, dO_r
 * and its weight gradients), the attention backward of q_r (dQ_r; dK, dV added into the whole
 * buffers), then the input side's backward of x_r adds into dx_r. Causal attention runs the chunks
 * last to first: the keys of chunk r are seen only by queries of chunks ≥ r, so their dK, dV are
 * complete when chunk r is reached and go into the same input-side call. Without the causal mask
 * every query sees every key: a second pass adds the keys' part once dK, dV are complete. The input
 * side's backward is linear in (dq, dk, dv), so the split changes only the order of the sums.
 *
 * Blockwise attention on one device only: the ring's chunks travel, and a query chunk would need
 * them all again (N more ring passes per chunk).
 */
import * as tf from '@tensorflow/tfjs';
import {
  type BlockHalves,
  type PostWeights,
  postBackward,
  type QkvWeights,
  qkvBackward,
  qkvForward,
} from '../native/index.js';
import {
  attentionEngine,
  contiguousPositions,
  dims,
  madeInThisBackward,
  type TokenSide,
  tensorData,
  tensorDataIsView,
} from '../ring/index.js';

/** What the chunked backward reads: the block's input and weights, as the op saved them. */
export interface SavedBlock {
  x: tf.Tensor; // (B, T, Dm)
  qkv: QkvWeights;
  post: PostWeights;
}

let chunkedBackwards = 0;
let inPlaceBackwards = 0;

/**
 * Backwards this thread has run in query chunks so far, and of them those that wrote dx into dy's
 * buffer (tests check the paths were taken).
 */
export function chunkedBackwardCount(): { chunked: number; inPlace: number } {
  return { chunked: chunkedBackwards, inPlace: inPlaceBackwards };
}

/** A chunk's rows of a (B, T) row-major per-token array. */
function rowsOf(a: Int32Array, B: number, T: number, r0: number, R: number): Int32Array {
  const out = new Int32Array(B * R);
  for (let b = 0; b < B; b++) out.set(a.subarray(b * T + r0, b * T + r0 + R), b * R);
  return out;
}

/** (B, Hk, R, Dh) copy of rows r0 … r0 + R of a (B, Hk, T, Dh) array. */
function headRows(a: Float32Array, BHk: number, T: number, Dh: number, r0: number, R: number): Float32Array {
  const out = new Float32Array(BHk * R * Dh);
  for (let n = 0; n < BHk; n++) out.set(a.subarray((n * T + r0) * Dh, (n * T + r0 + R) * Dh), n * R * Dh);
  return out;
}

/** Adds `g` into `acc[i]` (freeing both old tensors): weight gradients summed over the chunks. */
function accumulate(acc: (tf.Tensor | undefined)[], grads: tf.Tensor[]): void {
  grads.forEach((g, i) => {
    const prev = acc[i];
    if (!prev) {
      acc[i] = g;
      return;
    }
    acc[i] = tf.add(prev, g);
    tf.dispose([prev, g]);
  });
}

/**
 * Gradients of the block for dy (B, T, Dm), in the op's input order: [dx, dAttnNorm, dWq, dWk, dWv,
 * dWo, dFfnNorm, dUp, dDown (, dGate)]. `g` is the whole block's geometry; `segmentIds` (B, T).
 */
export function chunkedBlockBackward(
  g: BlockHalves,
  saved: SavedBlock,
  dy: tf.Tensor,
  attention: { causal: boolean; blockSize: number; segmentIds?: Int32Array },
  rows: number,
): tf.Tensor[] {
  const { B, T, Dm, H, Hk, Dh } = g;
  const { causal, segmentIds } = attention;
  chunkedBackwards++;
  const engine = attentionEngine({
    B,
    H,
    Hk,
    D: Dh,
    scale: 1 / Math.sqrt(Dh),
    causal,
    blockSize: attention.blockSize,
  });
  const kSide: TokenSide = { positions: contiguousPositions(T), segments: segmentIds };
  // k, v of every token: the whole input side once, its q dropped (recomputed per chunk below)
  const [qAll, k, v] = qkvForward(g, saved.x, saved.qkv);
  qAll.dispose();
  const dk = engine.zeros([B, Hk, T, Dh]);
  const dv = engine.zeros([B, Hk, T, Dh]);
  const starts = Array.from({ length: Math.ceil(T / rows) }, (_, i) => i * rows);
  const order = causal ? starts.slice().reverse() : starts;
  const dxChunks = new Map<number, tf.Tensor>();
  // Causal chunks run last to first and each reads only its own rows of dy: once a chunk's dx is
  // done, dy's rows are free to hold it, and dy ends as dx (one (B, T, Dm) less at the peak). Only
  // for a dy this backward pass made and no other tensor shares (the caller's stays untouched),
  // written through wasm heap views.
  // NOTE: the engine's dK, dV are heap tensors exactly when tensors are heap views (wasm)
  const onHeap = tensorDataIsView();
  const backend = tf.backend() as unknown as { refCount?: (dataId: object) => number };
  const inPlace = causal && onHeap && madeInThisBackward(dy) && backend.refCount?.(dy.dataId as object) === 1;
  /** dx (B, R, Dm) into rows r0 … r0 + R of dy (B, T, Dm); views taken after the last allocation. */
  const intoDy = (dx: tf.Tensor, r0: number, R: number) => {
    const [src, dst] = [tensorData(dx), tensorData(dy)];
    for (let b = 0; b < B; b++) dst.set(src.subarray(b * R * Dm, (b + 1) * R * Dm), (b * T + r0) * Dm);
    dx.dispose();
  };
  const postGrads: (tf.Tensor | undefined)[] = [];
  const qkvGrads: (tf.Tensor | undefined)[] = [];
  /** The chunk's geometry: its rows' RoPE tables (T, Dh) → (R, Dh). */
  const chunkGeometry = (r0: number, R: number): BlockHalves => ({
    ...g,
    T: R,
    rope: g.rope && {
      cos: g.rope.cos.subarray(r0 * Dh, (r0 + R) * Dh),
      sin: g.rope.sin.subarray(r0 * Dh, (r0 + R) * Dh),
    },
  });
  const slice = (t: tf.Tensor, r0: number, R: number) => tf.slice(t, [0, r0, 0], [B, R, Dm]);
  /** dK, dV rows of one chunk as tensors (complete only once every query that sees them ran). */
  const keyGrads = (r0: number, R: number) =>
    [dk, dv].map((buf) => tf.tensor4d(headRows(buf.data(), B * Hk, T, Dh, r0, R), [B, Hk, R, Dh]));
  for (const r0 of order) {
    const R = Math.min(rows, T - r0);
    const gr = chunkGeometry(r0, R);
    const x = slice(saved.x, r0, R);
    const [q, kr, vr] = qkvForward(gr, x, saved.qkv);
    tf.dispose([kr, vr]);
    const qSide: TokenSide = {
      positions: contiguousPositions(R, r0),
      segments: segmentIds && rowsOf(segmentIds, B, T, r0, R),
    };
    const fwd = engine.forward(q, qSide);
    fwd.accumulate(k, v, kSide, true);
    const { out, saved: kept, backward } = fwd.finish();
    const dyr = slice(dy, r0, R);
    const [dx, dO, ...pg] = postBackward(gr, x, out, saved.post, dyr);
    dyr.dispose();
    accumulate(postGrads, pg);
    const bwd = backward(q, kept, dO);
    tf.dispose(kept); // the output and its state: Δ is computed, neither is read again
    bwd.accumulate(
      k,
      v,
      kSide,
      () => dk.data(),
      () => dv.data(),
    );
    const dq = bwd.finish();
    tf.dispose([dO, q]);
    // causal: this chunk's keys are complete (later chunks ran first); otherwise the second pass
    const [dkr, dvr] = causal ? keyGrads(r0, R) : [tf.zeros([B, Hk, R, Dh]), tf.zeros([B, Hk, R, Dh])];
    accumulate(qkvGrads, qkvBackward(gr, x, saved.qkv, dq, dkr, dvr, dx));
    tf.dispose([dq, dkr, dvr, x]);
    if (inPlace) intoDy(dx, r0, R);
    else dxChunks.set(r0, dx);
  }
  tf.dispose([k, v]);
  if (!causal) {
    for (const r0 of starts) {
      const R = Math.min(rows, T - r0);
      const gr = chunkGeometry(r0, R);
      const x = slice(saved.x, r0, R);
      const dq = tf.zeros([B, H, R, Dh]);
      const [dkr, dvr] = keyGrads(r0, R);
      accumulate(qkvGrads, qkvBackward(gr, x, saved.qkv, dq, dkr, dvr, dxChunks.get(r0)!));
      tf.dispose([x, dq, dkr, dvr]);
    }
  }
  // on the heap dK, dV are tensors to free; JS arrays (`tensor()` would copy them) are garbage
  if (onHeap) tf.dispose([dk.tensor(), dv.tensor()]);
  if (inPlace) {
    inPlaceBackwards++;
    return [dy, ...(qkvGrads as tf.Tensor[]), ...(postGrads as tf.Tensor[])];
  }
  const pieces = starts.map((r0) => dxChunks.get(r0)!);
  const dx = pieces.length === 1 ? pieces[0] : tf.concat(pieces, 1);
  if (pieces.length > 1) tf.dispose(pieces);
  if (dims(dx)[1] !== T) throw new Error(`chunkedBlockBackward: dx has ${dims(dx)[1]} rows, not ${T}`);
  return [dx, ...(qkvGrads as tf.Tensor[]), ...(postGrads as tf.Tensor[])];
}
