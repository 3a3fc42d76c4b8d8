/**
 * The native kernels (issue 7, path 2): `native/`, a Node-API addon with a fused blockwise
 * attention kernel (forward and backward) and an AVX2/FMA sgemm, built by
 * scripts/build-native.mjs during `npm run build` / `npm ci`. ring/attention/kernels.ts and
 * ops.ts `matmul` use it when it loads; the tfjs kernels stay the reference and the fallback.
 *
 * Selection: on by default when the addon loads; off with `RING_NATIVE=0`, or
 * `configureNative({ enabled: false })` / `initBackend({ native: false })`. Where the addon is
 * missing or does not load, the main thread prints ONE notice line and everything runs on tfjs.
 *
 * Threads: each call runs on `nativeThreads()` OS threads (the caller included).
 * `RING_NATIVE_THREADS` or `configureNative({ threads })` sets it; by default a process's C
 * cores are shared by its N ring devices (worker threads in one process, cluster/device/), so
 * each gets ⌊C / N⌋ (at least 1) and N devices never oversubscribe the cores.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { InputError } from '../common/index.js';

/** The addon's functions (native/src/ring_native.cc documents each). */
export interface NativeAddon {
  /** 'avx512f+avx2+fma' where built for AVX-512, 'avx2+fma', or 'scalar' without AVX2. */
  simd(): string;
  /** The calling convention's revision (ADDON_ABI: the one this code speaks). */
  abi(): number;
  /**
   * How long (µs) the process's helper threads poll for the next parallel call before parking,
   * and a caller for its helpers before waiting; sets it when given, returns the value before.
   * Default `RING_NATIVE_SPIN_US`, else the addon's own. Optional: older builds lack it.
   */
  helperSpin?(micros?: number): number;
  /** c (M, N) = op(a) · op(b); a (M, K) or (K, M) when transA; b (K, N) or (N, K) when transB. */
  sgemm(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    M: number,
    N: number,
    K: number,
    transA: boolean,
    transB: boolean,
    threads: number,
  ): void;
  /**
   * Online-softmax update of o (B, H, Tq, D), m, l (B, H, Tq) by one k, v chunk (B, Hk, Tk, D).
   * With `lse` (B, H, Tq) the chunk is the last: o ends normalised and lse filled, as after
   * attnFinalize, each query tile while it is in cache (m, l are then left unfinished).
   */
  attnForward(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    o: Float32Array,
    m: Float32Array,
    l: Float32Array,
    ...geometryAndLse: [...AttentionGeometryArgs, lse?: Float32Array | null]
  ): void;
  /** Adds one chunk's gradients into dq (B, H, Tq, D), dk, dv (B, Hk, Tk, D). */
  attnBackward(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    dOut: Float32Array,
    lse: Float32Array,
    delta: Float32Array,
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
    ...geometry: AttentionGeometryArgs
  ): void;
  /** y[i] = exp(x[i]) for i < n (IEEE edges: ±inf, NaN). */
  exp(x: Float32Array, y: Float32Array, n: number, threads: number): void;
  /** y[i] = tanh(x[i]) for i < n (relative error ≈ 1e-7 near 0; NaN kept). */
  tanh(x: Float32Array, y: Float32Array, n: number, threads: number): void;
  /**
   * dst (rows, width) = Σ_k [ids[k] = r] · src[k, :] over k < n, dst overwritten: the gradient of
   * gathering rows of a (rows, width) table at `ids`. Throws on an id outside 0 … rows − 1.
   */
  scatterAddRows(
    ids: Int32Array,
    src: Float32Array,
    dst: Float32Array,
    n: number,
    width: number,
    rows: number,
  ): void;
  /**
   * Token embeddings by modality: out (N, D)[n] = feats[n, :w_m] · weights[m] + biases[m] for
   * m = types[n] (w_m = weights[m].length / D ≤ F), zeros where types[n] is no modality.
   */
  modalityEmbed(
    feats: Float32Array,
    types: Int32Array,
    weights: Float32Array[],
    biases: Float32Array[],
    out: Float32Array,
    N: number,
    F: number,
    D: number,
    threads: number,
  ): void;
  /** modalityEmbed's gradients into dWeights, dBiases (overwritten), from dy (N, D). */
  modalityEmbedBackward(
    feats: Float32Array,
    types: Int32Array,
    dy: Float32Array,
    dWeights: Float32Array[],
    dBiases: Float32Array[],
    N: number,
    F: number,
    D: number,
    threads: number,
  ): void;
  /**
   * One AdamW step over every tensor: new weights into `out` (may be `params` itself), m and v
   * in place, params and grads read only, after scaling the gradients to global norm ≤ maxNorm
   * (0: no clip); decay (one per tensor): 1 where the weights decay. Returns the global norm
   * before clipping. Optional: an addon built before issue 14 lacks it, and the optimiser then
   * runs on tfjs (native/optim.ts).
   */
  adamw?(
    params: Float32Array[],
    out: Float32Array[],
    grads: Float32Array[],
    m: Float32Array[],
    v: Float32Array[],
    decay: Int32Array,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
    maxNorm: number,
    threads: number,
  ): number;
  /**
   * The FFN sublayer of a pre-norm block (issue 14), y (N, Dm) = x + FFN(norm(x) ∘ gain); norm 0
   * RMSNorm, 1 LayerNorm without bias; act 0 GELU (tanh), 1 ReLU, 2 SwiGLU (gate required).
   * Optional: an addon built before it lacks it (native/fused.ts then answers undefined).
   */
  ffnForward?(
    x: Float32Array,
    gain: Float32Array,
    up: Float32Array,
    down: Float32Array,
    gate: Float32Array | null,
    y: Float32Array,
    ...geometry: FfnGeometryArgs
  ): void;
  /** Its gradients for dy, recomputing the hidden activations from x: written, not added. */
  ffnBackward?(
    x: Float32Array,
    gain: Float32Array,
    up: Float32Array,
    down: Float32Array,
    gate: Float32Array | null,
    dy: Float32Array,
    dx: Float32Array,
    dGain: Float32Array,
    dUp: Float32Array,
    dDown: Float32Array,
    dGate: Float32Array | null,
    ...geometry: FfnGeometryArgs
  ): void;
  /**
   * A pre-norm block's input side (issue 14): q (B, H, T, Dh), k, v (B, Hk, T, Dh) = projections
   * of norm(x) ∘ gain, q and k rotated by the RoPE tables cos, sin (T, Dh) when given. Optional,
   * as ffnForward.
   */
  qkvForward?(
    x: Float32Array,
    gain: Float32Array,
    wq: Float32Array,
    wk: Float32Array,
    wv: Float32Array,
    cos: Float32Array | null,
    sin: Float32Array | null,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    ...geometry: QkvGeometryArgs
  ): void;
  /** Its backward for dq, dk, dv: dx += through norm and projections; the weight gradients written. */
  qkvBackward?(
    x: Float32Array,
    gain: Float32Array,
    wq: Float32Array,
    wk: Float32Array,
    wv: Float32Array,
    cos: Float32Array | null,
    sin: Float32Array | null,
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
    dx: Float32Array,
    dGain: Float32Array,
    dWq: Float32Array,
    dWk: Float32Array,
    dWv: Float32Array,
    ...geometry: QkvGeometryArgs
  ): void;
  /**
   * A pre-norm block's output side: y (B·T, Dm) = x1 + FFN(norm(x1) ∘ gain), x1 = x + merge(o) · wo,
   * o (B, H, T, Dh) the attention's output. Optional, as ffnForward.
   */
  postForward?(
    x: Float32Array,
    o: Float32Array,
    wo: Float32Array,
    gain: Float32Array,
    up: Float32Array,
    down: Float32Array,
    gate: Float32Array | null,
    y: Float32Array,
    ...geometry: [...PostGeometryArgs, ...PostKeepArgs]
  ): void;
  /**
   * Its backward for dy, recomputing x1 and the FFN's hidden activations unless the forward kept
   * them (the trailing PostKeepArgs): every gradient written.
   */
  postBackward?(
    x: Float32Array,
    o: Float32Array,
    wo: Float32Array,
    gain: Float32Array,
    up: Float32Array,
    down: Float32Array,
    gate: Float32Array | null,
    dy: Float32Array,
    dx: Float32Array,
    dO: Float32Array,
    dWo: Float32Array,
    dGain: Float32Array,
    dUp: Float32Array,
    dDown: Float32Array,
    dGate: Float32Array | null,
    ...geometry: [...PostGeometryArgs, ...PostKeepArgs]
  ): void;
  /** y (N, D) = norm(x) ∘ gain; kind 0 RMSNorm, 1 LayerNorm without bias. Optional, as ffnForward. */
  normForward?(x: Float32Array, gain: Float32Array, y: Float32Array, ...geometry: NormGeometryArgs): void;
  /** Its gradients for dy, the row statistics recomputed from x: written, not added. */
  normBackward?(
    x: Float32Array,
    gain: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dGain: Float32Array,
    ...geometry: NormGeometryArgs
  ): void;
  /**
   * The LM head and token cross-entropy (issue 14): out[0] = Σ over rows of weight · (lse −
   * logits[target]), out[1 + i] row i's log-sum-exp; logits = x · w, w (Dm, V), or x · wᵀ, w
   * (V, Dm), when `transposed` (a tied embedding). With dx (N, Dm) and dW (w's layout) the sum's
   * gradients, computed in the same pass (written, not added). Targets in [0, V). Rows go in
   * chunks of `chunkRows`, each task's logits (chunkRows, V) its working set. Optional, as
   * ffnForward.
   */
  headLoss?(
    x: Float32Array,
    w: Float32Array,
    target: Int32Array,
    weight: Float32Array,
    out: Float32Array,
    dx: Float32Array | null,
    dW: Float32Array | null,
    N: number,
    Dm: number,
    V: number,
    transposed: boolean,
    chunkRows: number,
    threads: number,
  ): void;
  /**
   * The RL policies' action head and loss (issue 14): out[0] = Σ over rows of weight ·
   * Σ_a (tanh(norm(x) ∘ gain · w + b) − target)², x (N, Dm), w (Dm, A), target (N, A); rows of
   * weight 0 add nothing. With dx, dGain, dW and db (all or none) the sum's gradients from the same
   * pass (written, not added).
   */
  actionLoss(
    x: Float32Array,
    gain: Float32Array,
    w: Float32Array,
    b: Float32Array,
    target: Float32Array,
    weight: Float32Array,
    out: Float32Array,
    dx: Float32Array | null,
    dGain: Float32Array | null,
    dW: Float32Array | null,
    db: Float32Array | null,
    N: number,
    Dm: number,
    A: number,
    ...norm: [kind: number, eps: number, threads: number]
  ): void;
  /** o /= l in place; lse = m + log l (+∞ where a row saw no key). */
  attnFinalize(
    o: Float32Array,
    m: Float32Array,
    l: Float32Array,
    lse: Float32Array,
    rows: number,
    D: number,
  ): void;
  /** out[r] = Σ_d a[r, d] · b[r, d]. */
  rowDot(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    rows: number,
    D: number,
    threads?: number,
  ): void;
  /**
   * [live, peak] bytes of the addon's own buffers (packed tiles, scratch) charged to this thread's
   * device, helper threads' allocations included (issue 20: a device's real memory counts them).
   */
  nativeBytes(): [live: number, peak: number];
  /** Sets this thread's peak back to its live bytes (before a measured call). */
  resetNativePeak(): void;
}

