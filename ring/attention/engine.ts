/**
 * The blockwise attention engine shared by `blockwise` (one device) and `ring` (N devices):
 * online-softmax accumulation of query blocks against key/value chunks, and the recomputing
 * backward pass (paper §3; FlashAttention-2's loop order, key/value blocks outermost, because the
 * ring delivers keys and values one chunk at a time).
 *
 * Everything is a sequence of 2-D products per (batch, head): tfjs-backend-wasm runs 2-D
 * products ≈10× faster than batched ones (see ops.ts). The backward pass works on transposed
 * scores Sᵀ (keys × queries) so that every product it needs is a plain A @ B:
 *   Sᵀ = K (Qs)ᵀ,  Pᵀ = exp(Sᵀ − lse),  dV += Pᵀ dO,  dPᵀ = V dOᵀ,  dSᵀ = Pᵀ ∘ (dPᵀ − Δ),
 *   dK += dSᵀ Qs,  dQᵀ += Kᵀ dSᵀ     (Qs = Q·scale, Δ = rowsum(dO ∘ O)).
 *
 * Where the native addon loads, blockwise.ts and ring.ts run the same algorithm as one fused call
 * per chunk instead (kernels.ts, issue 7); this engine is the reference and the fallback. Both
 * implement accumulator.ts's interface, so each schedule is written once (issue 13).
 */
import * as tf from '@tensorflow/tfjs';
import { dims } from '../ops.js';
import type {
  BackwardAccumulator,
  ChunkGeometry,
  ChunkValues,
  ForwardAccumulator,
  ForwardResult,
  GradientTarget,
} from './accumulator.js';
import { arrayOf, tensorData } from './kernels.js';
import { type BlockRange, blockRanges, MaskPlanner, type TokenSide } from './mask.js';

/** Splits (B, H, T, D) into B·H tensors (T, D), index b·H + h. */
export function splitHeads(x: tf.Tensor): tf.Tensor2D[] {
  const [B, H, T, D] = dims(x);
  // NOTE: tfjs's Unpack gradient breaks on a single output (it gets a tensor, not a list)
  if (B * H === 1) return [tf.reshape(x, [T, D]) as tf.Tensor2D];
  return tf.tidy(() => tf.unstack(tf.reshape(x, [B * H, T, D]))) as tf.Tensor2D[];
}

/** Inverse of splitHeads: B·H tensors (T, D) → (B, H, T, D). */
export function joinHeads(parts: tf.Tensor2D[], B: number, H: number): tf.Tensor4D {
  const [T, D] = parts[0].shape;
  return tf.tidy(() => tf.reshape(tf.stack(parts), [B, H, T, D])) as tf.Tensor4D;
}

/** Keys and values of one chunk (the whole sequence, or the block a ring step holds). */
interface KvChunk {
  /** Per (b·Hk + hk), per key block: keys (c, D), keys transposed (D, c), values (c, D). */
  k: tf.Tensor2D[][];
  kT: tf.Tensor2D[][];
  v: tf.Tensor2D[][];
  blocks: BlockRange[];
}

/**
 * Rows [start, start + size) of head n = b·H + h of x (B, H, T, D) as a (size, D) tensor: one
 * slice of x, without splitting x into heads first (issue 20: the split copied all of x).
 */
function headRows(x: tf.Tensor, n: number, start: number, size: number): tf.Tensor2D {
  const [, H, , D] = dims(x);
  const b = Math.floor(n / H);
  return tf.tidy(() => tf.reshape(tf.slice(x, [b, n % H, start, 0], [1, 1, size, D]), [size, D]));
}

/** Row blocks `blocks` of every head of x (B, H, T, D): per (b·H + h), per block, (size, D). */
function headBlocks(x: tf.Tensor, blocks: BlockRange[]): tf.Tensor2D[][] {
  const [B, H] = dims(x);
  return Array.from({ length: B * H }, (_, n) => blocks.map((r) => headRows(x, n, r.start, r.size)));
}

/**
 * Per head, the row blocks (size, D) joined back into (B, H, T, D), in one concatenation: blocks
 * head by head, row by row, are x's memory order. Frees the blocks.
 */
function joinBlocks(blocks: tf.Tensor2D[][], B: number, H: number): tf.Tensor4D {
  const flat = blocks.flat();
  const T = blocks[0].reduce((n, t) => n + t.shape[0], 0);
  const D = flat[0].shape[1];
  const x = tf.tidy(() => tf.reshape(tf.concat(flat, 0), [B, H, T, D])) as tf.Tensor4D;
  tf.dispose(flat);
  return x;
}

