/**
 * Which keys a query may see: causal order by position, and same segment. Works on blocks: a
 * block pair is invisible (skipped, paper §3 "blocks above the diagonal are skipped"), fully
 * visible (no mask needed), or partial (an additive bias of 0 / MASKED).
 */
import * as tf from '@tensorflow/tfjs';
import { MASKED } from './types.js';

/** A contiguous range of local token indices. */
export interface BlockRange {
  start: number;
  size: number;
}

export function blockRanges(length: number, blockSize: number): BlockRange[] {
  const out: BlockRange[] = [];
  for (let start = 0; start < length; start += blockSize)
    out.push({ start, size: Math.min(blockSize, length - start) });
  return out;
}

/** Positions and segments of one side (queries or keys) of the attention, local indices. */
export interface TokenSide {
  /** Global position of each local token (T). */
  positions: Int32Array;
  /** Segment of each local token per batch row, (B, T) row-major; undefined = one segment. */
  segments?: Int32Array;
}

interface Summary {
  minPos: number;
  maxPos: number;
  /** Per batch row: the single segment of the block, or NaN when it holds several. */
  singleSeg: number[];
  minSeg: number[];
  maxSeg: number[];
}

function summarise(side: TokenSide, r: BlockRange, batch: number): Summary {
  let minPos = Infinity;
  let maxPos = -Infinity;
  for (let t = r.start; t < r.start + r.size; t++) {
    const p = side.positions[t];
    if (p < minPos) minPos = p;
    if (p > maxPos) maxPos = p;
  }
  const singleSeg: number[] = [];
  const minSeg: number[] = [];
  const maxSeg: number[] = [];
  if (side.segments) {
    const T = side.positions.length;
    for (let b = 0; b < batch; b++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let t = r.start; t < r.start + r.size; t++) {
        const s = side.segments[b * T + t];
        if (s < lo) lo = s;
        if (s > hi) hi = s;
      }
      minSeg.push(lo);
      maxSeg.push(hi);
      singleSeg.push(lo === hi ? lo : Number.NaN);
    }
  }
  return { minPos, maxPos, singleSeg, minSeg, maxSeg };
}

export type Visibility = 'none' | 'all' | 'partial';

/**
 * Plans masks for the block pairs of one query side against one key side. Biases are built once
 * per (batch row, q block, k block, orientation) and shared by every head; `dispose` frees them.
 */
export class MaskPlanner {
  private readonly qSum: Summary[];
  private readonly kSum: Summary[];
  private readonly cache = new Map<string, tf.Tensor2D>();
  readonly hasSegments: boolean;

  constructor(
    private readonly q: TokenSide,
    readonly qBlocks: BlockRange[],
    private readonly k: TokenSide,
    readonly kBlocks: BlockRange[],
    private readonly causal: boolean,
    batch: number,
  ) {
    this.hasSegments = Boolean(q.segments);
    this.qSum = qBlocks.map((r) => summarise(q, r, batch));
    this.kSum = kBlocks.map((r) => summarise(k, r, batch));
  }

  visibility(b: number, i: number, j: number): Visibility {
    const qs = this.qSum[i];
    const ks = this.kSum[j];
    if (this.causal && ks.minPos > qs.maxPos) return 'none';
    if (this.hasSegments && (ks.minSeg[b] > qs.maxSeg[b] || ks.maxSeg[b] < qs.minSeg[b])) return 'none';
    const causalAll = !this.causal || ks.maxPos <= qs.minPos;
    const segAll =
      !this.hasSegments || (!Number.isNaN(qs.singleSeg[b]) && qs.singleSeg[b] === ks.singleSeg[b]);
    return causalAll && segAll ? 'all' : 'partial';
  }

  /** Any query block of this batch row sees key block j at all. */
  anyVisible(b: number, j: number): boolean {
    for (let i = 0; i < this.qBlocks.length; i++) if (this.visibility(b, i, j) !== 'none') return true;
    return false;
  }

  /**
   * The additive bias of a partial pair: (q size, k size), or transposed (k size, q size) for
   * the backward pass, which works on transposed scores.
   */
  bias(b: number, i: number, j: number, transposed: boolean): tf.Tensor2D {
    const key = `${this.hasSegments ? b : 0}:${i}:${j}:${transposed ? 1 : 0}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    // kept: the planner outlives the tidy scope it is first used in
    const t = tf.keep(this.buildBias(b, i, j, transposed));
    this.cache.set(key, t);
    return t;
  }

  /** Like `bias` but uncached: a fresh tensor owned by the caller's scope. */
  buildBias(b: number, i: number, j: number, transposed: boolean): tf.Tensor2D {
    const qr = this.qBlocks[i];
    const kr = this.kBlocks[j];
    const Tq = this.q.positions.length;
    const Tk = this.k.positions.length;
    const data = new Float32Array(qr.size * kr.size);
    for (let a = 0; a < qr.size; a++) {
      const qt = qr.start + a;
      const qp = this.q.positions[qt];
      const qsg = this.q.segments ? this.q.segments[b * Tq + qt] : 0;
      for (let c = 0; c < kr.size; c++) {
        const kt = kr.start + c;
        let visible = !this.causal || this.k.positions[kt] <= qp;
        if (visible && this.k.segments) visible = this.k.segments[b * Tk + kt] === qsg;
        if (!visible) data[transposed ? c * qr.size + a : a * kr.size + c] = MASKED;
      }
    }
    return tf.tensor2d(data, transposed ? [kr.size, qr.size] : [qr.size, kr.size]);
  }

  dispose(): void {
    for (const t of this.cache.values()) t.dispose();
    this.cache.clear();
  }
}

/** Positions 0..T−1. */
export function contiguousPositions(length: number, offset = 0): Int32Array {
  const p = new Int32Array(length);
  for (let t = 0; t < length; t++) p[t] = offset + t;
  return p;
}