/** B, T, Dm, H, Hk, Dh, norm (0 rms, 1 layer), eps, threads. */
export type QkvGeometryArgs = [
  B: number,
  T: number,
  Dm: number,
  H: number,
  Hk: number,
  Dh: number,
  norm: number,
  eps: number,
  threads: number,
];
/**
 * postForward's and postBackward's optional trailing arrays: x1 (B·T, Dm) and the FFN's
 * pre-activations u (B·T, F) and g (B·T, F, SwiGLU only, else null), which the forward fills and
 * the backward reads instead of recomputing them (the block's keepFfn). All or none.
 */
export type PostKeepArgs = [x1?: Float32Array, u?: Float32Array, g?: Float32Array | null];
/** B, T, H, Dh, Dm, F, norm (0 rms, 1 layer), act (0 gelu, 1 relu, 2 swiglu), eps, threads. */
export type PostGeometryArgs = [
  B: number,
  T: number,
  H: number,
  Dh: number,
  Dm: number,
  F: number,
  norm: number,
  act: number,
  eps: number,
  threads: number,
];
/** N rows, Dm, F, norm (0 rms, 1 layer), act (0 gelu, 1 relu, 2 swiglu), eps, threads. */
/** A norm's rows N of D, its kind (0 RMSNorm, 1 LayerNorm), eps, and the threads to run on. */
export type NormGeometryArgs = [N: number, D: number, kind: number, eps: number, threads: number];
export type FfnGeometryArgs = [
  N: number,
  Dm: number,
  F: number,
  norm: number,
  act: number,
  eps: number,
  threads: number,
];

