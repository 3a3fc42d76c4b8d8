/**
 * A tanh MLP over one flat float64 parameter buffer, differentiated by hand (forward keeps the
 * activations, backward accumulates parameter gradients), with CleanRL's orthogonal init. PPO's
 * actor and critic (rl/ppo.ts) are two of these.
 *
 * NOTE: plain Float64Array code, not tfjs: at 64-wide layers and 64-row minibatches tfjs-wasm's
 * per-op overhead dominates, and plain loops are exactly reproducible from the seed on every
 * backend. Only the matrix product can go to tfjs (`tfjsGemm`), where it pays.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../common/index.js';

/**
 * C (m, n) = A (m, k) · B (k, n), row-major. Two implementations: plain loops (exact float64; the
 * gradient tests use it) and tfjs's matMul on the active backend (float32; ≈9× faster on wasm at
 * 64×105×64 here, which is what makes Ant training fit on 2 cores).
 */
export type Gemm = (a: Float64Array, m: number, k: number, b: Float64Array, n: number) => Float64Array;

export const jsGemm: Gemm = (a, m, k, b, n) => {
  const c = new Float64Array(m * n);
  for (let r = 0; r < m; r++) {
    const cr = r * n;
    for (let i = 0; i < k; i++) {
      const x = a[r * k + i];
      if (x === 0) continue;
      const bi = i * n;
      for (let j = 0; j < n; j++) c[cr + j] += x * b[bi + j];
    }
  }
  return c;
};

/** tfjs matMul (no transposed operands: the wasm backend's transposed matMul is ~10× slower). */
export const tfjsGemm: Gemm = (a, m, k, b, n) => {
  const ta = tf.tensor2d(Float32Array.from(a), [m, k]);
  const tb = tf.tensor2d(Float32Array.from(b), [k, n]);
  const tc = tf.matMul(ta, tb);
  const out = Float64Array.from(tc.dataSync());
  tf.dispose([ta, tb, tc]);
  return out;
};

/** x (rows, cols) → xᵀ (cols, rows). */
function transpose(x: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = x[r * cols + c];
  return t;
}

/** A dense layer: views into a network's flat parameter and gradient buffers. */
export interface DenseLayer {
  nIn: number;
  nOut: number;
  w: Float64Array; // (nIn, nOut)
  b: Float64Array; // (nOut)
  gw: Float64Array;
  gb: Float64Array;
}

/** Activations kept by the forward pass for backward: h[0] = input, h[l] = output of layer l. */
export type MlpCache = Float64Array[];

/**
 * An MLP with tanh hidden layers and a linear output, over one flat parameter buffer (so Adam and
 * gradient clipping see a single vector). `extra` trailing parameters (the log-std) live in the
 * same buffer.
 */
export class Mlp {
  readonly params: Float64Array;
  readonly grads: Float64Array;
  readonly layers: DenseLayer[] = [];
  readonly extra: Float64Array;
  readonly gextra: Float64Array;
  /** The matrix product used by forward/backward; plain loops unless set. */
  gemm: Gemm = jsGemm;

  constructor(
    readonly sizes: number[],
    extra = 0,
  ) {
    let n = extra;
    for (let l = 0; l + 1 < sizes.length; l++) n += sizes[l] * sizes[l + 1] + sizes[l + 1];
    this.params = new Float64Array(n);
    this.grads = new Float64Array(n);
    let o = 0;
    for (let l = 0; l + 1 < sizes.length; l++) {
      const [nIn, nOut] = [sizes[l], sizes[l + 1]];
      const layer = {
        nIn,
        nOut,
        w: this.params.subarray(o, o + nIn * nOut),
        gw: this.grads.subarray(o, o + nIn * nOut),
        b: this.params.subarray(o + nIn * nOut, o + nIn * nOut + nOut),
        gb: this.grads.subarray(o + nIn * nOut, o + nIn * nOut + nOut),
      };
      o += nIn * nOut + nOut;
      this.layers.push(layer);
    }
    this.extra = this.params.subarray(o, o + extra);
    this.gextra = this.grads.subarray(o, o + extra);
  }

