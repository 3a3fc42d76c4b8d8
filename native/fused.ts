/**
 * Fused layers on the native addon (issue 14): whole sublayers of a transformer block in one
 * addon call each, on the backend's own memory. On wasm the inputs are views of the wasm heap and
 * the results are written straight into fresh output tensors, so nothing is copied; on cpu the
 * inputs are read and the outputs copied in. Every function answers undefined where it cannot
 * run (another backend, the addon off, missing or built before the function existed, a dtype
 * other than float32), and the caller runs its tfjs ops instead: they stay the reference.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeThreads, type PostKeepArgs } from './addon.js';
import { nativeForCurrentBackend } from './kernels.js';

interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}
interface CpuBackend {
  readSync(dataId: unknown): Float32Array;
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}
interface Engine {
  makeTensorFromTensorInfo(t: tf.TensorInfo, backend: unknown): tf.Tensor;
}

/**
 * Runs `call` on the float32 values of `inputs` (null stays null) and of new outputs of
 * `shapes`, which it must fill entirely, and returns the outputs. wasm: heap views; cpu: copies.
 */
function onBackendMemory(
  inputs: (tf.Tensor | null)[],
  shapes: number[][],
  call: (ins: (Float32Array | null)[], outs: Float32Array[]) => void,
): tf.Tensor[] {
  const engine = tf.engine() as unknown as Engine;
  const backend = tf.backend();
  if (tf.getBackend() === 'wasm') {
    const wasm = backend as unknown as WasmHeapBackend;
    // NOTE: outputs first, views last: an allocation may grow the heap and detach earlier views
    const outs = shapes.map((s) => wasm.makeOutput(s, 'float32'));
    const view = (t: tf.TensorInfo) => wasm.typedArrayFromHeap(t);
    call(
      inputs.map((t) => (t ? view(t) : null)),
      outs.map(view),
    );
    return outs.map((o) => engine.makeTensorFromTensorInfo(o, backend));
  }
  const cpu = backend as unknown as CpuBackend;
  const outs = shapes.map((s) => new Float32Array(s.reduce((p, q) => p * q, 1)));
  call(
    inputs.map((t) => (t ? cpu.readSync(t.dataId) : null)),
    outs,
  );
  return outs.map((o, i) =>
    engine.makeTensorFromTensorInfo(cpu.makeTensorInfo(shapes[i], 'float32', o), backend),
  );
}

/** The addon, if a fused layer can run on the current backend with these tensors. */
function fusedAddon(tensors: (tf.Tensor | null)[]) {
  const name = tf.getBackend();
  if (name !== 'wasm' && name !== 'cpu') return undefined;
  if (tensors.some((t) => t && t.dtype !== 'float32')) return undefined;
  const addon = nativeForCurrentBackend();
  return addon?.ffnForward && addon.ffnBackward ? addon : undefined;
}

export type FusedNorm = 'rms' | 'layer';
export type FusedActivation = 'gelu' | 'relu' | 'swiglu';

/** The FFN sublayer of a pre-norm block: y = x + FFN(norm(x) ∘ gain). */
export interface FfnSublayer {
  /** x (..., Dm) */
  x: tf.Tensor;
  gain: tf.Tensor; // (Dm)
  up: tf.Tensor; // (Dm, F)
  down: tf.Tensor; // (F, Dm)
  /** (Dm, F), SwiGLU only */
  gate: tf.Tensor | null;
  activation: FusedActivation;
  norm: FusedNorm;
  eps: number;
}

/** The addon's codes (ring_native.cc FfnNorm, FfnAct). */
const normCode = (n: FusedNorm) => (n === 'rms' ? 0 : 1);
const actCode = (a: FusedActivation) => (a === 'gelu' ? 0 : a === 'relu' ? 1 : 2);

function geometry(
  s: FfnSublayer,
): [N: number, Dm: number, F: number, norm: number, act: number, eps: number] {
  const Dm = s.x.shape[s.x.rank - 1] as number;
  const N = s.x.size / Dm;
  return [N, Dm, s.up.shape[1] as number, normCode(s.norm), actCode(s.activation), s.eps];
}

/** Whether the fused FFN sublayer runs here (else the caller's tfjs ops do). */
export function fusedFfnApplies(s: FfnSublayer): boolean {
  return fusedAddon([s.x, s.gain, s.up, s.down, s.gate]) !== undefined;
}