/**
 * The chunk k, v (B, Hk, Tc, D) as per-head blocks (keys transposed once), and the mask of this
 * query side against it; `free` releases both. Tensors are sliced as they are; arrays (a ring's
 * travelling chunk) go into a tensor first.
 */
function openChunk(
  k: ChunkValues,
  v: ChunkValues,
  kSide: TokenSide,
  qSide: TokenSide,
  g: Geometry,
): { chunk: KvChunk; mask: MaskPlanner; free: () => void } {
  const { B, Hk, D, blockSize, causal } = g;
  const shape: [number, number, number, number] = [B, Hk, kSide.positions.length, D];
  const blocks = blockRanges(shape[2], blockSize);
  const mask = new MaskPlanner(qSide, g.qBlocks, kSide, blocks, causal, B);
  const asTensor = (x: ChunkValues) => (x instanceof tf.Tensor ? x : tf.tensor4d(x, shape));
  const [kt, vt] = [asTensor(k), asTensor(v)];
  const chunk: KvChunk = { k: headBlocks(kt, blocks), kT: [], v: headBlocks(vt, blocks), blocks };
  chunk.kT = chunk.k.map((head) => head.map((t) => tf.transpose(t)));
  // the chunk's own tensors only: the caller's stay the caller's
  for (const [x, t] of [
    [k, kt],
    [v, vt],
  ] as const)
    if (x !== t) t.dispose();
  const free = () => {
    for (const list of [chunk.k, chunk.kT, chunk.v]) for (const head of list) tf.dispose(head);
    mask.dispose();
  };
  return { chunk, mask, free };
}

type RowState = {
  o: tf.Tensor2D; // (cq, D) unnormalised numerator
  m: tf.Tensor2D; // (cq, 1) running max
  l: tf.Tensor2D; // (cq, 1) running denominator
};

/** Geometry common to both passes: the op's, and the query blocks. */
interface Geometry extends ChunkGeometry {
  qBlocks: BlockRange[];
}

/** Forward pass: accumulates o, m, l per (b·H + h, query block) over any number of chunks. */
export class TfjsForward implements ForwardAccumulator {
  /** Scaled query blocks per (b·H + h): (cq, D). */
  private readonly qs: tf.Tensor2D[][];
  private readonly state: (RowState | undefined)[][];
  private readonly g: Geometry;

  /** q (B, H, Tq, D) whose tokens are `qSide`. */
  constructor(
    q: tf.Tensor,
    geometry: ChunkGeometry,
    private readonly qSide: TokenSide,
  ) {
    const g = { ...geometry, qBlocks: blockRanges(dims(q)[2], geometry.blockSize) };
    this.g = g;
    this.qs = headBlocks(q, g.qBlocks).map((blocks) =>
      blocks.map((qb) => {
        const qs = tf.mul(qb, g.scale) as tf.Tensor2D;
        qb.dispose();
        return qs;
      }),
    );
    this.state = this.qs.map((blocks) => blocks.map(() => undefined));
  }

  accumulate(k: ChunkValues, v: ChunkValues, kSide: TokenSide): void {
    const { chunk, mask, free } = openChunk(k, v, kSide, this.qSide, this.g);
    const { B, H, Hk } = this.g;
    const group = H / Hk;
    for (let b = 0; b < B; b++) {
      for (let hk = 0; hk < Hk; hk++) {
        const kvIdx = b * Hk + hk;
        for (let j = 0; j < chunk.blocks.length; j++) {
          const kT = chunk.kT[kvIdx][j];
          const v = chunk.v[kvIdx][j];
          for (let i = 0; i < this.g.qBlocks.length; i++) {
            const vis = mask.visibility(b, i, j);
            if (vis === 'none') continue; // NOTE: causal block skipping (paper §3)
            const bias = vis === 'partial' ? mask.bias(b, i, j, false) : undefined;
            for (let hq = hk * group; hq < (hk + 1) * group; hq++) {
              const qIdx = b * H + hq;
              this.state[qIdx][i] = step(this.qs[qIdx][i], kT, v, bias, this.state[qIdx][i]);
            }
          }
        }
      }
    }
    free();
  }