/** B, H, Hk, Tq, Tk, D, scale, causal, qPos (Tq), kPos (Tk), qSeg (B, Tq), kSeg (B, Tk), threads. */
export type AttentionGeometryArgs = [
  B: number,
  H: number,
  Hk: number,
  Tq: number,
  Tk: number,
  D: number,
  scale: number,
  causal: boolean,
  qPos: Int32Array,
  kPos: Int32Array,
  qSeg: Int32Array | null,
  kSeg: Int32Array | null,
  threads: number,
];

export interface NativeOptions {
  /** Use the native kernels when the addon loads (default: true unless `RING_NATIVE=0`). */
  enabled?: boolean;
  /** OS threads per call (default: `RING_NATIVE_THREADS`, else ⌊cores / devices⌋). */
  threads?: number;
  /** Ring devices sharing this process's cores (sets the default thread count). */
  devices?: number;
}

const settings: NativeOptions = {};
let addon: NativeAddon | null | undefined; // null: tried and failed
let failure: string | undefined;

/**
 * Changes the native settings of this thread (a ring device's worker has its own). A key given
 * as undefined goes back to its default; an absent key is left as it is.
 */
export function configureNative(options: NativeOptions): void {
  if ('threads' in options)
    settings.threads =
      options.threads === undefined ? undefined : positiveInt(options.threads, 'configureNative: threads');
  if ('devices' in options)
    settings.devices =
      options.devices === undefined ? undefined : positiveInt(options.devices, 'configureNative: devices');
  if ('enabled' in options) settings.enabled = options.enabled;
}