/** y (x's shape) = x + FFN(norm(x) ∘ gain), or undefined where it cannot run natively. */
export function fusedFfnForward(s: FfnSublayer): tf.Tensor | undefined {
  const addon = fusedAddon([s.x, s.gain, s.up, s.down, s.gate]);
  if (!addon?.ffnForward) return undefined;
  const [y] = onBackendMemory([s.x, s.gain, s.up, s.down, s.gate], [s.x.shape], ([x, g, u, d, gt], [out]) =>
    addon.ffnForward!(x!, g!, u!, d!, gt, out, ...geometry(s), nativeThreads()),
  );
  return y;
}

/**
 * The sublayer's gradients for dy (x's shape): [dx, dGain, dUp, dDown] (+ dGate for SwiGLU),
 * recomputing the hidden activations from x; undefined where it cannot run natively.
 */
export function fusedFfnBackward(s: FfnSublayer, dy: tf.Tensor): tf.Tensor[] | undefined {
  const addon = fusedAddon([s.x, s.gain, s.up, s.down, s.gate, dy]);
  if (!addon?.ffnBackward) return undefined;
  const shapes = [s.x.shape, s.gain.shape, s.up.shape, s.down.shape, ...(s.gate ? [s.gate.shape] : [])];
  return onBackendMemory([s.x, s.gain, s.up, s.down, s.gate, dy], shapes, ([x, g, u, d, gt, dyv], outs) =>
    addon.ffnBackward!(
      x!,
      g!,
      u!,
      d!,
      gt,
      dyv!,
      outs[0],
      outs[1],
      outs[2],
      outs[3],
      outs[4] ?? null,
      ...geometry(s),
      nativeThreads(),
    ),
  );
}

/**
 * A pre-norm block's geometry for its two native halves (issue 14): the input side (norm, q/k/v
 * projections, RoPE, head layout) and the output side (head merge, output projection, residual,
 * FFN sublayer). The attention between them is the caller's.
 */
export interface BlockHalves {
  B: number;
  T: number;
  Dm: number;
  H: number;
  Hk: number;
  Dh: number;
  F: number;
  norm: FusedNorm;
  eps: number;
  activation: FusedActivation;
  /** RoPE tables (T, Dh) for this block's tokens, or null (positions come from embeddings). */
  rope: { cos: Float32Array; sin: Float32Array } | null;
}

/** The input side's weights: attention norm gain (Dm), wq (Dm, H·Dh), wk, wv (Dm, Hk·Dh). */
export interface QkvWeights {
  gain: tf.Tensor;
  wq: tf.Tensor;
  wk: tf.Tensor;
  wv: tf.Tensor;
}
/** The output side's weights: wo (H·Dh, Dm), FFN norm gain (Dm), up, down, gate (SwiGLU). */
export interface PostWeights {
  wo: tf.Tensor;
  gain: tf.Tensor;
  up: tf.Tensor;
  down: tf.Tensor;
  gate: tf.Tensor | null;
}

/** Whether both halves run natively here for these tensors. */
export function blockHalvesApply(tensors: (tf.Tensor | null)[]): boolean {
  const addon = fusedAddon(tensors);
  return !!(addon?.qkvForward && addon.qkvBackward && addon.postForward && addon.postBackward);
}

function qkvGeometry(g: BlockHalves) {
  return [g.B, g.T, g.Dm, g.H, g.Hk, g.Dh, normCode(g.norm), g.eps, nativeThreads()] as const;
}
function postGeometry(g: BlockHalves) {
  const act = actCode(g.activation);
  return [g.B, g.T, g.H, g.Dh, g.Dm, g.F, normCode(g.norm), act, g.eps, nativeThreads()] as const;
}
/** The addon, which `blockHalvesApply` has vouched for. */
function halvesAddon() {
  const addon = nativeForCurrentBackend();
  if (!addon?.qkvForward || !addon.qkvBackward || !addon.postForward || !addon.postBackward)
    throw new Error('native block halves called where blockHalvesApply is false');
  return addon as Required<typeof addon>;
}

/** x (B, T, Dm) → q (B, H, T, Dh), k, v (B, Hk, T, Dh). */
export function qkvForward(
  g: BlockHalves,
  x: tf.Tensor,
  w: QkvWeights,
): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D] {
  const addon = halvesAddon();
  const r = g.rope;
  const [q, k, v] = onBackendMemory(
    [x, w.gain, w.wq, w.wk, w.wv],
    [
      [g.B, g.H, g.T, g.Dh],
      [g.B, g.Hk, g.T, g.Dh],
      [g.B, g.Hk, g.T, g.Dh],
    ],
    ([xv, gv, wq, wk, wv], [qo, ko, vo]) =>
      addon.qkvForward(
        xv!,
        gv!,
        wq!,
        wk!,
        wv!,
        r?.cos ?? null,
        r?.sin ?? null,
        qo,
        ko,
        vo,
        ...qkvGeometry(g),
      ),
  );
  return [q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D];
}

