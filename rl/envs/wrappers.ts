/**
 * Wrappers, as Gymnasium 1.x's: TimeLimit, OrderEnforcing, RecordEpisodeStatistics,
 * NormalizeObservation, ClipAction and RescaleAction.
 */
import { type Env, type Info, type ResetArgs, type StepResult, Wrapper } from './core.js';
import { InvalidAction, InvalidArgument, ResetNeeded } from './errors.js';
import { Box, type Space } from './spaces.js';

function requireBox(space: Space, who: string, what: string): Box {
  if (!(space instanceof Box))
    throw new InvalidArgument(`${who}: expected a Box ${what} space; got ${space.toString()}`);
  return space;
}

/** Truncates an episode after `maxEpisodeSteps` steps (`truncated = true`, `terminated` untouched). */
export class TimeLimit<Obs, Act> extends Wrapper<Obs, Act> {
  private elapsed = 0;
  constructor(
    env: Env<Obs, Act>,
    readonly maxEpisodeSteps: number,
  ) {
    super(env);
    if (!Number.isInteger(maxEpisodeSteps) || maxEpisodeSteps < 1)
      throw new InvalidArgument(
        `TimeLimit: maxEpisodeSteps must be a positive integer; got ${maxEpisodeSteps}`,
      );
    if (this.spec) this.spec = { ...this.spec, maxEpisodeSteps };
  }
  /** Steps taken in the current episode. */
  get elapsedSteps(): number {
    return this.elapsed;
  }
  override reset(args: ResetArgs = {}): [Obs, Info] {
    this.elapsed = 0;
    return this.env.reset(args);
  }
  override step(action: Act): StepResult<Obs> {
    const [obs, reward, terminated, truncated, info] = this.env.step(action);
    this.elapsed += 1;
    return [obs, reward, terminated, truncated || this.elapsed >= this.maxEpisodeSteps, info];
  }
}

/**
 * Enforces the call order: `step` needs a `reset` first (Gymnasium's OrderEnforcing raises
 * ResetNeeded), and — stricter than Gymnasium, which only warns or carries on — `step` after an
 * episode ended (terminated or truncated) needs a new `reset` too (issue 4).
 */
export class OrderEnforcing<Obs, Act> extends Wrapper<Obs, Act> {
  private state: 'needs-reset' | 'running' | 'ended' = 'needs-reset';
  override reset(args: ResetArgs = {}): [Obs, Info] {
    const out = this.env.reset(args);
    this.state = 'running';
    return out;
  }
  override step(action: Act): StepResult<Obs> {
    if (this.state === 'needs-reset')
      throw new ResetNeeded(`${this.name}: cannot call step() before calling reset()`);
    if (this.state === 'ended')
      throw new ResetNeeded(
        `${this.name}: cannot call step() after the episode ended (terminated or truncated); call reset() first`,
      );
    const out = this.env.step(action);
    if (out[2] || out[3]) this.state = 'ended';
    return out;
  }
  /** Whether `reset` has been called since construction. */
  get hasReset(): boolean {
    return this.state !== 'needs-reset';
  }
}

/** Episode statistics put into `info.episode` at the end of each episode (Gymnasium's keys). */
export interface EpisodeStatistics {
  /** Return: the sum of rewards. */
  r: number;
  /** Length in steps. */
  l: number;
  /** Wall time since the reset, seconds (rounded to µs as Gymnasium). */
  t: number;
}