/** This thread's settings as given (for handing on to ring devices). */
export function nativeSettings(): NativeOptions {
  return { ...settings };
}

function positiveInt(value: number | string, source: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InputError(`${source}: expected a positive integer thread count, got '${value}'`);
  return n;
}

function enabled(): boolean {
  return settings.enabled ?? process.env.RING_NATIVE !== '0';
}

/** Threads each native call uses on this thread. */
export function nativeThreads(): number {
  if (settings.threads !== undefined) return settings.threads;
  const env = process.env.RING_NATIVE_THREADS;
  if (env !== undefined && env !== '') return positiveInt(env, 'RING_NATIVE_THREADS');
  // NOTE: ranks launched as separate processes on one host (exp launch, torchrun) share its cores too
  const local = Number(process.env.LOCAL_WORLD_SIZE);
  const processes = Number.isInteger(local) && local > 1 ? local : 1;
  return Math.max(1, Math.floor(availableParallelism() / processes / (settings.devices ?? 1)));
}

/**
 * The addon's calling convention this code speaks (native/src/ring_native.cc `abi()`): an older
 * build would ignore newer optional arguments (attnForward's lse, postForward's kept activations)
 * instead of failing on them.
 */
const ADDON_ABI = 5;

/** Where the addon lives: native/build/Release (from dist/native/), or `RING_NATIVE_ADDON`. */
function addonPath(): string {
  return (
    process.env.RING_NATIVE_ADDON ||
    fileURLToPath(new URL('../../native/build/Release/ring_native.node', import.meta.url))
  );
}