  /** Output (B, H, T, D) and log-sum-exp per row (B, H, T), saved for the backward; frees the state. */
  finish(): ForwardResult {
    const { B, H } = this.g;
    const outBlocks: tf.Tensor2D[][] = [];
    const lseBlocks: tf.Tensor2D[][] = [];
    for (let n = 0; n < this.state.length; n++) {
      outBlocks.push([]);
      lseBlocks.push([]);
      for (let i = 0; i < this.g.qBlocks.length; i++) {
        const s = this.state[n][i];
        if (!s)
          throw new Error(`attention: query block ${i} of head ${n} sees no key (mask hides every key)`);
        outBlocks[n].push(tf.tidy(() => tf.div(s.o, s.l) as tf.Tensor2D));
        lseBlocks[n].push(tf.tidy(() => tf.add(s.m, tf.log(s.l)) as tf.Tensor2D));
        tf.dispose([s.o, s.m, s.l]);
      }
    }
    for (const blocks of this.qs) tf.dispose(blocks);
    const out = joinBlocks(outBlocks, B, H);
    const lse = tf.tidy(() => tf.reshape(joinBlocks(lseBlocks, B, H), [B, H, -1])) as tf.Tensor3D;
    return {
      out,
      saved: [out, lse],
      backward: (sq, [so, slse], dOut) => new TfjsBackward(sq, so, dOut, slse, this.g, this.qSide),
    };
  }
}

/** One online-softmax update (paper §3: rescale by exp(m_old − m_new) when the max grows). */
function step(
  qs: tf.Tensor2D,
  kT: tf.Tensor2D,
  v: tf.Tensor2D,
  bias: tf.Tensor2D | undefined,
  prev: RowState | undefined,
): RowState {
  const next = tf.tidy(() => {
    let s = tf.matMul(qs, kT); // (cq, ck)
    if (bias) s = tf.add(s, bias);
    const mBlock = tf.max(s, 1, true);
    const m = prev ? tf.maximum(prev.m, mBlock) : mBlock;
    const p = tf.exp(tf.sub(s, m));
    const lBlock = tf.sum(p, 1, true);
    const pv = tf.matMul(p, v); // (cq, D)
    if (!prev) return { o: pv, m, l: lBlock } as RowState;
    const alpha = tf.exp(tf.sub(prev.m, m));
    return {
      o: tf.add(tf.mul(prev.o, alpha), pv),
      m,
      l: tf.add(tf.mul(prev.l, alpha), lBlock),
    } as RowState;
  });
  if (prev) tf.dispose([prev.o, prev.m, prev.l]);
  return next;
}

type BackwardRow = {
  qs: tf.Tensor2D; // (cq, D) scaled queries
  qsT: tf.Tensor2D; // (D, cq)
  dO: tf.Tensor2D; // (cq, D)
  dOT: tf.Tensor2D; // (D, cq)
  lseRow: tf.Tensor2D; // (1, cq)
  deltaRow: tf.Tensor2D; // (1, cq)
  dqT?: tf.Tensor2D; // (D, cq) accumulated
};

/** Backward pass: accumulates dQ locally and adds each chunk's dK, dV into arrays (which may travel). */
class TfjsBackward implements BackwardAccumulator {
  private readonly rows: BackwardRow[][];

  /** q, out, dOut (B, H, T, D); lse (B, H, T). */
  constructor(
    q: tf.Tensor,
    out: tf.Tensor,
    dOut: tf.Tensor,
    lse: tf.Tensor,
    private readonly g: Geometry,
    private readonly qSide: TokenSide,
  ) {
    const { B, H, scale } = g;
    // lse (B, H, T) as (B, H, 1, T): a head's row block is then a (1, size) slice
    const lse4 = tf.reshape(lse, [B, H, 1, dims(lse)[2]]);
    this.rows = Array.from({ length: B * H }, (_, n) =>
      g.qBlocks.map((r) =>
        tf.tidy(() => {
          const qs = tf.mul(headRows(q, n, r.start, r.size), scale) as tf.Tensor2D;
          const dO = headRows(dOut, n, r.start, r.size);
          const o = headRows(out, n, r.start, r.size);
          const delta = tf.sum(tf.mul(dO, o), 1); // (cq)
          const b = Math.floor(n / H);
          const row: BackwardRow = {
            qs,
            qsT: tf.transpose(qs),
            dO,
            dOT: tf.transpose(dO),
            lseRow: tf.reshape(tf.slice(lse4, [b, n % H, 0, r.start], [1, 1, 1, r.size]), [1, r.size]),
            deltaRow: tf.reshape(delta, [1, r.size]),
          };
          return row;
        }),
      ),
    );
    lse4.dispose();
  }