/** Adds `info.episode = { r, l, t }` on the last step and keeps the last `bufferLength` of each. */
export class RecordEpisodeStatistics<Obs, Act> extends Wrapper<Obs, Act> {
  readonly returnQueue: number[] = [];
  readonly lengthQueue: number[] = [];
  readonly timeQueue: number[] = [];
  episodeCount = 0;
  private episodeReturn = 0;
  private episodeLength = 0;
  private startTime = performance.now();
  constructor(
    env: Env<Obs, Act>,
    readonly bufferLength = 100,
  ) {
    super(env);
  }
  override reset(args: ResetArgs = {}): [Obs, Info] {
    const out = this.env.reset(args);
    this.episodeReturn = 0;
    this.episodeLength = 0;
    this.startTime = performance.now();
    return out;
  }
  override step(action: Act): StepResult<Obs> {
    const [obs, reward, terminated, truncated, info] = this.env.step(action);
    this.episodeReturn += reward;
    this.episodeLength += 1;
    if (terminated || truncated) {
      if ('episode' in info) throw new InvalidArgument(`${this.name}: info already has an "episode" key`);
      const t = Math.round((performance.now() - this.startTime) * 1e3) / 1e6;
      const episode: EpisodeStatistics = { r: this.episodeReturn, l: this.episodeLength, t };
      this.episodeCount += 1;
      for (const [q, v] of [
        [this.returnQueue, episode.r],
        [this.lengthQueue, episode.l],
        [this.timeQueue, episode.t],
      ] as const) {
        q.push(v);
        if (q.length > this.bufferLength) q.shift();
      }
      return [obs, reward, terminated, truncated, { ...info, episode }];
    }
    return [obs, reward, terminated, truncated, info];
  }
}

/**
 * Running mean and variance with Chan et al.'s parallel update, as Gymnasium's RunningMeanStd
 * (mean 0, var 1, count 1e-4 at the start).
 */
export class RunningMeanStd {
  mean: Float64Array;
  var: Float64Array;
  count = 1e-4;
  constructor(readonly size: number) {
    this.mean = new Float64Array(size);
    this.var = new Float64Array(size).fill(1);
  }
  /**
   * Folds in one sample of `size` values. NOTE: the batch update at rows = 1 (batch mean x, batch
   * variance 0); the same arithmetic, so results are bit-identical to the one-sample formula.
   */
  update(x: ArrayLike<number>): void {
    this.updateBatch(x, 1);
  }
  /**
   * Folds in a batch of `rows` samples: the first `size` values of each row of x (rows, stride),
   * as Gymnasium's `update(batch)` (PPO's observation statistics take one row per env).
   */
  updateBatch(x: ArrayLike<number>, rows: number, stride = this.size): void {
    for (let i = 0; i < this.size; i++) {
      let m = 0;
      for (let r = 0; r < rows; r++) m += x[r * stride + i];
      m /= rows;
      let v = 0;
      for (let r = 0; r < rows; r++) v += (x[r * stride + i] - m) ** 2;
      v /= rows;
      const total = this.count + rows;
      const delta = m - this.mean[i];
      this.mean[i] += (delta * rows) / total;
      this.var[i] =
        (this.var[i] * this.count + v * rows + (delta * delta * this.count * rows) / total) / total;
    }
    this.count += rows;
  }
  toJSON(): { mean: number[]; var: number[]; count: number } {
    return { mean: Array.from(this.mean), var: Array.from(this.var), count: this.count };
  }
  static fromJSON(j: { mean: number[]; var: number[]; count: number }): RunningMeanStd {
    const r = new RunningMeanStd(j.mean.length);
    r.mean.set(j.mean);
    r.var.set(j.var);
    r.count = j.count;
    return r;
  }
}

/**
 * Normalises observations to (obs − mean) / sqrt(var + ε) with running statistics, returned as
 * float32 (Gymnasium's observation space becomes Box(−inf, inf, float32)). Set
 * `updateRunningMean = false` to freeze the statistics for evaluation.
 */
