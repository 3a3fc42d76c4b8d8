/**
 * Fused layers on the native addon (issue 14): whole sublayers of a transformer block in one
 * addon call each, on the backend's own memory. On wasm the inputs are views of the wasm heap and
 * the results are written straight into fresh output tensors, so nothing is copied; on cpu the
 * inputs are read and the outputs copied in. Every function answers undefined where it cannot
 * run (another backend, the addon off, missing or built before the function existed, a dtype
 * other than float32), and the caller runs its tfjs ops instead: they stay the reference.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeThreads } from './addon.js';
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

function geometry(
  s: FfnSublayer,
): [N: number, Dm: number, F: number, norm: number, act: number, eps: number] {
  const Dm = s.x.shape[s.x.rank - 1] as number;
  const N = s.x.size / Dm;
  const act = s.activation === 'gelu' ? 0 : s.activation === 'relu' ? 1 : 2;
  return [N, Dm, s.up.shape[1] as number, s.norm === 'rms' ? 0 : 1, act, s.eps];
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