function load(): NativeAddon | null {
  const path = addonPath();
  try {
    if (!existsSync(path)) throw new Error(`${path} does not exist (npm run build builds it)`);
    const mod = createRequire(import.meta.url)(path) as Partial<NativeAddon>;
    // NOTE: the revision first: a stale build lacks the newest functions, and "rebuild it" is the
    // message that helps, not the first missing name
    const abi = typeof mod.abi === 'function' ? mod.abi() : 0;
    if (abi < ADDON_ABI)
      throw new Error(
        `${path} speaks addon ABI ${abi}, this code needs ${ADDON_ABI} (npm run build rebuilds it)`,
      );
    for (const fn of [
      'attnForward',
      'attnBackward',
      'attnFinalize',
      'rowDot',
      'sgemm',
      'exp',
      'tanh',
      'scatterAddRows',
      'modalityEmbed',
      'modalityEmbedBackward',
      'actionLoss',
      'simd',
      'abi',
      'nativeBytes',
      'resetNativePeak',
    ] as const)
      if (typeof mod[fn] !== 'function') throw new Error(`${path} has no function ${fn}`);
    return mod as NativeAddon;
  } catch (err) {
    failure = err instanceof Error ? err.message.split('\n')[0] : String(err);
    // NOTE: one line per process: devices (worker threads) stay silent.
    if (isMainThread)
      process.stderr.write(`native: kernels unavailable (${failure}); the tfjs kernels run instead\n`);
    return null;
  }
}

/** The addon when enabled and loadable, else undefined (the tfjs kernels then run). */
export function nativeAddon(): NativeAddon | undefined {
  if (!enabled()) return undefined;
  if (addon === undefined) addon = load();
  return timed ?? addon ?? undefined;
}

let timed: NativeAddon | undefined;

/**
 * Profiling (bench/rl-train --profile): while set, every addon call is timed and reported to
 * `record(name, ms)`; `undefined` stops it. NOTE: the addon's exports are read-only properties,
 * so the timers wrap a copy that `nativeAddon()` hands out instead of patching the module.
 */
export function timeNativeCalls(record?: (name: string, ms: number) => void): void {
  timed = undefined;
  if (!record || !enabled()) return;
  if (addon === undefined) addon = load();
  if (!addon) return;
  const source = addon as unknown as Record<string, (...a: unknown[]) => unknown>;
  const copy: Record<string, (...a: unknown[]) => unknown> = {};
  for (const name of Object.getOwnPropertyNames(source)) {
    const fn = source[name];
    if (typeof fn !== 'function') continue;
    copy[name] = (...args: unknown[]) => {
      const t = performance.now();
      const out = fn(...args);
      record(name, performance.now() - t);
      return out;
    };
  }
  timed = copy as unknown as NativeAddon;
}

/**
 * Where a tfjs backend keeps its tensors, as far as the native kernels care: its name, and for
 * tfjs-node's `tensorflow` backend the two flags its backend object carries (`isGPUPackage`: the
 * package is tfjs-node-gpu; `isUsingGpuDevice`: TensorFlow placed ops on a CUDA device).
 */
export interface BackendPlacement {
  name: string;
  isGPUPackage?: boolean;
  isUsingGpuDevice?: boolean;
}

/**
 * The one rule for every native kernel (issue 23): the addon reads and writes tensors in CPU
 * memory, so it runs only on backends whose tensors already live there — wasm, cpu and tfjs-node
 * on the CPU. On a GPU every call would copy q, k, v (and their gradients) to the host, run on
 * the CPU's cores and copy back: slower than the GPU, silently. Returns why native is refused on
 * `placement`, or undefined when it may run.
 */
export function nativeRefusedOn(placement: BackendPlacement): string | undefined {
  const { name, isGPUPackage, isUsingGpuDevice } = placement;
  if (name === 'wasm' || name === 'cpu') return undefined;
  if (name === 'tensorflow') {
    if (isUsingGpuDevice === true) return 'the tensorflow backend runs on a GPU device; tensors stay there';
    // NOTE: tfjs-node-gpu that does not say where it runs is taken to be on the GPU (the safe side)
    if (isGPUPackage === true && isUsingGpuDevice !== false)
      return 'the tensorflow backend is tfjs-node-gpu and does not report its device';
    return undefined;
  }
  return `backend '${name}' may keep tensors outside CPU memory`;
}

/** One line for notices: which kernels run and why (on `placement`'s backend when given). */
export function nativeStatus(placement?: BackendPlacement): string {
  if (!enabled()) return 'native kernels off (RING_NATIVE=0 or native: false)';
  const refused = placement === undefined ? undefined : nativeRefusedOn(placement);
  if (refused !== undefined) return `native kernels off on this backend (${refused})`;
  const a = nativeAddon();
  if (!a) return `native kernels unavailable (${failure ?? 'unknown'})`;
  return `native kernels ${a.simd()}, ${nativeThreads()} threads`;
}