export class NormalizeObservation<Act> extends Wrapper<Float32Array, Act, ArrayLike<number>, Act> {
  readonly obsRms: RunningMeanStd;
  /** When false the statistics are frozen (evaluation). */
  updateRunningMean = true;
  private readonly space: Box;
  constructor(
    env: Env<ArrayLike<number>, Act>,
    readonly epsilon = 1e-8,
  ) {
    super(env);
    const inner = requireBox(env.observationSpace, 'NormalizeObservation', 'observation');
    this.obsRms = new RunningMeanStd(inner.size);
    this.space = new Box(-Infinity, Infinity, inner.shape, 'float32');
  }
  override get observationSpace(): Space {
    return this.space;
  }
  /** Replaces the statistics (e.g. the training run's, for evaluation) and freezes them. */
  freeze(stats?: RunningMeanStd): void {
    if (stats) {
      if (stats.size !== this.obsRms.size)
        throw new InvalidArgument(
          `NormalizeObservation.freeze: statistics of size ${stats.size}; expected ${this.obsRms.size}`,
        );
      this.obsRms.mean.set(stats.mean);
      this.obsRms.var.set(stats.var);
      this.obsRms.count = stats.count;
    }
    this.updateRunningMean = false;
  }
  private normalize(obs: ArrayLike<number>): Float32Array {
    if (this.updateRunningMean) this.obsRms.update(obs);
    const { mean, var: v } = this.obsRms;
    const out = new Float32Array(this.obsRms.size);
    for (let i = 0; i < out.length; i++) out[i] = (obs[i] - mean[i]) / Math.sqrt(v[i] + this.epsilon);
    return out;
  }
  override reset(args: ResetArgs = {}): [Float32Array, Info] {
    const [obs, info] = this.env.reset(args);
    return [this.normalize(obs), info];
  }
  override step(action: Act): StepResult<Float32Array> {
    const [obs, reward, terminated, truncated, info] = this.env.step(action);
    return [this.normalize(obs), reward, terminated, truncated, info];
  }
}

/** Clips actions into the env's Box; the wrapper's action space is Box(−inf, inf) (Gymnasium 1.x). */
export class ClipAction<Obs> extends Wrapper<Obs, ArrayLike<number>> {
  private readonly inner: Box;
  private readonly space: Box;
  constructor(env: Env<Obs, ArrayLike<number>>) {
    super(env);
    this.inner = requireBox(env.actionSpace, 'ClipAction', 'action');
    this.space = new Box(-Infinity, Infinity, this.inner.shape, this.inner.dtype);
  }
  override get actionSpace(): Space {
    return this.space;
  }
  override step(action: ArrayLike<number>): StepResult<Obs> {
    const { low, high } = this.inner;
    const out = new Float64Array(action.length);
    // NaN stays NaN, so the env still rejects it.
    for (let i = 0; i < action.length; i++) out[i] = Math.min(Math.max(action[i], low[i]), high[i]);
    return this.env.step(out);
  }
}

/**
 * Affinely maps actions from [minAction, maxAction] to the env's [low, high] (both bounded), then
 * clips to [low, high] against rounding, as Gymnasium's RescaleAction.
 */
export class RescaleAction<Obs> extends Wrapper<Obs, ArrayLike<number>> {
  private readonly inner: Box;
  private readonly space: Box;
  constructor(
    env: Env<Obs, ArrayLike<number>>,
    minAction: number | ArrayLike<number>,
    maxAction: number | ArrayLike<number>,
  ) {
    super(env);
    this.inner = requireBox(env.actionSpace, 'RescaleAction', 'action');
    if (!this.inner.isBounded())
      throw new InvalidArgument(
        `RescaleAction: the env's action space must be bounded; got ${this.inner.toString()}`,
      );
    this.space = new Box(minAction, maxAction, this.inner.shape, this.inner.dtype);
    for (let i = 0; i < this.space.size; i++)
      if (
        !(this.space.low[i] < this.space.high[i]) ||
        !Number.isFinite(this.space.high[i] - this.space.low[i])
      )
        throw new InvalidArgument(
          `RescaleAction: need finite minAction < maxAction; got [${this.space.low[i]}, ${this.space.high[i]}] at ${i}`,
        );
  }
  override get actionSpace(): Space {
    return this.space;
  }
  override step(action: ArrayLike<number>): StepResult<Obs> {
    const why = this.space.explain(action);
    // Report against the space the caller sees, not the env's.
    if (why !== null)
      throw new InvalidAction(`${this.name}.step: action not in ${this.space.toString()}: ${why}`);
    const { low, high } = this.inner;
    const { low: a, high: b } = this.space;
    const out = new Float64Array(action.length);
    for (let i = 0; i < action.length; i++) {
      const v = low[i] + (high[i] - low[i]) * ((action[i] - a[i]) / (b[i] - a[i]));
      out[i] = Math.min(Math.max(v, low[i]), high[i]);
    }
    return this.env.step(out);
  }
}