  accumulate(k: ChunkValues, v: ChunkValues, kSide: TokenSide, dk: GradientTarget, dv: GradientTarget): void {
    const { chunk, mask, free } = openChunk(k, v, kSide, this.qSide, this.g);
    const { B, H, Hk, D } = this.g;
    const group = H / Hk;
    const Tk = kSide.positions.length;
    for (let b = 0; b < B; b++) {
      for (let hk = 0; hk < Hk; hk++) {
        const kvIdx = b * Hk + hk;
        for (let j = 0; j < chunk.blocks.length; j++) {
          const k = chunk.k[kvIdx][j];
          const kT = chunk.kT[kvIdx][j];
          const v = chunk.v[kvIdx][j];
          let dkAcc: tf.Tensor2D | undefined;
          let dvAcc: tf.Tensor2D | undefined;
          for (let i = 0; i < this.g.qBlocks.length; i++) {
            const vis = mask.visibility(b, i, j);
            if (vis === 'none') continue;
            const biasT = vis === 'partial' ? mask.bias(b, i, j, true) : undefined;
            for (let hq = hk * group; hq < (hk + 1) * group; hq++) {
              const row = this.rows[b * H + hq][i];
              const [ndk, ndv, ndqT] = tf.tidy(() => {
                let sT = tf.matMul(k, row.qsT); // (ck, cq)
                if (biasT) sT = tf.add(sT, biasT);
                const pT = tf.exp(tf.sub(sT, row.lseRow));
                const dvPart = tf.matMul(pT, row.dO); // (ck, D)
                const dPT = tf.matMul(v, row.dOT); // (ck, cq)
                const dST = tf.mul(pT, tf.sub(dPT, row.deltaRow));
                const dkPart = tf.matMul(dST, row.qs); // (ck, D)
                const dqTPart = tf.matMul(kT, dST); // (D, cq)
                return [
                  dkAcc ? tf.add(dkAcc, dkPart) : dkPart,
                  dvAcc ? tf.add(dvAcc, dvPart) : dvPart,
                  row.dqT ? tf.add(row.dqT, dqTPart) : dqTPart,
                ] as tf.Tensor2D[];
              });
              tf.dispose([dkAcc, dvAcc, row.dqT].filter((t): t is tf.Tensor2D => t !== undefined));
              dkAcc = ndk;
              dvAcc = ndv;
              row.dqT = ndqT;
            }
          }
          // dk, dv (B, Hk, Tk, D) += this block's pieces, in place (no join into one tensor first)
          const off = (kvIdx * Tk + chunk.blocks[j].start) * D;
          addInto(dk, off, dkAcc);
          addInto(dv, off, dvAcc);
        }
      }
    }
    free();
  }

  /** dQ (B, H, T, D); frees the accumulator. */
  finish(): tf.Tensor4D {
    const { B, H, D, scale } = this.g;
    const heads = this.rows.map((blocks) => {
      const parts = blocks.map((row, i) =>
        tf.tidy(() =>
          row.dqT
            ? (tf.mul(tf.transpose(row.dqT), scale) as tf.Tensor2D)
            : (tf.zeros([this.g.qBlocks[i].size, D]) as tf.Tensor2D),
        ),
      );
      // a head's rows go as soon as its dQ blocks are out
      for (const row of blocks)
        tf.dispose([
          row.qs,
          row.qsT,
          row.dO,
          row.dOT,
          row.lseRow,
          row.deltaRow,
          ...(row.dqT ? [row.dqT] : []),
        ]);
      return parts;
    });
    return joinBlocks(heads, B, H);
  }
}

/**
 * acc[off …] += the values of t (undefined = zero); frees t. On wasm t is read through a heap
 * view, not copied into a JS array (issue 20: 16 MiB of such copies per backward at L = 4096); the
 * views of t and acc are taken together, with no allocation between them and the sum.
 */
function addInto(acc: GradientTarget, off: number, t: tf.Tensor2D | undefined): void {
  if (!t) return;
  const d = tensorData(t);
  const a = arrayOf(acc);
  for (let i = 0; i < d.length; i++) a[off + i] += d[i];
  t.dispose();
}
