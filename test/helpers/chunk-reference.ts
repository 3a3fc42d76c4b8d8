/**
 * Float64 attention of one query side against one key side with explicit global positions and
 * segments (ring chunks with offsets, striped layouts): the reference for the chunk kernels
 * (test/ring/native.test.ts) and for ring/attention/accumulator.ts's engines.
 * Layouts (row-major): q, dOut (B, H, Tq, D); k, v (B, Hk, Tk, D).
 */
import type { TokenSide } from '../../ring/attention/mask.js';

export function reference64(
  p: { B: number; H: number; Hk: number; D: number; causal: boolean },
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  dOut: Float32Array,
  qs: TokenSide,
  ks: TokenSide,
) {
  const { B, H, Hk, D, causal } = p;
  const Tq = qs.positions.length;
  const Tk = ks.positions.length;
  const scale = 1 / Math.sqrt(D);
  const out = new Float64Array(B * H * Tq * D);
  const dq = new Float64Array(B * H * Tq * D);
  const dk = new Float64Array(B * Hk * Tk * D);
  const dv = new Float64Array(B * Hk * Tk * D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const bh = b * H + h;
      const kvh = b * Hk + Math.floor(h / (H / Hk));
      for (let i = 0; i < Tq; i++) {
        const qo = (bh * Tq + i) * D;
        const p = new Float64Array(Tk);
        const seen: boolean[] = [];
        let mx = Number.NEGATIVE_INFINITY;
        for (let j = 0; j < Tk; j++) {
          const ok =
            (!causal || ks.positions[j] <= qs.positions[i]) &&
            (!qs.segments || qs.segments[b * Tq + i] === ks.segments![b * Tk + j]);
          seen.push(ok);
          if (!ok) continue;
          let d = 0;
          for (let x = 0; x < D; x++) d += q[qo + x] * k[(kvh * Tk + j) * D + x];
          p[j] = d * scale;
          mx = Math.max(mx, p[j]);
        }
        let sum = 0;
        for (let j = 0; j < Tk; j++) {
          p[j] = seen[j] ? Math.exp(p[j] - mx) : 0;
          sum += p[j];
        }
        for (let j = 0; j < Tk; j++) p[j] /= sum;
        for (let j = 0; j < Tk; j++)
          if (p[j]) for (let x = 0; x < D; x++) out[qo + x] += p[j] * v[(kvh * Tk + j) * D + x];
        let delta = 0;
        for (let x = 0; x < D; x++) delta += dOut[qo + x] * out[qo + x];
        for (let j = 0; j < Tk; j++) {
          if (!p[j]) continue;
          const ko = (kvh * Tk + j) * D;
          let dp = 0;
          for (let x = 0; x < D; x++) dp += dOut[qo + x] * v[ko + x];
          const ds = p[j] * (dp - delta) * scale;
          for (let x = 0; x < D; x++) {
            dv[ko + x] += p[j] * dOut[qo + x];
            dq[qo + x] += ds * k[ko + x];
            dk[ko + x] += ds * q[qo + x];
          }
        }
      }
    }
  return { out, dq, dk, dv };
}