/**
 * The input side's backward: adds the gradient through norm and projections into `dx` (B, T, Dm),
 * a tensor the caller has just made and no one else holds, in place; returns [dGain, dWq, dWk, dWv].
 */
export function qkvBackward(
  g: BlockHalves,
  x: tf.Tensor,
  w: QkvWeights,
  dq: tf.Tensor,
  dk: tf.Tensor,
  dv: tf.Tensor,
  dx: tf.Tensor,
): tf.Tensor[] {
  const addon = halvesAddon();
  const r = g.rope;
  return onBackendMemory(
    [x, w.gain, w.wq, w.wk, w.wv, dq, dk, dv, dx],
    [w.gain.shape, w.wq.shape, w.wk.shape, w.wv.shape],
    ([xv, gv, wq, wk, wv, dqv, dkv, dvv, dxv], [dGain, dWq, dWk, dWv]) =>
      addon.qkvBackward(
        xv!,
        gv!,
        wq!,
        wk!,
        wv!,
        r?.cos ?? null,
        r?.sin ?? null,
        dqv!,
        dkv!,
        dvv!,
        dxv!,
        dGain,
        dWq,
        dWk,
        dWv,
        ...qkvGeometry(g),
      ),
  );
}

/** y (B, T, Dm) = x1 + FFN(norm(x1) ∘ gain), x1 = x + merge(o) · wo; o (B, H, T, Dh). */
export function postForward(g: BlockHalves, x: tf.Tensor, o: tf.Tensor, w: PostWeights): tf.Tensor {
  return postForwardCall(g, x, o, w, false).y;
}

/**
 * postForward that also returns the output side's activations for `postBackward` to read instead
 * of recomputing them: [x1 (B·T, Dm), u (B·T, F)] and g (B·T, F) with SwiGLU. Between forward and
 * backward they hold (Dm + F) floats per token (+ F with SwiGLU) beside the block's input.
 */
export function postForwardKeeping(
  g: BlockHalves,
  x: tf.Tensor,
  o: tf.Tensor,
  w: PostWeights,
): { y: tf.Tensor; kept: tf.Tensor[] } {
  return postForwardCall(g, x, o, w, true);
}

/** postForward's and postBackward's leading inputs, in the addon's order: x, o, wo, gain, up, down, gate. */
function postInputs(x: tf.Tensor, o: tf.Tensor, w: PostWeights): (tf.Tensor | null)[] {
  return [x, o, w.wo, w.gain, w.up, w.down, w.gate];
}

/** The views of `postInputs` (the first seven of `views`) as the addon takes them. */
function postViews(
  views: (Float32Array | null)[],
): [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array | null] {
  const [x, o, wo, gain, up, down, gate] = views;
  return [x!, o!, wo!, gain!, up!, down!, gate];
}

/** The addon's postForward, with the kept activations as outputs when `keep`. */
function postForwardCall(
  g: BlockHalves,
  x: tf.Tensor,
  o: tf.Tensor,
  w: PostWeights,
  keep: boolean,
): { y: tf.Tensor; kept: tf.Tensor[] } {
  const addon = halvesAddon();
  const N = g.B * g.T;
  const keptShapes = keep ? [[N, g.Dm], [N, g.F], ...(w.gate ? [[N, g.F]] : [])] : [];
  const [y, ...kept] = onBackendMemory(
    postInputs(x, o, w),
    [x.shape, ...keptShapes],
    (ins, [yv, x1, u, gk]) =>
      addon.postForward(
        ...postViews(ins),
        yv,
        ...postGeometry(g),
        ...((keep ? [x1, u, gk ?? null] : []) as PostKeepArgs),
      ),
  );
  return { y, kept };
}

/**
 * The output side's backward for dy (B, T, Dm): [dx, dO, dWo, dGain, dUp, dDown] (+ dGate).
 * `kept`: postForwardKeeping's activations (none: recomputed from x and o).
 */
export function postBackward(
  g: BlockHalves,
  x: tf.Tensor,
  o: tf.Tensor,
  w: PostWeights,
  dy: tf.Tensor,
  kept: tf.Tensor[] = [],
): tf.Tensor[] {
  const addon = halvesAddon();
  const inputs = postInputs(x, o, w);
  // each gradient has its input's shape (no gate, no dGate)
  const shapes = inputs.flatMap((t) => (t ? [t.shape] : []));
  return onBackendMemory([...inputs, dy, ...kept], shapes, (ins, outs) => {
    const [dyv, ...keptViews] = ins.slice(inputs.length);
    return addon.postBackward(
      ...postViews(ins),
      dyv!,
      outs[0],
      outs[1],
      outs[2],
      outs[3],
      outs[4],
      outs[5],
      outs[6] ?? null,
      ...postGeometry(g),
      ...((keptViews.length ? [keptViews[0]!, keptViews[1]!, keptViews[2] ?? null] : []) as PostKeepArgs),
    );
  });
}

