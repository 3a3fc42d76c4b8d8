/**
 * Training samplers over a `TrajectoryDataset`, deterministic given a seed (common/ Rng). They
 * return plain typed arrays with their shapes beside them, not tensors, so datasets/ does not
 * depend on tfjs; rl/ wraps them.
 *
 * - `DtWindowSampler`: Decision Transformer windows (Chen et al. 2021, as in its gym/experiment.py
 *   `get_batch`): episode picked with probability ∝ its length, start uniform over its steps,
 *   K steps with return-to-go, timesteps and a left-padding attention mask; states normalised
 *   with the dataset's mean/std.
 * - `AtChainSampler`: Agentic Transformer chains of hindsight (Liu & Abbeel 2023; PAPER.md §2):
 *   n ≤ max trajectories sorted ascending by return, every target return relabelled to the
 *   chain's best, return-to-go per trajectory, completion flags.
 */
import { InputError, Rng } from '../common/index.js';
import type { TrajectoryDataset } from './reader.js';

/** DT's epsilon on the std (`np.std(states, axis=0) + 1e-6`). */
const STD_EPS = 1e-6;

export interface StateNorm {
  mean: Float32Array;
  /** std + 1e-6 */
  std: Float32Array;
}

/** The dataset's observation mean/std (stored by the writer; computed by a scan if absent). */
export function stateNorm(ds: TrajectoryDataset): StateNorm {
  const d = ds.obsDim;
  let mean = ds.info.obsMean;
  let std = ds.info.obsStd;
  if (!mean || !std || mean.length !== d || std.length !== d) {
    const sum = new Float64Array(d);
    const sq = new Float64Array(d);
    let n = 0;
    for (const b of ds.scan()) {
      for (let r = 0; r < b.rows; r++) {
        if (b.steps[r] === ds.lengths[b.episodeIds[r]]) continue; // final observation row
        for (let j = 0; j < d; j++) {
          const x = b.observations[r * d + j];
          sum[j] += x;
          sq[j] += x * x;
        }
        n++;
      }
    }
    mean = [...sum].map((s) => s / Math.max(1, n));
    std = [...sq].map((s, j) => Math.sqrt(Math.max(0, s / Math.max(1, n) - (mean as number[])[j] ** 2)));
  }
  return { mean: Float32Array.from(mean), std: Float32Array.from(std, (s) => s + STD_EPS) };
}

function positiveInt(value: number, name: string, where: string): void {
  if (!Number.isInteger(value) || value < 1)
    throw new InputError(`${where}: ${name} must be a positive integer; got ${value}`);
}

