/**
 * PPO for behaviour policies (issue 6), after CleanRL's `ppo_continuous_action.py` (and `ppo.py`
 * for a discrete head): separate actor and critic MLPs (64-64 tanh, orthogonal init), a Gaussian
 * policy with a state-independent log-std, GAE, the clipped surrogate with an optional clipped
 * value loss, running observation normalisation and reward scaling (CleanRL's
 * NormalizeObservation / NormalizeReward wrappers), minibatch epochs, Adam with linear lr
 * annealing and global-norm gradient clipping. Reads top to bottom:
 *
 *   policy file format · networks · Adam · running stats · trainPpo (rollout → GAE → update) ·
 *   evaluation
 *
 * NOTE: the networks are plain Float64Array code, not tfjs: at 64-wide layers and 64-row
 * minibatches tfjs-wasm's per-op overhead dominates, and plain loops are exactly reproducible from
 * the seed on every backend. The envs step on worker threads (AsyncVectorEnv) while the main thread
 * runs the networks.
 *
 * Vector envs autoreset NEXT_STEP (Gymnasium 1.x): after sub-env i ends at step t, its step t+1
 * is a reset step (action ignored, reward 0). Such steps are stored but masked out of the loss,
 * and since the final observation arrives at the done step, a truncated episode bootstraps from
 * V(final obs) (CleanRL, on Gymnasium 0.x SAME_STEP, treats truncation as termination).
 */
import * as tf from '@tensorflow/tfjs';
import { InputError, Rng } from '../common/index.js';
import { initBackend } from '../native/index.js';
import { Box, Discrete, type EnvSpec, make, makeVec, type VectorEnv } from './envs/index.js';

// ------------------------------------------------------------------------ policy file (JSON)

/** Format tag of a saved policy. */
export const POLICY_FORMAT = 'ring-ppo-policy/1';

/** One dense layer, weights (nIn, nOut) row-major, as little-endian float32 in base64. */
export interface LayerJSON {
  shape: [number, number];
  w: string;
  b: string;
}

/** What a return measurement reports (episode returns, undiscounted). */
export interface ReturnStats {
  episodes: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  meanLength: number;
  returns: number[];
}

/**
 * A saved policy: actor weights, log-std and observation statistics, small enough to live in the
 * repo (a 105-64-64-8 actor is ≈46 KB of float32, ≈61 KB as base64).
 */
export interface PolicyJSON {
  format: typeof POLICY_FORMAT;
  envId: string;
  envKwargs: Record<string, unknown>;
  obsDim: number;
  /**
   * The network sees the first `inputDim` observation values (default all). Ant-v5 behaviour
   * policies use 27: positions and velocities, leaving out the 78 contact forces (see README).
   */
  inputDim?: number;
  action: { type: 'box'; dim: number; low: number[]; high: number[] } | { type: 'discrete'; n: number };
  hidden: number[];
  activation: 'tanh';
  /** Observations are normalised as clip((o − mean) / sqrt(var + eps), ±clip) before the actor. */
  obsNorm: { mean: number[]; var: number[]; count: number; eps: number; clip: number };
  actor: { layers: LayerJSON[]; logStd?: number[] };
  /** The critic is kept only in training checkpoints; behaviour policies leave it out. */
  critic?: { layers: LayerJSON[] };
  training: {
    algorithm: 'ppo';
    envSteps: number;
    updates: number;
    seed: number;
    wallSec: number;
    options: Record<string, unknown>;
    /** Reward-scaling statistics (discounted-return variance), to continue training. */
    returnVar?: number;
    returnCount?: number;
  };
  /** Returns measured on the saved (float32) weights; `deterministic` uses the mean action. */
  evaluation?: {
    seed: number;
    stochastic?: ReturnStats;
    deterministic?: ReturnStats;
    /** D4RL-normalised mean score of the mode named by `datasetMode`, when refs are known. */
    normalizedScore?: number;
    datasetMode?: 'stochastic' | 'deterministic';
    command?: string;
    machine?: string;
  };
  description?: string;
}

function f32ToBase64(a: ArrayLike<number>): string {
  return Buffer.from(new Float32Array(a).buffer).toString('base64');
}

function base64ToF64(s: string, n: number, who: string): Float64Array {
  const buf = Buffer.from(s, 'base64');
  if (buf.length !== 4 * n)
    throw new InputError(`${who}: expected ${n} float32 values; got ${buf.length} bytes`);
  const f32 = new Float32Array(n);
  new Uint8Array(f32.buffer).set(buf);
  return Float64Array.from(f32);
}

// ------------------------------------------------------------------------ networks

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
interface Layer {
  nIn: number;
  nOut: number;
  w: Float64Array; // (nIn, nOut)
  b: Float64Array; // (nOut)
  gw: Float64Array;
  gb: Float64Array;
}

/** Activations kept by the forward pass for backward: h[0] = input, h[l] = output of layer l. */
type Cache = Float64Array[];

/**
 * An MLP with tanh hidden layers and a linear output, over one flat parameter buffer (so Adam and
 * gradient clipping see a single vector). `extra` trailing parameters (the log-std) live in the
 * same buffer.
 */