/** The fused head and cross-entropy's results (`fusedHeadLoss`). */
export interface HeadLossResult {
  /** Σ over rows of weight · (lse − logit[target]). */
  loss: number;
  /** dx (N, Dm) and dW (Dm, V) of `loss`, when asked for. */
  grads?: [dx: tf.Tensor2D, dW: tf.Tensor2D];
}

/**
 * x (N, Dm), w (Dm, V) or, `transposed`, (V, Dm): the weighted token cross-entropy of the logits
 * x · w (x · wᵀ) against `targets` (N, each in [0, V)), the logits in chunks of rows that never
 * all exist (`chunkRows` per task); with `withGrads` its gradients (dW in w's layout) from the
 * same pass. undefined where it cannot run natively.
 */
export function fusedHeadLoss(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  targets: Int32Array,
  weights: Float32Array,
  withGrads: boolean,
  transposed: boolean,
  chunkRows: number,
): HeadLossResult | undefined {
  const name = tf.getBackend();
  if ((name !== 'wasm' && name !== 'cpu') || x.dtype !== 'float32' || w.dtype !== 'float32') return undefined;
  const addon = nativeForCurrentBackend();
  if (!addon?.headLoss) return undefined;
  const [N, Dm] = x.shape;
  const V = transposed ? w.shape[0] : w.shape[1];
  const shapes = withGrads ? [[N + 1], [N, Dm], w.shape] : [[N + 1]];
  const [out, dx, dW] = onBackendMemory([x, w], shapes, ([xv, wv], outs) =>
    addon.headLoss!(
      xv!,
      wv!,
      targets,
      weights,
      outs[0],
      outs[1] ?? null,
      outs[2] ?? null,
      N,
      Dm,
      V,
      transposed,
      chunkRows,
      nativeThreads(),
    ),
  );
  const loss = out.dataSync()[0];
  out.dispose();
  return { loss, grads: withGrads ? [dx as tf.Tensor2D, dW as tf.Tensor2D] : undefined };
}

/** The fused action head and loss's results (`fusedActionLoss`). */
export interface ActionLossResult {
  /** Σ over rows of weight · Σ_a (tanh(norm(x) ∘ gain · w + b) − target)². */
  loss: number;
  /** dx (x's shape), dGain (Dm), dW (Dm, A) and db (A) of `loss`, when asked for. */
  grads?: [dx: tf.Tensor, dGain: tf.Tensor1D, dW: tf.Tensor2D, db: tf.Tensor1D];
}

/** Whether `fusedActionLoss` runs here for these tensors (else the caller's tfjs ops do). */
export function fusedActionLossApplies(tensors: tf.Tensor[]): boolean {
  return fusedAddon(tensors)?.actionLoss !== undefined;
}

/**
 * x (..., Dm), gain (Dm), w (Dm, A), b (A): the weighted squared error of the actions
 * tanh(norm(x) ∘ gain · w + b) against `targets` (rows · A), each row's term times `weights[row]`
 * (0: not counted); with `withGrads` its gradients from the same pass. undefined where it cannot
 * run natively.
 */
export function fusedActionLoss(
  x: tf.Tensor,
  gain: tf.Tensor1D,
  w: tf.Tensor2D,
  b: tf.Tensor1D,
  targets: Float32Array,
  weights: Float32Array,
  norm: FusedNorm,
  eps: number,
  withGrads: boolean,
): ActionLossResult | undefined {
  const addon = fusedAddon([x, gain, w, b]);
  if (!addon?.actionLoss) return undefined;
  const [Dm, A] = w.shape;
  const N = x.size / Dm;
  const shapes = withGrads ? [[1], x.shape, [Dm], [Dm, A], [A]] : [[1]];
  const [out, dx, dGain, dW, db] = onBackendMemory([x, gain, w, b], shapes, ([xv, g, wv, bv], outs) =>
    addon.actionLoss(
      xv!,
      g!,
      wv!,
      bv!,
      targets,
      weights,
      outs[0],
      outs[1] ?? null,
      outs[2] ?? null,
      outs[3] ?? null,
      outs[4] ?? null,
      N,
      Dm,
      A,
      normCode(norm),
      eps,
      nativeThreads(),
    ),
  );
  const loss = out.dataSync()[0];
  out.dispose();
  if (!withGrads) return { loss };
  return { loss, grads: [dx, dGain as tf.Tensor1D, dW as tf.Tensor2D, db as tf.Tensor1D] };
}

