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
 * per chunk instead (kernels.ts, issue 7); this engine is the reference and the fallback.
 */
import * as tf from '@tensorflow/tfjs';
import { dims } from '../ops.js';
import type { BlockRange, MaskPlanner } from './mask.js';

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
export interface KvChunk {
  /** Per (b·Hk + hk), per key block: keys (c, D), keys transposed (D, c), values (c, D). */
  k: tf.Tensor2D[][];
  kT: tf.Tensor2D[][];
  v: tf.Tensor2D[][];
  blocks: BlockRange[];
}

/** Splits (B, Hk, Tc, D) keys and values into per-head blocks (and transposes the keys once). */
export function makeKvChunk(k: tf.Tensor, v: tf.Tensor, blocks: BlockRange[]): KvChunk {
  const kh = splitHeads(k);
  const vh = splitHeads(v);
  const D = dims(k)[3];
  const chunk: KvChunk = { k: [], kT: [], v: [], blocks };
  for (let n = 0; n < kh.length; n++) {
    const kb = blocks.map((r) => tf.slice(kh[n], [r.start, 0], [r.size, D]));
    chunk.k.push(kb);
    chunk.kT.push(kb.map((t) => tf.transpose(t)));
    chunk.v.push(blocks.map((r) => tf.slice(vh[n], [r.start, 0], [r.size, D])));
  }
  tf.dispose([...kh, ...vh]);
  return chunk;
}

export function disposeKvChunk(c: KvChunk): void {
  for (const list of [c.k, c.kT, c.v]) for (const head of list) tf.dispose(head);
}

type RowState = {
  o: tf.Tensor2D; // (cq, D) unnormalised numerator
  m: tf.Tensor2D; // (cq, 1) running max
  l: tf.Tensor2D; // (cq, 1) running denominator
};

/** Geometry common to both passes. */
export interface Geometry {
  B: number;
  H: number;
  Hk: number;
  D: number;
  scale: number;
  qBlocks: BlockRange[];
}

/** Forward pass: accumulates o, m, l per (b·H + h, query block) over any number of chunks. */
export class ForwardAccumulator {
  /** Scaled query blocks per (b·H + h): (cq, D). */
  private readonly qs: tf.Tensor2D[][];
  private readonly state: (RowState | undefined)[][];

  constructor(
    q: tf.Tensor,
    private readonly g: Geometry,
  ) {
    const heads = splitHeads(q);
    this.qs = heads.map((h) =>
      g.qBlocks.map((r) =>
        tf.tidy(() => tf.mul(tf.slice(h, [r.start, 0], [r.size, g.D]), g.scale) as tf.Tensor2D),
      ),
    );
    tf.dispose(heads);
    this.state = this.qs.map((blocks) => blocks.map(() => undefined));
  }

  /** Adds one key/value chunk; `mask` plans this query side against the chunk's keys. */
  accumulate(chunk: KvChunk, mask: MaskPlanner): void {
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
  }