export class Mlp {
  readonly params: Float64Array;
  readonly grads: Float64Array;
  readonly layers: Layer[] = [];
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
  forward(x: Float64Array, B: number): Cache {
    const cache: Cache = [x];
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
  backward(cache: Cache, dOut: Float64Array, B: number): void {
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

  toJSON(): LayerJSON[] {
    return this.layers.map((L) => ({ shape: [L.nIn, L.nOut], w: f32ToBase64(L.w), b: f32ToBase64(L.b) }));
  }

  loadJSON(layers: LayerJSON[], who: string): void {
    if (layers.length !== this.layers.length)
      throw new InputError(`${who}: expected ${this.layers.length} layers; got ${layers.length}`);
    this.layers.forEach((L, l) => {
      const j = layers[l];
      if (j.shape[0] !== L.nIn || j.shape[1] !== L.nOut)
        throw new InputError(`${who}: layer ${l}: expected shape [${L.nIn}, ${L.nOut}]; got [${j.shape}]`);
      L.w.set(base64ToF64(j.w, L.nIn * L.nOut, `${who}: layer ${l} w`));
      L.b.set(base64ToF64(j.b, L.nOut, `${who}: layer ${l} b`));
    });
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

// ------------------------------------------------------------------------ Adam

/** Adam (PyTorch's, eps added to √v̂) over one flat buffer. */
class Adam {
  readonly m: Float64Array;
  readonly v: Float64Array;
  t = 0;
  constructor(
    readonly n: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly eps = 1e-5,
  ) {
    this.m = new Float64Array(n);
    this.v = new Float64Array(n);
  }
  step(p: Float64Array, g: Float64Array, lr: number): void {
    this.t++;
    const bc1 = 1 - this.beta1 ** this.t;
    const bc2 = 1 - this.beta2 ** this.t;
    for (let k = 0; k < this.n; k++) {
      this.m[k] = this.beta1 * this.m[k] + (1 - this.beta1) * g[k];
      this.v[k] = this.beta2 * this.v[k] + (1 - this.beta2) * g[k] * g[k];
      p[k] -= (lr * (this.m[k] / bc1)) / (Math.sqrt(this.v[k] / bc2) + this.eps);
    }
  }
}

// ------------------------------------------------------------------------ running statistics

/** Running mean/variance over batches (Chan et al.'s parallel update, as gymnasium's). */
export class RunningStats {
  mean: Float64Array;
  var: Float64Array;
  count = 1e-4;
  constructor(readonly size: number) {
    this.mean = new Float64Array(size);
    this.var = new Float64Array(size).fill(1);
  }
  /** Folds in `rows` samples: the first `size` values of each row of x (rows, stride). */
  update(x: ArrayLike<number>, rows: number, stride = this.size): void {
    const n = this.size;
    for (let i = 0; i < n; i++) {
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
}

/**
 * clip((x − mean)/sqrt(var + eps), ±clip) over the first n = mean.length values of each row of
 * x (rows, stride) → (rows, n).
 */
function normalize(
  x: ArrayLike<number>,
  rows: number,
  stride: number,
  s: { mean: ArrayLike<number>; var: ArrayLike<number> },
  eps: number,
  clip: number,
): Float64Array {
  const n = s.mean.length;
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < n; i++) {
      const z = (x[r * stride + i] - s.mean[i]) / Math.sqrt(s.var[i] + eps);
      out[r * n + i] = Math.max(-clip, Math.min(clip, z));
    }
  return out;
}

// ------------------------------------------------------------------------ policy (inference)

const LOG_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);

/**
 * A trained policy for acting: obs normalisation + actor. `act` takes a batch of raw observations
 * (B, obsDim) and returns env actions (B, actDim) clipped to the action box, or (B,) indices.
 */
export class PpoPolicy {
  readonly actor: Mlp;
  readonly obsDim: number;
  readonly inputDim: number;
  readonly discrete: boolean;
  readonly actDim: number;

  constructor(readonly json: PolicyJSON) {
    const who = `PpoPolicy(${json.envId})`;
    if (json.format !== POLICY_FORMAT)
      throw new InputError(`${who}: expected format "${POLICY_FORMAT}"; got ${JSON.stringify(json.format)}`);
    this.obsDim = json.obsDim;
    this.inputDim = json.inputDim ?? json.obsDim;
    if (!Number.isInteger(this.inputDim) || this.inputDim < 1 || this.inputDim > this.obsDim)
      throw new InputError(
        `${who}: inputDim must be an integer in [1, ${this.obsDim}]; got ${json.inputDim}`,
      );
    this.discrete = json.action.type === 'discrete';
    this.actDim = json.action.type === 'discrete' ? 1 : json.action.dim;
    const out = json.action.type === 'discrete' ? json.action.n : json.action.dim;
    this.actor = new Mlp([this.inputDim, ...json.hidden, out], this.discrete ? 0 : out);
    this.actor.loadJSON(json.actor.layers, `${who}: actor`);
    if (!this.discrete) {
      if (json.actor.logStd?.length !== out)
        throw new InputError(
          `${who}: actor.logStd: expected ${out} values; got ${json.actor.logStd?.length}`,
        );
      this.actor.extra.set(json.actor.logStd.map(Math.fround));
    }
    if (json.obsNorm.mean.length !== this.inputDim || json.obsNorm.var.length !== this.inputDim)
      throw new InputError(`${who}: obsNorm: expected mean and var of ${this.inputDim} values`);
  }

  static fromJSONText(text: string, who = 'PpoPolicy'): PpoPolicy {
    let j: PolicyJSON;
    try {
      j = JSON.parse(text) as PolicyJSON;
    } catch (err) {
      throw new InputError(`${who}: not JSON: ${(err as Error).message}`);
    }
    return new PpoPolicy(j);
  }

  /** One-line description, for dataset metadata. */
  describe(stochastic: boolean): string {
    const j = this.json;
    const ev = j.evaluation?.[stochastic ? 'stochastic' : 'deterministic'];
    return `PPO ${j.envId} MLP ${[this.inputDim, ...j.hidden].join('-')} tanh${this.inputDim < j.obsDim ? ` (first ${this.inputDim} of ${j.obsDim} obs values)` : ''}, ${stochastic ? 'stochastic (Gaussian samples)' : 'deterministic (mean action)'}, ${j.training.envSteps} training steps${ev ? `, mean return ${ev.mean.toFixed(1)} ± ${ev.std.toFixed(1)} over ${ev.episodes} episodes` : ''}`;
  }

  /** Actions for raw observations obs (B, obsDim); Gaussian samples from `rng` when stochastic. */
  act(obs: ArrayLike<number>, B: number, stochastic: boolean, rng?: Rng): Float64Array {
    const n = this.json.obsNorm;
    const x = normalize(obs, B, this.obsDim, n, n.eps, n.clip);
    const cache = this.actor.forward(x, B);
    const out = cache[cache.length - 1];
    if (this.discrete) {
      const k = this.actor.outSize;
      const a = new Float64Array(B);
      for (let r = 0; r < B; r++) {
        const logits = out.subarray(r * k, (r + 1) * k);
        a[r] = stochastic ? sampleCategorical(logits, needRng(rng)) : argmax(logits);
      }
      return a;
    }
    const A = this.actDim;
    const { low, high } = this.json.action as { low: number[]; high: number[] };
    const a = new Float64Array(B * A);
    for (let r = 0; r < B; r++)
      for (let i = 0; i < A; i++) {
        let v = out[r * A + i];
        if (stochastic) v += Math.exp(this.actor.extra[i]) * needRng(rng).normal();
        a[r * A + i] = Math.max(low[i], Math.min(high[i], v));
      }
    return a;
  }
}

function needRng(rng: Rng | undefined): Rng {
  if (!rng) throw new Error('PpoPolicy.act: stochastic actions need an rng');
  return rng;
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Softmax of logits into p, returning log Σ exp. */
function softmax(logits: ArrayLike<number>, p: Float64Array): number {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) m = Math.max(m, logits[i]);
  let s = 0;
  for (let i = 0; i < logits.length; i++) {
    p[i] = Math.exp(logits[i] - m);
    s += p[i];
  }
  for (let i = 0; i < logits.length; i++) p[i] /= s;
  return m + Math.log(s);
}

function sampleCategorical(logits: ArrayLike<number>, rng: Rng): number {
  const p = new Float64Array(logits.length);
  softmax(logits, p);
  let u = rng.next();
  for (let i = 0; i < p.length; i++) {
    u -= p[i];
    if (u < 0) return i;
  }
  return p.length - 1;
}

// ------------------------------------------------------------------------ training

export interface PpoOptions {
  /** Registered env id, e.g. 'Ant-v5', 'CartPole-v1'. */
  envId: string;
  envKwargs?: Record<string, unknown>;
  /** Total env steps (all envs together). */
  totalSteps: number;
  seed: number;
  /** Parallel envs; default 4. */
  numEnvs?: number;
  /** Steps per env per rollout; default 512 (batch = numEnvs · numSteps). */
  numSteps?: number;
  /** 'async' (worker threads, default) or 'sync'. */
  vectorization?: 'sync' | 'async';
  numWorkers?: number;
  hidden?: number[];
  /** Adam learning rate, default 3e-4, annealed linearly to 0 over totalSteps when `annealLr`. */
  lr?: number;
  annealLr?: boolean;
  gamma?: number;
  gaeLambda?: number;
  numMinibatches?: number;
  updateEpochs?: number;
  clipCoef?: number;
  clipVloss?: boolean;
  entCoef?: number;
  vfCoef?: number;
  maxGradNorm?: number;
  normAdv?: boolean;
  /** Running observation normalisation (CleanRL NormalizeObservation), clipped to ±10. */
  normObs?: boolean;
  /** Reward scaling by the std of the discounted return (CleanRL NormalizeReward), clipped ±10. */
  normReward?: boolean;
  /** Initial log-std of the Gaussian head; default 0. */
  initLogStd?: number;
  /** Network input: the first `inputDim` observation values; 0 (default) = all. */
  inputDim?: number;
  /**
   * Matrix products of the networks: 'tfjs' (default; float32 on the active tfjs backend, wasm
   * unless another was initialised) or 'js' (plain float64 loops, exact; the gradient tests).
   */
  math?: 'js' | 'tfjs';
  /**
   * Continue from a saved policy that includes its critic (`policyJSON(true)`): weights, obs and
   * return statistics, env-step and update counters (the lr schedule goes on from there). Adam's
   * moments restart at zero and the envs are reset (seeded with seed + updates).
   */
  init?: PolicyJSON;
  /** Called after every update; return 'stop' to end training early. */
  onUpdate?: (u: PpoUpdate, trainer: PpoTrainer) => 'stop' | undefined | Promise<'stop' | undefined>;
  /** Called for every finished training episode (stochastic policy, raw rewards). */
  onEpisode?: (ret: number, length: number, envStep: number) => void;
  signal?: AbortSignal;
}

/** Statistics of one update (CleanRL's logged losses). */
export interface PpoUpdate {
  update: number;
  envStep: number;
  lr: number;
  policyLoss: number;
  valueLoss: number;
  entropy: number;
  approxKl: number;
  clipFrac: number;
  explainedVariance: number;
  /** Mean return of the training episodes finished during this update's rollout (NaN if none). */
  episodeReturn: number;
  stepsPerSec: number;
}

type Required2<T> = { [K in keyof T]-?: T[K] };
type Hyper = Required2<
  Omit<PpoOptions, 'onUpdate' | 'onEpisode' | 'signal' | 'envKwargs' | 'numWorkers' | 'init'>
>;

export const PPO_DEFAULTS: Omit<Hyper, 'envId' | 'totalSteps' | 'seed'> = {
  numEnvs: 4,
  numSteps: 512,
  vectorization: 'async',
  hidden: [64, 64],
  lr: 3e-4,
  annealLr: true,
  gamma: 0.99,
  gaeLambda: 0.95,
  numMinibatches: 32,
  updateEpochs: 10,
  clipCoef: 0.2,
  clipVloss: true,
  entCoef: 0,
  vfCoef: 0.5,
  maxGradNorm: 0.5,
  normAdv: true,
  normObs: true,
  normReward: true,
  initLogStd: 0,
  inputDim: 0,
  math: 'tfjs',
};

const OBS_EPS = 1e-8;
const OBS_CLIP = 10;

/**
 * The training state; `trainPpo` drives it. Exposed so callers can snapshot a policy mid-training
 * (`policyJSON`) or evaluate it.
 */
export class PpoTrainer {
  readonly h: Hyper;
  readonly envKwargs: Record<string, unknown>;
  readonly obsDim: number;
  /** Values of each observation the networks see (the first ones). */
  readonly inDim: number;
  readonly discrete: boolean;
  /** Action values per env step: the box dim, or 1 for Discrete. */
  readonly actDim: number;
  readonly actor: Mlp;
  readonly critic: Mlp;
  readonly obsStats: RunningStats;
  readonly retStats = new RunningStats(1);
  readonly rng: Rng;
  readonly actionSpace: Box | Discrete;
  envStep = 0;
  updates = 0;
  wallSec = 0;
  private readonly adam: Adam;
  private readonly params: Float64Array;
  private readonly grads: Float64Array;

  constructor(readonly options: PpoOptions) {
    const h = { ...PPO_DEFAULTS, ...stripUndefined(options) } as Hyper;
    this.h = h;
    this.envKwargs = options.envKwargs ?? {};
    checkOptions(h);
    const probe = make(h.envId, this.envKwargs) as {
      observationSpace: unknown;
      actionSpace: unknown;
      close(): void;
    };
    const os = probe.observationSpace;
    const as = probe.actionSpace;
    probe.close();
    if (!(os instanceof Box) || os.shape.length !== 1)
      throw new InputError(`trainPpo: ${h.envId}: expected a 1-D Box observation space`);
    if (!(as instanceof Box) && !(as instanceof Discrete))
      throw new InputError(`trainPpo: ${h.envId}: expected a Box or Discrete action space`);
    this.actionSpace = as;
    this.obsDim = os.size;
    this.inDim = h.inputDim || os.size;
    if (!Number.isInteger(this.inDim) || this.inDim < 1 || this.inDim > os.size)
      throw new InputError(`trainPpo: inputDim must be an integer in [0, ${os.size}]; got ${h.inputDim}`);
    this.discrete = as instanceof Discrete;
    this.actDim = as instanceof Box ? as.size : 1;
    const nOut = as instanceof Box ? as.size : as.n;
    this.rng = new Rng(h.seed);
    this.actor = new Mlp([this.inDim, ...h.hidden, nOut], this.discrete ? 0 : nOut);
    this.critic = new Mlp([this.inDim, ...h.hidden, 1]);
    this.actor.initOrthogonal(this.rng, 0.01);
    this.actor.extra.fill(h.initLogStd);
    this.critic.initOrthogonal(this.rng, 1);
    if (h.math === 'tfjs') this.actor.gemm = this.critic.gemm = tfjsGemm;
    this.obsStats = new RunningStats(this.inDim);
    // NOTE: after obsStats exists: load() restores it (`exp run --resume` failed here, issue 21)
    if (options.init) this.load(options.init);
    // One optimiser over actor and critic together, as CleanRL (one loss, one clip norm).
    this.params = new Float64Array(this.actor.params.length + this.critic.params.length);
    this.grads = new Float64Array(this.params.length);
    this.adam = new Adam(this.params.length);
  }

  /** Loads weights, statistics and counters of a saved policy with critic (see PpoOptions.init). */
  load(j: PolicyJSON): void {
    const who = `trainPpo: init (${j.envId})`;
    if (j.envId !== this.h.envId) throw new InputError(`${who}: expected a policy of ${this.h.envId}`);
    if (!j.critic) throw new InputError(`${who}: the policy has no critic (save it with policyJSON(true))`);
    this.actor.loadJSON(j.actor.layers, `${who}: actor`);
    this.critic.loadJSON(j.critic.layers, `${who}: critic`);
    if (j.actor.logStd) this.actor.extra.set(j.actor.logStd);
    this.obsStats.mean.set(j.obsNorm.mean);
    this.obsStats.var.set(j.obsNorm.var);
    this.obsStats.count = j.obsNorm.count;
    this.retStats.var[0] = j.training.returnVar ?? 1;
    this.retStats.count = j.training.returnCount ?? 1e-4;
    this.envStep = j.training.envSteps;
    this.updates = j.training.updates;
    this.wallSec = j.training.wallSec;
  }

  /** Network inputs (rows, inDim) from raw observations (rows, obsDim), normalised. */
  normObs(obs: ArrayLike<number>, rows: number): Float64Array {
    const [D, d] = [this.obsDim, this.inDim];
    return this.h.normObs
      ? normalize(obs, rows, D, this.obsStats, OBS_EPS, OBS_CLIP)
      : Float64Array.from({ length: rows * d }, (_, k) => obs[Math.floor(k / d) * D + (k % d)]);
  }

  /** The policy as a file (actor + obs statistics; the critic too when `withCritic`). */
  policyJSON(withCritic = false): PolicyJSON {
    const h = this.h;
    const as = this.actionSpace;
    const options: Record<string, unknown> = { ...h };
    return {
      format: POLICY_FORMAT,
      envId: h.envId,
      envKwargs: this.envKwargs,
      obsDim: this.obsDim,
      ...(this.inDim < this.obsDim ? { inputDim: this.inDim } : {}),
      action:
        as instanceof Box
          ? { type: 'box', dim: as.size, low: Array.from(as.low), high: Array.from(as.high) }
          : { type: 'discrete', n: as.n },
      hidden: h.hidden,
      activation: 'tanh',
      obsNorm: h.normObs
        ? {
            mean: Array.from(this.obsStats.mean, Math.fround),
            var: Array.from(this.obsStats.var, Math.fround),
            count: this.obsStats.count,
            eps: OBS_EPS,
            clip: OBS_CLIP,
          }
        : {
            mean: new Array(this.inDim).fill(0),
            var: new Array(this.inDim).fill(1 - OBS_EPS),
            count: 0,
            eps: OBS_EPS,
            clip: Number.MAX_VALUE,
          },
      actor: {
        layers: this.actor.toJSON(),
        ...(this.discrete ? {} : { logStd: Array.from(this.actor.extra, Math.fround) }),
      },
      ...(withCritic ? { critic: { layers: this.critic.toJSON() } } : {}),
      training: {
        algorithm: 'ppo',
        envSteps: this.envStep,
        updates: this.updates,
        seed: h.seed,
        wallSec: Math.round(this.wallSec),
        options,
        returnVar: this.retStats.var[0],
        returnCount: this.retStats.count,
      },
    };
  }

  /** One clipped-PPO minibatch step; returns [pgLoss, vLoss, entropy, approxKl, clipFrac]. */
  minibatch(mb: MinibatchData, lr: number): [number, number, number, number, number] {
    const { obs, actions, logp: oldLogp, adv, returns, values: oldV } = mb;
    const B = mb.size;
    const h = this.h;
    this.actor.grads.fill(0);
    this.critic.grads.fill(0);
    // Advantages normalised per minibatch (CleanRL).
    const a = Float64Array.from(adv);
    if (h.normAdv && B > 1) {
      let m = 0;
      for (const x of a) m += x;
      m /= B;
      let v = 0;
      for (const x of a) v += (x - m) ** 2;
      const sd = Math.sqrt(v / (B - 1)); // torch .std() is unbiased
      for (let r = 0; r < B; r++) a[r] = (a[r] - m) / (sd + 1e-8);
    }

    // Actor: new log-probabilities and entropy.
    const ac = this.actor.forward(obs, B);
    const out = ac[ac.length - 1]; // (B, A) means or (B, n) logits
    const K = this.actor.outSize;
    const newLogp = new Float64Array(B);
    let entropy = 0;
    const probs = new Float64Array(B * (this.discrete ? K : 0)); // (B, n)
    const logStd = this.actor.extra;
    if (this.discrete) {
      for (let r = 0; r < B; r++) {
        const p = probs.subarray(r * K, (r + 1) * K);
        const lse = softmax(out.subarray(r * K, (r + 1) * K), p);
        newLogp[r] = out[r * K + actions[r]] - lse;
        for (let k = 0; k < K; k++) if (p[k] > 0) entropy -= p[k] * Math.log(p[k]);
      }
      entropy /= B;
    } else {
      for (let r = 0; r < B; r++) {
        let lp = 0;
        for (let i = 0; i < K; i++) {
          const z = (actions[r * K + i] - out[r * K + i]) / Math.exp(logStd[i]);
          lp += -0.5 * z * z - logStd[i] - LOG_SQRT_2PI;
        }
        newLogp[r] = lp;
      }
      for (let i = 0; i < K; i++) entropy += 0.5 + LOG_SQRT_2PI + logStd[i];
    }

    // Clipped surrogate: L = mean(max(−A·ρ, −A·clip(ρ, 1 ± ε))); dL/dlogπ = −A·ρ/B where the
    // unclipped term is the max, else 0.
    let pgLoss = 0;
    let kl = 0;
    let clipped = 0;
    const dLogp = new Float64Array(B);
    for (let r = 0; r < B; r++) {
      const logRatio = newLogp[r] - oldLogp[r];
      const ratio = Math.exp(logRatio);
      const pg1 = -a[r] * ratio;
      const pg2 = -a[r] * Math.max(1 - h.clipCoef, Math.min(1 + h.clipCoef, ratio));
      pgLoss += Math.max(pg1, pg2);
      if (pg1 >= pg2) dLogp[r] = (-a[r] * ratio) / B;
      kl += ratio - 1 - logRatio;
      if (Math.abs(ratio - 1) > h.clipCoef) clipped++;
    }
    pgLoss /= B;

    // Backprop the policy loss − entCoef·entropy into the actor output (and log-std).
    const dOut = new Float64Array(B * K);
    if (this.discrete) {
      for (let r = 0; r < B; r++) {
        const p = probs.subarray(r * K, (r + 1) * K);
        let H = 0;
        for (let k = 0; k < K; k++) if (p[k] > 0) H -= p[k] * Math.log(p[k]);
        for (let k = 0; k < K; k++) {
          // dlogπ(a)/dz_k = 1[k = a] − p_k; dH/dz_k = −p_k (log p_k + H)
          const dlp = (k === actions[r] ? 1 : 0) - p[k];
          const dH = p[k] > 0 ? -p[k] * (Math.log(p[k]) + H) : 0;
          dOut[r * K + k] = dLogp[r] * dlp - (h.entCoef * dH) / B;
        }
      }
    } else {
      for (let r = 0; r < B; r++)
        for (let i = 0; i < K; i++) {
          const sd = Math.exp(logStd[i]);
          const z = (actions[r * K + i] - out[r * K + i]) / sd;
          dOut[r * K + i] = (dLogp[r] * z) / sd; // dlogπ/dμ = (a − μ)/σ²
          this.actor.gextra[i] += dLogp[r] * (z * z - 1); // dlogπ/dlogσ = z² − 1
        }
      for (let i = 0; i < K; i++) this.actor.gextra[i] -= h.entCoef; // dH/dlogσ = 1
    }
    this.actor.backward(ac, dOut, B);

    // Critic: 0.5·mean(max((v − R)², (v_old + clip(v − v_old, ±ε) − R)²)) when clipVloss.
    const cc = this.critic.forward(obs, B);
    const v = cc[cc.length - 1]; // (B, 1)
    let vLoss = 0;
    const dV = new Float64Array(B);
    for (let r = 0; r < B; r++) {
      const e1 = v[r] - returns[r];
      if (h.clipVloss) {
        const dv = v[r] - oldV[r];
        const inRange = Math.abs(dv) <= h.clipCoef;
        const e2 = oldV[r] + Math.max(-h.clipCoef, Math.min(h.clipCoef, dv)) - returns[r];
        if (e1 * e1 >= e2 * e2) {
          vLoss += e1 * e1;
          dV[r] = e1;
        } else {
          vLoss += e2 * e2;
          dV[r] = inRange ? e2 : 0;
        }
      } else {
        vLoss += e1 * e1;
        dV[r] = e1;
      }
      dV[r] *= h.vfCoef / B; // d(0.5 vfCoef e²/B)/dv
    }
    vLoss = (0.5 * vLoss) / B;
    this.critic.backward(cc, dV, B);

    // Global-norm clipping over both networks, then one Adam step.
    this.grads.set(this.actor.grads, 0);
    this.grads.set(this.critic.grads, this.actor.grads.length);
    let norm = 0;
    for (const g of this.grads) norm += g * g;
    norm = Math.sqrt(norm);
    if (norm > h.maxGradNorm) {
      const s = h.maxGradNorm / (norm + 1e-6);
      for (let k = 0; k < this.grads.length; k++) this.grads[k] *= s;
    }
    this.params.set(this.actor.params, 0);
    this.params.set(this.critic.params, this.actor.params.length);
    this.adam.step(this.params, this.grads, lr);
    this.actor.params.set(this.params.subarray(0, this.actor.params.length));
    this.critic.params.set(this.params.subarray(this.actor.params.length));
    return [pgLoss, vLoss, entropy, kl / B, clipped / B];
  }
}

/** One minibatch: rows of the rollout buffer. */
export interface MinibatchData {
  size: number;
  obs: Float64Array; // (B, obsDim), normalised
  actions: Float64Array; // (B, actDim) or (B,)
  logp: Float64Array; // (B,)
  adv: Float64Array; // (B,)
  returns: Float64Array; // (B,)
  values: Float64Array; // (B,)
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function checkOptions(h: Hyper): void {
  const posInt = ['totalSteps', 'numEnvs', 'numSteps', 'numMinibatches', 'updateEpochs'] as const;
  for (const k of posInt)
    if (!Number.isInteger(h[k]) || h[k] < 1)
      throw new InputError(`trainPpo: ${k} must be a positive integer; got ${String(h[k])}`);
  if (!Number.isInteger(h.seed) || h.seed < 0)
    throw new InputError(`trainPpo: seed must be a non-negative integer; got ${String(h.seed)}`);
  if (h.numEnvs * h.numSteps < h.numMinibatches)
    throw new InputError(
      `trainPpo: batch numEnvs·numSteps = ${h.numEnvs * h.numSteps} is smaller than numMinibatches = ${h.numMinibatches}`,
    );
}

export interface PpoResult {
  trainer: PpoTrainer;
  policy: PolicyJSON;
  /** Every training episode: [env step at its end, return, length]. */
  episodes: [number, number, number][];
  stopped: 'done' | 'early' | 'aborted';
}

/**
 * Trains a PPO policy. Deterministic given `seed` (network init, action noise and minibatch order
 * come from one seeded Rng; envs are seeded seed, seed+1, …).
 */
export async function trainPpo(options: PpoOptions): Promise<PpoResult> {
  if ((options.math ?? PPO_DEFAULTS.math) === 'tfjs') await initBackend({ notice: false });
  const tr = new PpoTrainer(options);
  const h = tr.h;
  const [E, T, D, A] = [h.numEnvs, h.numSteps, tr.inDim, tr.actDim]; // D: network input size
  const N = E * T;
  const envs: VectorEnv = makeVec(h.envId, E, {
    vectorizationMode: h.vectorization,
    kwargs: tr.envKwargs,
    numWorkers: options.numWorkers,
  });
  const episodes: [number, number, number][] = [];
  let stopped: PpoResult['stopped'] = 'done';
  try {
    // Rollout buffer, row t·E + i for step t of env i.
    const bObs = new Float64Array(N * D); // (T, E, D), normalised at collection time
    const bAct = new Float64Array(N * A); // (T, E, A) unclipped samples
    const bLogp = new Float64Array(N);
    const bVal = new Float64Array(N);
    const bRew = new Float64Array(N); // scaled rewards
    const bTerm = new Uint8Array(N);
    const bDone = new Uint8Array(N);
    const bValid = new Uint8Array(N); // 0 on NEXT_STEP reset steps
    const bAdv = new Float64Array(N);
    const bRet = new Float64Array(N);

    let [rawObs] = envs.reset({ seed: h.seed + tr.updates });
    const pendingReset = new Uint8Array(E);
    const epRet = new Float64Array(E);
    const epLen = new Int32Array(E);
    const discRet = new Float64Array(E); // discounted return, for reward scaling
    const numUpdates = Math.ceil(h.totalSteps / N);
    const wall0 = tr.wallSec;
    const K = tr.actor.outSize;
    const t0 = Date.now();
    const sd = new Float64Array(K);
    const probs = new Float64Array(K);

    for (let update = tr.updates + 1; update <= numUpdates; update++) {
      if (options.signal?.aborted) {
        stopped = 'aborted';
        break;
      }
      const tu = Date.now();
      const lr = h.annealLr ? (1 - (update - 1) / numUpdates) * h.lr : h.lr;
      const rolloutReturns: number[] = [];
      for (let i = 0; i < K && !tr.discrete; i++) sd[i] = Math.exp(tr.actor.extra[i]);

      // ---- rollout: T steps of E envs
      for (let t = 0; t < T; t++) {
        if (h.normObs) tr.obsStats.update(rawObs, E, tr.obsDim);
        const x = tr.normObs(rawObs, E); // (E, D)
        bObs.set(x, t * E * D);
        const ac = tr.actor.forward(x, E);
        const out = ac[ac.length - 1];
        const cv = tr.critic.forward(x, E);
        const v = cv[cv.length - 1];
        const envAct = tr.discrete ? new Int32Array(E) : new Float32Array(E * A);
        for (let i = 0; i < E; i++) {
          const row = t * E + i;
          bVal[row] = v[i];
          if (tr.discrete) {
            const logits = out.subarray(i * K, (i + 1) * K);
            const lse = softmax(logits, probs);
            const act = sampleCategorical(logits, tr.rng);
            bAct[row] = act;
            bLogp[row] = logits[act] - lse;
            envAct[i] = act;
          } else {
            let lp = 0;
            const box = tr.actionSpace as Box;
            for (let j = 0; j < A; j++) {
              const eps = tr.rng.normal();
              const act = out[i * A + j] + sd[j] * eps;
              bAct[row * A + j] = act;
              lp += -0.5 * eps * eps - tr.actor.extra[j] - LOG_SQRT_2PI;
              envAct[i * A + j] = Math.max(box.low[j], Math.min(box.high[j], act)); // ClipAction
            }
            bLogp[row] = lp;
          }
        }
        const [nextObs, rewards, terms, truncs] = envs.step(envAct);
        tr.envStep += E;
        for (let i = 0; i < E; i++) {
          const row = t * E + i;
          const valid = pendingReset[i] === 0;
          bValid[row] = valid ? 1 : 0;
          const done = terms[i] || truncs[i];
          bTerm[row] = terms[i] ? 1 : 0;
          bDone[row] = done ? 1 : 0;
          let r = rewards[i];
          if (valid) {
            epRet[i] += r;
            epLen[i]++;
            if (h.normReward) {
              discRet[i] = discRet[i] * h.gamma + r;
              tr.retStats.update([discRet[i]], 1);
              r = Math.max(-10, Math.min(10, r / Math.sqrt(tr.retStats.var[0] + OBS_EPS)));
            }
          }
          bRew[row] = valid ? r : 0;
          if (valid && done) {
            episodes.push([tr.envStep, epRet[i], epLen[i]]);
            rolloutReturns.push(epRet[i]);
            options.onEpisode?.(epRet[i], epLen[i], tr.envStep);
            epRet[i] = 0;
            epLen[i] = 0;
            discRet[i] = 0;
          }
          pendingReset[i] = valid && done ? 1 : 0;
        }
        rawObs = nextObs;
      }

      // ---- GAE (Schulman et al. 2016), masked at NEXT_STEP reset steps
      if (h.normObs) tr.obsStats.update(rawObs, E, tr.obsDim);
      const xLast = tr.normObs(rawObs, E);
      const cLast = tr.critic.forward(xLast, E);
      const vLast = cLast[cLast.length - 1];
      computeGae(
        {
          numEnvs: E,
          numSteps: T,
          gamma: h.gamma,
          gaeLambda: h.gaeLambda,
          rewards: bRew,
          values: bVal,
          lastValues: vLast,
          terminated: bTerm,
          done: bDone,
          valid: bValid,
        },
        bAdv,
      );
      const validRows: number[] = [];
      for (let row = 0; row < N; row++) {
        bRet[row] = bAdv[row] + bVal[row];
        if (bValid[row]) validRows.push(row);
      }

      // ---- update: epochs over shuffled minibatches of the valid rows
      const M = validRows.length;
      const mbSize = Math.max(1, Math.floor(M / h.numMinibatches));
      const idx = Int32Array.from(validRows);
      const sums = [0, 0, 0, 0, 0];
      let count = 0;
      for (let epoch = 0; epoch < h.updateEpochs; epoch++) {
        for (let k = M - 1; k > 0; k--) {
          const j = tr.rng.int(k + 1);
          [idx[k], idx[j]] = [idx[j], idx[k]];
        }
        for (let start = 0; start + mbSize <= M; start += mbSize) {
          const mb = gatherMinibatch(
            idx.subarray(start, start + mbSize),
            D,
            A,
            bObs,
            bAct,
            bLogp,
            bAdv,
            bRet,
            bVal,
          );
          const s = tr.minibatch(mb, lr);
          for (let q = 0; q < 5; q++) sums[q] += s[q];
          count++;
        }
      }
      let varY = 0;
      let varRes = 0;
      let meanY = 0;
      for (const row of validRows) meanY += bRet[row];
      meanY /= Math.max(1, M);
      for (const row of validRows) {
        varY += (bRet[row] - meanY) ** 2;
        varRes += (bRet[row] - bVal[row]) ** 2;
      }
      tr.updates = update;
      tr.wallSec = wall0 + (Date.now() - t0) / 1000;
      const stats: PpoUpdate = {
        update,
        envStep: tr.envStep,
        lr,
        policyLoss: sums[0] / count,
        valueLoss: sums[1] / count,
        entropy: sums[2] / count,
        approxKl: sums[3] / count,
        clipFrac: sums[4] / count,
        explainedVariance: varY === 0 ? Number.NaN : 1 - varRes / varY,
        episodeReturn: rolloutReturns.length
          ? rolloutReturns.reduce((x, y) => x + y, 0) / rolloutReturns.length
          : Number.NaN,
        stepsPerSec: N / ((Date.now() - tu) / 1000),
      };
      if ((await options.onUpdate?.(stats, tr)) === 'stop') {
        stopped = 'early';
        break;
      }
    }
  } finally {
    envs.close();
  }
  return { trainer: tr, policy: tr.policyJSON(), episodes, stopped };
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

function gatherMinibatch(
  rows: Int32Array,
  D: number,
  A: number,
  obs: Float64Array,
  act: Float64Array,
  logp: Float64Array,
  adv: Float64Array,
  ret: Float64Array,
  val: Float64Array,
): MinibatchData {
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
    mb.obs.set(obs.subarray(row * D, (row + 1) * D), r * D);
    mb.actions.set(act.subarray(row * A, (row + 1) * A), r * A);
    mb.logp[r] = logp[row];
    mb.adv[r] = adv[row];
    mb.returns[r] = ret[row];
    mb.values[r] = val[row];
  });
  return mb;
}

// ------------------------------------------------------------------------ evaluation

export interface EvaluateOptions {
  episodes: number;
  /** Episode k is reset with seed + k; the action noise Rng is seeded with `seed` too. */
  seed: number;
  stochastic: boolean;
  /** Overrides the env's time limit (tests use shorter episodes). */
  maxEpisodeSteps?: number;
  signal?: AbortSignal;
}

/** Summary statistics of a list of returns. */
export function returnStats(returns: number[], lengths: number[]): ReturnStats {
  const n = returns.length;
  const mean = returns.reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(returns.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  return {
    episodes: n,
    mean,
    std,
    min: Math.min(...returns),
    max: Math.max(...returns),
    meanLength: lengths.reduce((a, b) => a + b, 0) / n,
    returns,
  };
}

/**
 * Rolls a policy out for `episodes` episodes on one env (its own `envId`/`envKwargs`) and returns
 * the undiscounted returns. Deterministic given the seed.
 */
export function evaluatePolicy(policy: PpoPolicy, o: EvaluateOptions): ReturnStats {
  if (!Number.isInteger(o.episodes) || o.episodes < 1)
    throw new InputError(`evaluatePolicy: episodes must be a positive integer; got ${o.episodes}`);
  const env = make(
    policy.json.envId,
    policy.json.envKwargs,
    o.maxEpisodeSteps !== undefined ? { maxEpisodeSteps: o.maxEpisodeSteps } : {},
  ) as {
    reset(a: { seed?: number }): [ArrayLike<number>, unknown];
    step(a: unknown): [ArrayLike<number>, number, boolean, boolean, unknown];
    close(): void;
    spec?: EnvSpec;
  };
  const rng = new Rng(o.seed);
  const returns: number[] = [];
  const lengths: number[] = [];
  try {
    for (let k = 0; k < o.episodes && !o.signal?.aborted; k++) {
      let [obs] = env.reset({ seed: o.seed + k });
      let ret = 0;
      let len = 0;
      for (;;) {
        const a = policy.act(obs, 1, o.stochastic, rng);
        const action = policy.discrete ? a[0] : Float32Array.from(a);
        const [next, r, term, trunc] = env.step(action);
        ret += r;
        len++;
        obs = next;
        if (term || trunc) break;
      }
      returns.push(ret);
      lengths.push(len);
    }
  } finally {
    env.close();
  }
  return returnStats(returns, lengths);
}