/** Whether the native norm runs here for these tensors (else the caller's tfjs ops do). */
export function fusedNormApplies(x: tf.Tensor, gain: tf.Tensor): boolean {
  const addon = fusedAddon([x, gain]);
  return x.rank > 0 && !!addon?.normForward && !!addon.normBackward;
}

/** y (x's shape) = norm(x) ∘ gain over the last axis; undefined where it cannot run natively. */
export function fusedNormForward(
  x: tf.Tensor,
  gain: tf.Tensor,
  norm: FusedNorm,
  eps: number,
): tf.Tensor | undefined {
  const addon = fusedAddon([x, gain]);
  if (!addon?.normForward || !addon.normBackward) return undefined;
  const D = x.shape[x.rank - 1] as number;
  const [y] = onBackendMemory([x, gain], [x.shape], ([xv, g], [out]) =>
    addon.normForward!(xv!, g!, out, x.size / D, D, normCode(norm), eps, nativeThreads()),
  );
  return y;
}

/** [dx, dGain] of `fusedNormForward` for dy, recomputing each row's statistics from x. */
export function fusedNormBackward(
  x: tf.Tensor,
  gain: tf.Tensor,
  norm: FusedNorm,
  eps: number,
  dy: tf.Tensor,
): tf.Tensor[] | undefined {
  const addon = fusedAddon([x, gain, dy]);
  if (!addon?.normBackward) return undefined;
  const D = x.shape[x.rank - 1] as number;
  return onBackendMemory([x, gain, dy], [x.shape, gain.shape], ([xv, g, dyv], [dx, dGain]) =>
    addon.normBackward!(xv!, g!, dyv!, dx, dGain, x.size / D, D, normCode(norm), eps, nativeThreads()),
  );
}

/** Token features as the trajectory transformers hold them (rl/policies/tokens.ts). */
export interface ModalityTokens {
  /** (N, F): token n's values in its first w_m columns */
  feats: Float32Array;
  /** (N): the token's modality, or another number for padding */
  types: Int32Array;
  /** F */
  featDim: number;
}

/** Whether modalityEmbedForward / Backward run for these weights and biases. */
export function modalityEmbedApplies(params: tf.Tensor[]): boolean {
  return fusedAddon(params)?.modalityEmbed !== undefined;
}

/**
 * Token embeddings by modality on the addon: (N, D)[n] = feats[n, :w_m] · W_m + b_m for
 * m = types[n], zeros for padding. W_m (w_m, D), b_m (D). Undefined where it cannot run.
 */
export function modalityEmbedForward(
  tokens: ModalityTokens,
  weights: tf.Tensor[],
  biases: tf.Tensor[],
): tf.Tensor2D | undefined {
  const addon = fusedAddon([...weights, ...biases]);
  if (!addon?.modalityEmbed) return undefined;
  const M = weights.length;
  const N = tokens.types.length;
  const D = biases[0].size;
  const [out] = onBackendMemory([...weights, ...biases], [[N, D]], (ins, [o]) =>
    addon.modalityEmbed(
      tokens.feats,
      tokens.types,
      ins.slice(0, M) as Float32Array[],
      ins.slice(M) as Float32Array[],
      o,
      N,
      tokens.featDim,
      D,
      1, // NOTE: ≈ 0.15 ms of work: waking a helper made it 0.14 → 0.38 ms (--profile, 2 threads)
    ),
  );
  return out as tf.Tensor2D;
}

/** modalityEmbedForward's gradients [dW_0 … dW_M−1, db_0 … db_M−1] from dy (N, D), or undefined. */
export function modalityEmbedBackward(
  tokens: ModalityTokens,
  dy: tf.Tensor,
  weights: tf.Tensor[],
  biases: tf.Tensor[],
): tf.Tensor[] | undefined {
  const addon = fusedAddon([dy, ...weights, ...biases]);
  if (!addon?.modalityEmbedBackward) return undefined;
  const M = weights.length;
  const N = tokens.types.length;
  const D = biases[0].size;
  const shapes = [...weights, ...biases].map((t) => t.shape);
  return onBackendMemory([dy], shapes, ([g], outs) =>
    addon.modalityEmbedBackward(
      tokens.feats,
      tokens.types,
      g as Float32Array,
      outs.slice(0, M),
      outs.slice(M),
      N,
      tokens.featDim,
      D,
      1,
    ),
  );
}