/** Index i with cum[i-1] ≤ u < cum[i] (cum: inclusive prefix sums). */
function upperBound(cum: Float64Array, u: number): number {
  let lo = 0;
  let hi = cum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cum[mid] > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// ---------------------------------------------------------------- Decision Transformer windows

export interface DtWindowOptions {
  batchSize: number;
  /** K, steps per window (DT: 20). */
  context: number;
  seed: number;
  /** Returns-to-go are divided by this (DT: 1000 for MuJoCo); default 1. */
  returnScale?: number;
  /** Normalise states with the dataset mean/std (default true). */
  normalizeStates?: boolean;
}

export interface DtBatch {
  batchSize: number;
  context: number;
  obsDim: number;
  actDim: number;
  /** (B, K, obsDim) */
  states: Float32Array;
  /** (B, K, actDim) */
  actions: Float32Array;
  /** (B, K) */
  rewards: Float32Array;
  /** (B, K) return-to-go from each step to the episode's end, divided by returnScale */
  returnsToGo: Float32Array;
  /** (B, K) step index within the episode */
  timesteps: Int32Array;
  /** (B, K) 1 for real steps; windows shorter than K are left-padded with 0 */
  mask: Uint8Array;
  /** (B) episode and first step of each window */
  episodes: Int32Array;
  starts: Int32Array;
}

export class DtWindowSampler {
  private readonly rng: Rng;
  private readonly cum: Float64Array;
  private readonly norm: StateNorm | undefined;
  private readonly scale: number;

  constructor(
    private readonly ds: TrajectoryDataset,
    private readonly options: DtWindowOptions,
  ) {
    positiveInt(options.batchSize, 'batchSize', 'DtWindowSampler');
    positiveInt(options.context, 'context', 'DtWindowSampler');
    if (ds.numEpisodes === 0) throw new InputError(`${ds.path}: empty dataset: no episodes to sample`);
    this.rng = new Rng(options.seed);
    this.cum = new Float64Array(ds.numEpisodes);
    let c = 0;
    for (let i = 0; i < ds.numEpisodes; i++) this.cum[i] = c += ds.lengths[i];
    this.norm = options.normalizeStates === false ? undefined : stateNorm(ds);
    this.scale = options.returnScale ?? 1;
  }

  /** The generator state (save it in a checkpoint to resume the same stream). */
  get rngState(): number {
    return this.rng.getState();
  }
  set rngState(s: number) {
    this.rng.setState(s);
  }

  sample(): DtBatch {
    const { batchSize: B, context: K } = this.options;
    const { obsDim: D, actDim: A } = this.ds;
    const out: DtBatch = {
      batchSize: B,
      context: K,
      obsDim: D,
      actDim: A,
      states: new Float32Array(B * K * D),
      actions: new Float32Array(B * K * A),
      rewards: new Float32Array(B * K),
      returnsToGo: new Float32Array(B * K),
      timesteps: new Int32Array(B * K),
      mask: new Uint8Array(B * K),
      episodes: new Int32Array(B),
      starts: new Int32Array(B),
    };
    const total = this.cum[this.cum.length - 1];
    for (let b = 0; b < B; b++) {
      // Episode ∝ length, then a uniform start: every step is equally likely to start a window.
      const ep = upperBound(this.cum, this.rng.next() * total);
      const T = this.ds.lengths[ep];
      const si = this.rng.int(T);
      const len = Math.min(K, T - si);
      const pad = K - len;
      out.episodes[b] = ep;
      out.starts[b] = si;
      const s = this.ds.steps(ep, si, len);
      const suffix = this.ds.rewards(ep, si, T - si);
      // Return-to-go at si+j = Σ_{t ≥ si+j} r_t, accumulated backwards in float64.
      let acc = 0;
      const rtg = new Float64Array(suffix.length);
      for (let t = suffix.length - 1; t >= 0; t--) rtg[t] = acc += suffix[t];
      for (let j = 0; j < len; j++) {
        const row = b * K + pad + j;
        out.mask[row] = 1;
        out.timesteps[row] = si + j;
        out.rewards[row] = s.rewards[j];
        out.returnsToGo[row] = rtg[j] / this.scale;
        out.actions.set(s.actions.subarray(j * A, (j + 1) * A), row * A);
        for (let d = 0; d < D; d++) {
          const x = s.observations[j * D + d];
          out.states[row * D + d] = this.norm ? (x - this.norm.mean[d]) / this.norm.std[d] : x;
        }
      }
    }
    return out;
  }
}

// ---------------------------------------------------------------- Agentic Transformer chains

export interface AtChainOptions {
  batchSize: number;
  /** Most trajectories in one chain (paper Table 5: 4, 32, 128). */
  maxTrajectories: number;
  /** Fewest (default 1); n is uniform in [min, max] per sample. */
  minTrajectories?: number;
  seed: number;
  /** Steps of context L in the output (default: maxTrajectories × the longest episode). Longer
   * chains keep their last L steps (the best trajectory comes last). */
  contextSteps?: number;
  returnScale?: number;
  normalizeStates?: boolean;
}

export interface AtBatch {
  batchSize: number;
  /** L */
  contextSteps: number;
  obsDim: number;
  actDim: number;
  /** (B, L, obsDim) */
  states: Float32Array;
  /** (B, L, actDim) */
  actions: Float32Array;
  /** (B, L) */
  rewards: Float32Array;
  /** (B, L) the chain's target return minus the reward collected so far in this trajectory */
  returnsToGo: Float32Array;
  /** (B, L) 1 on the last step of a trajectory whose return reaches the target */
  completions: Uint8Array;
  /** (B, L) step index within its trajectory */
  timesteps: Int32Array;
  /** (B, L) position of the step's trajectory in the chain (0 = lowest return) */
  trajectoryIndex: Int32Array;
  /** (B, L) 1 for real steps; short chains are left-padded with 0 */
  mask: Uint8Array;
  /** (B) n per sample */
  numTrajectories: Int32Array;
  /** (B, maxTrajectories) episode ids in chain order, −1 past n */
  chainEpisodes: Int32Array;
  /** (B) the relabelled target (the chain's best return), unscaled */
  targets: Float64Array;
}

export class AtChainSampler {
  private readonly rng: Rng;
  private readonly norm: StateNorm | undefined;
  private readonly returns: Float64Array;
  readonly contextSteps: number;

  constructor(
    private readonly ds: TrajectoryDataset,
    private readonly options: AtChainOptions,
  ) {
    positiveInt(options.batchSize, 'batchSize', 'AtChainSampler');
    positiveInt(options.maxTrajectories, 'maxTrajectories', 'AtChainSampler');
    const min = options.minTrajectories ?? 1;
    if (!Number.isInteger(min) || min < 1 || min > options.maxTrajectories)
      throw new InputError(
        `AtChainSampler: minTrajectories must be in 1..${options.maxTrajectories}; got ${min}`,
      );
    if (ds.numEpisodes === 0) throw new InputError(`${ds.path}: empty dataset: no episodes to sample`);
    this.rng = new Rng(options.seed);
    this.returns = ds.returns();
    this.norm = options.normalizeStates === false ? undefined : stateNorm(ds);
    let longest = 0;
    for (const l of ds.lengths) longest = Math.max(longest, l);
    this.contextSteps = options.contextSteps ?? options.maxTrajectories * longest;
    positiveInt(this.contextSteps, 'contextSteps', 'AtChainSampler');
  }

  get rngState(): number {
    return this.rng.getState();
  }
  set rngState(s: number) {
    this.rng.setState(s);
  }

  /** n distinct episodes when the dataset has that many (else with replacement), sorted by return. */
  private chain(n: number): number[] {
    const E = this.ds.numEpisodes;
    const picked: number[] = [];
    const seen = new Set<number>();
    while (picked.length < n) {
      const e = this.rng.int(E);
      if (E >= n && seen.has(e)) continue;
      seen.add(e);
      picked.push(e);
    }
    // Ascending by return; ties by id so the order is deterministic.
    return picked.sort((a, b) => this.returns[a] - this.returns[b] || a - b);
  }

  sample(): AtBatch {
    const { batchSize: B, maxTrajectories: N } = this.options;
    const min = this.options.minTrajectories ?? 1;
    const L = this.contextSteps;
    const { obsDim: D, actDim: A } = this.ds;
    const scale = this.options.returnScale ?? 1;
    const out: AtBatch = {
      batchSize: B,
      contextSteps: L,
      obsDim: D,
      actDim: A,
      states: new Float32Array(B * L * D),
      actions: new Float32Array(B * L * A),
      rewards: new Float32Array(B * L),
      returnsToGo: new Float32Array(B * L),
      completions: new Uint8Array(B * L),
      timesteps: new Int32Array(B * L),
      trajectoryIndex: new Int32Array(B * L),
      mask: new Uint8Array(B * L),
      numTrajectories: new Int32Array(B),
      chainEpisodes: new Int32Array(B * N).fill(-1),
      targets: new Float64Array(B),
    };
    for (let b = 0; b < B; b++) {
      const n = min + this.rng.int(N - min + 1);
      const chain = this.chain(n);
      const target = this.returns[chain[chain.length - 1]];
      out.numTrajectories[b] = n;
      out.targets[b] = target;
      chain.forEach((e, k) => {
        out.chainEpisodes[b * N + k] = e;
      });
      // Total steps of the chain; keep the last L (drop the oldest), left-pad when shorter.
      let total = 0;
      for (const e of chain) total += this.ds.lengths[e];
      let skip = Math.max(0, total - L);
      let row = b * L + Math.max(0, L - total);
      chain.forEach((e, k) => {
        const T = this.ds.lengths[e];
        const from = Math.min(skip, T);
        skip -= from;
        if (from === T) return;
        // Reward collected before the first kept step, for the return-to-go.
        let before = 0;
        if (from > 0) for (const r of this.ds.rewards(e, 0, from)) before += r;
        const s = this.ds.steps(e, from, T - from);
        const complete = this.returns[e] >= target;
        for (let j = 0; j < T - from; j++, row++) {
          const t = from + j;
          out.mask[row] = 1;
          out.timesteps[row] = t;
          out.trajectoryIndex[row] = k;
          out.rewards[row] = s.rewards[j];
          out.returnsToGo[row] = (target - before) / scale;
          before += s.rewards[j];
          out.completions[row] = complete && t === T - 1 ? 1 : 0;
          out.actions.set(s.actions.subarray(j * A, (j + 1) * A), row * A);
          for (let d = 0; d < D; d++) {
            const x = s.observations[j * D + d];
            out.states[row * D + d] = this.norm ? (x - this.norm.mean[d]) / this.norm.std[d] : x;
          }
        }
      });
    }
    return out;
  }
}
