/**
 * A plain float64 attention in JavaScript loops, forward and analytic backward: the reference
 * that even `vanilla` is checked against (STYLE §8).
 */
export interface RefProblem {
  B: number;
  H: number;
  Hk: number;
  T: number;
  D: number;
  causal: boolean;
  segments?: Int32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  dOut?: Float32Array;
}

export interface RefResult {
  out: Float64Array;
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

export function referenceAttention(p: RefProblem): RefResult {
  const { B, H, Hk, T, D, causal, segments, q, k, v, dOut } = p;
  const scale = 1 / Math.sqrt(D);
  const g = H / Hk;
  const out = new Float64Array(B * H * T * D);
  const dq = new Float64Array(out.length);
  const dk = new Float64Array(B * Hk * T * D);
  const dv = new Float64Array(dk.length);
  const at = (bh: number, t: number) => (bh * T + t) * D;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const qh = b * H + h;
      const kh = b * Hk + Math.floor(h / g);
      for (let i = 0; i < T; i++) {
        const vis: number[] = [];
        for (let j = 0; j < T; j++) {
          if (causal && j > i) continue;
          if (segments && segments[b * T + j] !== segments[b * T + i]) continue;
          vis.push(j);
        }
        const s = vis.map((j) => {
          let acc = 0;
          for (let d = 0; d < D; d++) acc += q[at(qh, i) + d] * k[at(kh, j) + d];
          return acc * scale;
        });
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, x) => a + x, 0);
        const pr = e.map((x) => x / z);
        for (let n = 0; n < vis.length; n++)
          for (let d = 0; d < D; d++) out[at(qh, i) + d] += pr[n] * v[at(kh, vis[n]) + d];
        if (!dOut) continue;
        const dp = vis.map((j) => {
          let acc = 0;
          for (let d = 0; d < D; d++) acc += dOut[at(qh, i) + d] * v[at(kh, j) + d];
          return acc;
        });
        const dot = pr.reduce((a, x, n) => a + x * dp[n], 0);
        for (let n = 0; n < vis.length; n++) {
          const j = vis[n];
          const ds = pr[n] * (dp[n] - dot);
          for (let d = 0; d < D; d++) {
            dq[at(qh, i) + d] += scale * ds * k[at(kh, j) + d];
            dk[at(kh, j) + d] += scale * ds * q[at(qh, i) + d];
            dv[at(kh, j) + d] += pr[n] * dOut[at(qh, i) + d];
          }
        }
      }
    }
  }
  return { out, dq, dk, dv };
}

export { relError } from '../../common/index.js';
