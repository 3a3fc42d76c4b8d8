/**
 * A plain float64 attention in JavaScript loops, forward and analytic backward: the reference
 * that every implementation, vanilla included, is checked against (STYLE §8). `exp bench
 * attention --check` and the tests (test/helpers/reference.ts) share it; before issue 16 the
 * bench checked vanilla against vanilla itself. One query row at a time, so memory is O(T), not
 * the O(T²) of the scores.
 */

export interface RefProblem {
  B: number;
  H: number;
  Hk: number;
  T: number;
  D: number;
  causal: boolean;
  /** (B, T) segment ids: a token sees only keys of its own segment. */
  segments?: Int32Array;
  q: Float32Array; // (B, H, T, D)
  k: Float32Array; // (B, Hk, T, D)
  v: Float32Array; // (B, Hk, T, D)
  dOut?: Float32Array; // (B, H, T, D)
}

export interface RefResult {
  out: Float64Array; // (B, H, T, D)
  dq: Float64Array; // (B, H, T, D); zeros without dOut
  dk: Float64Array; // (B, Hk, T, D)
  dv: Float64Array; // (B, Hk, T, D)
}

/** `onHead(done, total)` is called after each (batch, head): long checks show progress. */
export function referenceAttention(p: RefProblem, onHead?: (done: number, total: number) => void): RefResult {
  const { B, H, Hk, T, D, causal, segments, q, k, v, dOut } = p;
  const scale = 1 / Math.sqrt(D);
  const g = H / Hk;
  const out = new Float64Array(B * H * T * D);
  const dq = new Float64Array(out.length);
  const dk = new Float64Array(B * Hk * T * D);
  const dv = new Float64Array(dk.length);
  const at = (bh: number, t: number) => (bh * T + t) * D;
  // one query row's visible keys, scores → probabilities, and dOut·v
  const vis = new Int32Array(T);
  const pr = new Float64Array(T);
  const dp = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const qh = b * H + h;
      const kh = b * Hk + Math.floor(h / g);
      for (let i = 0; i < T; i++) {
        const qi = at(qh, i); // this row's offset in q, out, dq and dOut
        let n = 0;
        for (let j = 0; j < T; j++) {
          if (causal && j > i) continue;
          if (segments && segments[b * T + j] !== segments[b * T + i]) continue;
          vis[n++] = j;
        }
        let m = -Infinity;
        for (let a = 0; a < n; a++) {
          const kj = at(kh, vis[a]);
          let acc = 0;
          for (let d = 0; d < D; d++) acc += q[qi + d] * k[kj + d];
          pr[a] = acc * scale;
          if (pr[a] > m) m = pr[a];
        }
        let z = 0;
        for (let a = 0; a < n; a++) {
          pr[a] = Math.exp(pr[a] - m);
          z += pr[a];
        }
        for (let a = 0; a < n; a++) {
          pr[a] /= z;
          const vj = at(kh, vis[a]);
          for (let d = 0; d < D; d++) out[qi + d] += pr[a] * v[vj + d];
        }
        if (!dOut) continue;
        let dot = 0;
        for (let a = 0; a < n; a++) {
          const vj = at(kh, vis[a]);
          let acc = 0;
          for (let d = 0; d < D; d++) acc += dOut[qi + d] * v[vj + d];
          dp[a] = acc;
          dot += pr[a] * acc;
        }
        for (let a = 0; a < n; a++) {
          const kj = at(kh, vis[a]);
          const ds = pr[a] * (dp[a] - dot); // softmax backward
          for (let d = 0; d < D; d++) {
            dq[qi + d] += scale * ds * k[kj + d];
            dk[kj + d] += scale * ds * q[qi + d];
            dv[kj + d] += pr[a] * dOut[qi + d];
          }
        }
      }
      onHead?.(qh + 1, B * H);
    }
  }
  return { out, dq, dk, dv };
}