  get outSize(): number {
    return this.sizes[this.sizes.length - 1];
  }

  /**
   * CleanRL's `layer_init`: orthogonal weights with gain √2 on hidden layers and `outGain` on the
   * last, zero biases. Orthogonal rows/columns by Gram–Schmidt on a normal matrix.
   */
  initOrthogonal(rng: Rng, outGain: number): void {
    this.layers.forEach((L, l) => {
      const gain = l === this.layers.length - 1 ? outGain : Math.SQRT2;
      orthogonal(L.w, L.nIn, L.nOut, gain, rng);
      L.b.fill(0);
    });
  }

  /** x: (B, nIn) → output (B, nOut); returns the activations for `backward`. */
  forward(x: Float64Array, B: number): MlpCache {
    const cache: MlpCache = [x];
    let h = x;
    this.layers.forEach(({ nIn, nOut, w, b }, l) => {
      const z = this.gemm(h, B, nIn, w, nOut); // (B, nOut)
      for (let r = 0; r < B; r++) for (let j = 0; j < nOut; j++) z[r * nOut + j] += b[j];
      if (l < this.layers.length - 1) for (let k = 0; k < z.length; k++) z[k] = Math.tanh(z[k]);
      cache.push(z);
      h = z;
    });
    return cache;
  }

  /** Accumulates parameter gradients from dOut (B, nOut) = dLoss/dOutput. */
  backward(cache: MlpCache, dOut: Float64Array, B: number): void {
    let dz = dOut;
    for (let l = this.layers.length - 1; l >= 0; l--) {
      const { nIn, nOut, w, gw, gb } = this.layers[l];
      const hIn = cache[l]; // (B, nIn)
      for (let r = 0; r < B; r++) for (let j = 0; j < nOut; j++) gb[j] += dz[r * nOut + j];
      const dw = this.gemm(transpose(hIn, B, nIn), nIn, B, dz, nOut); // hInᵀ dz: (nIn, nOut)
      for (let k = 0; k < dw.length; k++) gw[k] += dw[k];
      if (l === 0) break; // the input needs no gradient
      const dIn = this.gemm(dz, B, nOut, transpose(w, nIn, nOut), nIn); // dz Wᵀ: (B, nIn)
      // hIn is the tanh output of layer l−1: d tanh = 1 − h².
      for (let k = 0; k < dIn.length; k++) dIn[k] *= 1 - hIn[k] * hIn[k];
      dz = dIn;
    }
  }
}

/** Fills w (rows, cols) with a scaled orthogonal matrix (torch.nn.init.orthogonal_). */
function orthogonal(w: Float64Array, rows: number, cols: number, gain: number, rng: Rng): void {
  // Orthonormalise the shorter dimension's vectors, then lay them out as rows or columns.
  const [n, m] = rows >= cols ? [cols, rows] : [rows, cols]; // n vectors of length m, n ≤ m
  const v = new Float64Array(n * m);
  for (let k = 0; k < v.length; k++) v[k] = rng.normal();
  for (let a = 0; a < n; a++) {
    const va = v.subarray(a * m, (a + 1) * m);
    for (let b = 0; b < a; b++) {
      const vb = v.subarray(b * m, (b + 1) * m);
      let d = 0;
      for (let k = 0; k < m; k++) d += va[k] * vb[k];
      for (let k = 0; k < m; k++) va[k] -= d * vb[k];
    }
    let norm = 0;
    for (let k = 0; k < m; k++) norm += va[k] * va[k];
    norm = Math.sqrt(norm) || 1;
    for (let k = 0; k < m; k++) va[k] /= norm;
  }
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) w[r * cols + c] = gain * (rows >= cols ? v[c * m + r] : v[r * m + c]);
}
