/**
 * The longest context that fits, found by measuring (the paper's Tables 3–4 in miniature): the
 * length doubles while a probe fits, then bisects between the last fit and the first miss. Lengths
 * are multiples of a granularity (every device holds the same number of tokens). And the model
 * FLOPs of a training step, for model FLOPs utilisation.
 */

export interface MaxContextSearch {
  /** First length probed (rounded down to the granularity, at least one granule). */
  start: number;
  /** Longest length probed. */
  max: number;
  /** Lengths are multiples of this (e.g. 64 · devices). */
  granularity: number;
  /** Bisection steps after the doubling. */
  refineSteps: number;
}

export interface MaxContextResult<T> {
  /** Longest length that fitted (0: none did). */
  maxContext: number;
  /** Probes run. */
  probes: number;
  /** What the probe returned at `maxContext`. */
  fit?: T;
}

/** Searches with `probe(L)`: its measurement when L fits, undefined when it does not. */
export async function searchMaxContext<T>(
  o: MaxContextSearch,
  probe: (L: number) => Promise<T | undefined>,
): Promise<MaxContextResult<T>> {
  const g = o.granularity;
  const round = (L: number) => Math.max(g, Math.floor(L / g) * g);
  let probes = 0;
  let lo = 0;
  let hi = 0;
  let fit: T | undefined;
  const tryLength = async (L: number) => {
    probes++;
    const r = await probe(L);
    if (r === undefined) hi = L;
    else [lo, fit] = [L, r];
    return r !== undefined;
  };
  for (let L = round(o.start); L <= o.max; L *= 2) if (!(await tryLength(L))) break;
  for (let i = 0; i < o.refineSteps && lo > 0 && hi > 0 && hi - lo > g; i++) {
    const mid = round((lo + hi) / 2);
    if (mid <= lo || mid >= hi) break;
    await tryLength(mid);
  }
  return { maxContext: lo, probes, fit };
}

/**
 * Model FLOPs of one training step of a decoder at length L (PaLM's count: 6·P·L for the
 * parameters, 12·layers·L²·d for attention, halved for causal masking).
 */
export function trainingFlops(m: { parameters: number; layers: number; dModel: number }, L: number): number {
  return 6 * m.parameters * L + 6 * m.layers * L * L * m.dModel;
}