  /** Output (B, H, T, D) and log-sum-exp per row (B, H, T); frees the accumulator. */
  finalize(): { out: tf.Tensor4D; lse: tf.Tensor3D } {
    const { B, H, D } = this.g;
    const outHeads: tf.Tensor2D[] = [];
    const lseHeads: tf.Tensor2D[] = [];
    for (let n = 0; n < this.state.length; n++) {
      const outBlocks: tf.Tensor2D[] = [];
      const lseBlocks: tf.Tensor2D[] = [];
      for (let i = 0; i < this.g.qBlocks.length; i++) {
        const s = this.state[n][i];
        if (!s)
          throw new Error(`attention: query block ${i} of head ${n} sees no key (mask hides every key)`);
        outBlocks.push(tf.tidy(() => tf.div(s.o, s.l) as tf.Tensor2D));
        lseBlocks.push(tf.tidy(() => tf.add(s.m, tf.log(s.l)) as tf.Tensor2D));
        tf.dispose([s.o, s.m, s.l]);
      }
      outHeads.push(tf.tidy(() => tf.concat(outBlocks, 0)));
      lseHeads.push(tf.tidy(() => tf.concat(lseBlocks, 0)));
      tf.dispose([...outBlocks, ...lseBlocks]);
    }
    for (const blocks of this.qs) tf.dispose(blocks);
    const T = outHeads[0].shape[0];
    const out = joinHeads(outHeads, B, H);
    const lse = tf.tidy(() => tf.reshape(tf.stack(lseHeads), [B, H, T])) as tf.Tensor3D;
    tf.dispose([...outHeads, ...lseHeads]);
    void D;
    return { out, lse };
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

/** Backward pass: accumulates dQ locally and returns dK, dV per chunk (which may travel). */
export class BackwardAccumulator {
  private readonly rows: BackwardRow[][];

  /** q, out, dOut (B, H, T, D); lse (B, H, T). */
  constructor(
    q: tf.Tensor,
    out: tf.Tensor,
    dOut: tf.Tensor,
    lse: tf.Tensor,
    private readonly g: Geometry,
  ) {
    const { B, H, D, scale } = g;
    const T = dims(q)[2];
    const qh = splitHeads(q);
    const oh = splitHeads(out);
    const dh = splitHeads(dOut);
    const lh = tf.tidy(() => tf.unstack(tf.reshape(lse, [B * H, 1, T]))) as tf.Tensor2D[];
    this.rows = qh.map((_, n) =>
      g.qBlocks.map((r) =>
        tf.tidy(() => {
          const qs = tf.mul(tf.slice(qh[n], [r.start, 0], [r.size, D]), scale) as tf.Tensor2D;
          const dO = tf.slice(dh[n], [r.start, 0], [r.size, D]);
          const o = tf.slice(oh[n], [r.start, 0], [r.size, D]);
          const delta = tf.sum(tf.mul(dO, o), 1); // (cq)
          const row: BackwardRow = {
            qs,
            qsT: tf.transpose(qs),
            dO,
            dOT: tf.transpose(dO),
            lseRow: tf.slice(lh[n], [0, r.start], [1, r.size]),
            deltaRow: tf.reshape(delta, [1, r.size]),
          };
          return row;
        }),
      ),
    );
    tf.dispose([...qh, ...oh, ...dh, ...lh]);
  }

  /**
   * Adds the contribution of one chunk to dQ and returns that chunk's dK, dV contribution, per
   * (b·Hk + hk) and key block (c, D); undefined where no query sees the block.
   */
  accumulate(
    chunk: KvChunk,
    mask: MaskPlanner,
  ): { dk: (tf.Tensor2D | undefined)[][]; dv: (tf.Tensor2D | undefined)[][] } {
    const { B, H, Hk } = this.g;
    const group = H / Hk;
    const dk: (tf.Tensor2D | undefined)[][] = [];
    const dv: (tf.Tensor2D | undefined)[][] = [];
    for (let b = 0; b < B; b++) {
      for (let hk = 0; hk < Hk; hk++) {
        const kvIdx = b * Hk + hk;
        const dkHead: (tf.Tensor2D | undefined)[] = [];
        const dvHead: (tf.Tensor2D | undefined)[] = [];
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
          dkHead.push(dkAcc);
          dvHead.push(dvAcc);
        }
        dk.push(dkHead);
        dv.push(dvHead);
      }
    }
    return { dk, dv };
  }

  /** dQ (B, H, T, D); frees the accumulator. */
  finalize(): tf.Tensor4D {
    const { B, H, D, scale } = this.g;
    const heads = this.rows.map((blocks) => {
      const parts = blocks.map((row, i) =>
        tf.tidy(() =>
          row.dqT
            ? (tf.mul(tf.transpose(row.dqT), scale) as tf.Tensor2D)
            : tf.zeros([this.g.qBlocks[i].size, D]),
        ),
      );
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
      const head = tf.concat(parts, 0) as tf.Tensor2D;
      tf.dispose(parts);
      return head;
    });
    const dq = joinHeads(heads, B, H);
    tf.dispose(heads);
    return dq;
  }
}

/**
 * Joins per-head, per-block gradient pieces (undefined = zero) into (B, Hk, Tc, D).
 */
export function joinChunkGrads(
  parts: (tf.Tensor2D | undefined)[][],
  blocks: BlockRange[],
  B: number,
  Hk: number,
  D: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const heads = parts.map(
      (head) =>
        tf.concat(
          head.map((t, j) => t ?? tf.zeros([blocks[j].size, D])),
          0,
        ) as tf.Tensor2D,
    );
    return joinHeads(heads, B, Hk);
  });
}
