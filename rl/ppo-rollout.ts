/**
 * PPO's rollout buffer (moved out of rl/ppo.ts, issue 13): T steps of E envs stored row t·E + i
 * for step t of env i, the generalised advantage estimates over it (Schulman et al. 2016),
 * minibatches gathered from its rows, and the per-update statistics CleanRL logs from it. Plain
 * float64 loops: exactly reproducible from the seed.
 */

/** One minibatch: rows of the rollout buffer. */
export interface MinibatchData {
  size: number;
  obs: Float64Array; // (B, inDim), normalised
  actions: Float64Array; // (B, actDim) or (B,)
  logp: Float64Array; // (B,)
  adv: Float64Array; // (B,)
  returns: Float64Array; // (B,)
  values: Float64Array; // (B,)
}

/** One rollout for GAE: T steps of E envs, row t·E + i for step t of env i. */
export interface GaeRollout {
  numEnvs: number;
  numSteps: number;
  gamma: number;
  gaeLambda: number;
  /** (T·E) rewards (scaled as trained on) */
  rewards: Float64Array;
  /** (T·E) V(obs) of each row's observation */
  values: Float64Array;
  /** (E) V of the observation after the last step */
  lastValues: ArrayLike<number>;
  /** (T·E) 1 where the step terminated */
  terminated: Uint8Array;
  /** (T·E) 1 where the step terminated or was truncated */
  done: Uint8Array;
  /** (T·E) 0 on NEXT_STEP reset steps (no action was taken) */
  valid: Uint8Array;
}

/**
 * The buffer one update trains on: `gae` holds what GAE reads, `batch` what minibatches are drawn
 * from (`batch.values` is `gae.values`). Allocated once and overwritten by every rollout.
 */
export class RolloutBuffer {
  readonly gae: GaeRollout;
  readonly batch: MinibatchData;

  /** E envs, T steps, D network inputs and A action values per row. */
  constructor(
    readonly numEnvs: number,
    readonly numSteps: number,
    readonly obsSize: number,
    readonly actSize: number,
    gamma: number,
    gaeLambda: number,
  ) {
    const N = numEnvs * numSteps;
    this.gae = {
      numEnvs,
      numSteps,
      gamma,
      gaeLambda,
      rewards: new Float64Array(N), // scaled rewards
      values: new Float64Array(N),
      lastValues: new Float64Array(numEnvs),
      terminated: new Uint8Array(N),
      done: new Uint8Array(N),
      valid: new Uint8Array(N), // 0 on NEXT_STEP reset steps
    };
    this.batch = {
      size: N,
      obs: new Float64Array(N * obsSize), // (T, E, D), normalised at collection time
      actions: new Float64Array(N * actSize), // (T, E, A) unclipped samples
      logp: new Float64Array(N),
      adv: new Float64Array(N),
      returns: new Float64Array(N),
      values: this.gae.values,
    };
  }

  /**
   * Advantages (GAE, masked at NEXT_STEP reset steps) and returns = advantages + values, given
   * V (E) of the observations after the last step; returns the valid rows, the ones trained on.
   */
  advantages(lastValues: ArrayLike<number>): number[] {
    const { gae, batch } = this;
    gae.lastValues = lastValues;
    computeGae(gae, batch.adv);
    const validRows: number[] = [];
    for (let row = 0; row < batch.size; row++) {
      batch.returns[row] = batch.adv[row] + batch.values[row];
      if (gae.valid[row]) validRows.push(row);
    }
    return validRows;
  }

  /** The given rows as a minibatch (copies). */
  minibatch(rows: Int32Array): MinibatchData {
    const [b, D, A] = [this.batch, this.obsSize, this.actSize];
    const B = rows.length;
    const mb: MinibatchData = {
      size: B,
      obs: new Float64Array(B * D),
      actions: new Float64Array(B * A),
      logp: new Float64Array(B),
      adv: new Float64Array(B),
      returns: new Float64Array(B),
      values: new Float64Array(B),
    };
    rows.forEach((row, r) => {
      mb.obs.set(b.obs.subarray(row * D, (row + 1) * D), r * D);
      mb.actions.set(b.actions.subarray(row * A, (row + 1) * A), r * A);
      mb.logp[r] = b.logp[row];
      mb.adv[r] = b.adv[row];
      mb.returns[r] = b.returns[row];
      mb.values[r] = b.values[row];
    });
    return mb;
  }

  /** CleanRL's explained variance of the critic over the given rows. */
  explainedVariance(rows: number[]): number {
    return explainedVariance(this.batch.returns, this.batch.values, rows);
  }
}

/**
 * Generalised advantage estimates (Schulman et al. 2016) into `adv` (T·E), masked at NEXT_STEP
 * reset steps. Exported for its unit test (test/rl/gae.test.ts).
 */
export function computeGae(g: GaeRollout, adv: Float64Array): void {
  const { numEnvs: E, numSteps: T, gamma, gaeLambda } = g;
  for (let i = 0; i < E; i++) {
    let lastAdv = 0;
    for (let t = T - 1; t >= 0; t--) {
      const row = t * E + i;
      if (!g.valid[row]) {
        adv[row] = 0;
        lastAdv = 0;
        continue;
      }
      // The next row's value is V(next obs): at a done step that is V(final obs), which
      // bootstraps truncation; termination zeroes it.
      const nextV = t === T - 1 ? g.lastValues[i] : g.values[row + E];
      const delta = g.rewards[row] + gamma * nextV * (1 - g.terminated[row]) - g.values[row];
      lastAdv = delta + gamma * gaeLambda * (1 - g.done[row]) * lastAdv;
      adv[row] = lastAdv;
    }
  }
}

/**
 * Advantages (B) normalised to mean 0 and unbiased std 1 (torch's `.std()`), as CleanRL does per
 * minibatch; a copy.
 */
export function normalizeAdvantages(adv: Float64Array): Float64Array {
  const B = adv.length;
  const a = Float64Array.from(adv);
  let m = 0;
  for (const x of a) m += x;
  m /= B;
  let v = 0;
  for (const x of a) v += (x - m) ** 2;
  const sd = Math.sqrt(v / (B - 1));
  for (let r = 0; r < B; r++) a[r] = (a[r] - m) / (sd + 1e-8);
  return a;
}

/** 1 − Var(y − pred) / Var(y) over the given rows (CleanRL's explained_variance); NaN if Var(y) = 0. */
function explainedVariance(y: Float64Array, pred: Float64Array, rows: number[]): number {
  let [meanY, varY, varRes] = [0, 0, 0];
  for (const row of rows) meanY += y[row];
  meanY /= Math.max(1, rows.length);
  for (const row of rows) {
    varY += (y[row] - meanY) ** 2;
    varRes += (y[row] - pred[row]) ** 2;
  }
  return varY === 0 ? Number.NaN : 1 - varRes / varY;
}
