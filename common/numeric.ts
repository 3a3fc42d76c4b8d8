/**
 * ‖a − b‖ / max(‖b‖, minNorm): the relative error the correctness checks and `--check` report
 * (issue 2). A larger `minNorm` makes the check absolute where the reference is near zero.
 */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>, minNorm = 1e-30): number {
  if (a.length !== b.length) throw new Error(`relError: lengths ${a.length} and ${b.length} differ`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), minNorm);
}

/** The median of `xs` (the mean of the middle two for an even count); `xs` is not reordered. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
