/**
 * The fused optimiser step (issue 14): AdamW with global-norm clipping over every parameter in
 * one addon call, on the wasm backend's memory. The moments are updated in place; the new
 * weights go to fresh tensors that the variables are then assigned, and gradients are read in
 * place. Elsewhere (another backend, the addon off or built without `adamw`) it answers
 * undefined and train/optim.ts runs its tfjs kernels.
 *
 * NOTE: weights must not change in place: tfjs-wasm's XNNPACK matmul caches each weight
 * matrix's packed copy by tensor id (freed when the tensor is), so a product after an in-place
 * update read the old weights (found by test/rl/offline-trainers' resume test: the losses
 * parted from the third step on). The moments are read by nothing but this kernel and
 * `state()`, so they may.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../common/index.js';
import { nativeThreads } from './addon.js';
import { nativeForCurrentBackend } from './kernels.js';

interface WasmHeapBackend {
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  dataIdMap: { get(dataId: object): { refCount: number } | undefined };
}

export interface NativeAdamWArgs {
  params: tf.Variable[];
  /** One per parameter, same shapes; read only. */
  grads: tf.Tensor[];
  m: tf.Variable[];
  v: tf.Variable[];
  /** One per parameter: whether its weights decay. */
  decay: boolean[];
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** The step being taken, from 1 (bias corrections). */
  step: number;
  /** Clip the gradients to this global norm first; 0: no clip. */
  maxNorm: number;
}

/**
 * Gives a moment `x` memory of its own when it shares its buffer (a variable made from a tensor
 * still alive, or a view from the wasm Identity kernel): writing in place must change `x` only.
 */
function ownMemory(backend: WasmHeapBackend, x: tf.Variable): void {
  const entry = backend.dataIdMap.get(x.dataId);
  if (entry && entry.refCount <= 1) return;
  const copy = tf.tensor(x.dataSync() as Float32Array, x.shape, 'float32');
  x.assign(copy);
  copy.dispose();
}

/** One fused AdamW step; returns the global gradient norm before clipping, or undefined if it cannot run here. */
export function nativeAdamW(a: NativeAdamWArgs): number | undefined {
  const n = a.params.length;
  for (const [key, list] of [
    ['grads', a.grads],
    ['m', a.m],
    ['v', a.v],
    ['decay', a.decay],
  ] as const)
    if (list.length !== n)
      throw new InputError(
        `nativeAdamW: ${key} must have one entry per parameter (${n}); got ${list.length}`,
      );
  const addon = nativeForCurrentBackend();
  if (!addon?.adamw || tf.getBackend() !== 'wasm') return undefined;
  if ([...a.params, ...a.grads].some((t) => t.dtype !== 'float32')) return undefined;
  const backend = tf.backend() as unknown as WasmHeapBackend;
  for (const x of [...a.m, ...a.v]) ownMemory(backend, x);
  // the new weights, uninitialised (the kernel writes every element)
  const engine = tf.engine() as unknown as {
    makeTensorFromTensorInfo(t: tf.TensorInfo, backend: unknown): tf.Tensor;
  };
  const outs = a.params.map((x) =>
    engine.makeTensorFromTensorInfo(backend.makeOutput(x.shape, 'float32'), backend),
  );
  // NOTE: views are taken last, with nothing allocated before the call: a heap growth in
  // between would detach them
  const view = (t: tf.Tensor) =>
    backend.typedArrayFromHeap({ dataId: t.dataId, shape: t.shape, dtype: 'float32' });
  const norm = addon.adamw(
    a.params.map(view),
    outs.map(view),
    a.grads.map(view),
    a.m.map(view),
    a.v.map(view),
    Int32Array.from(a.decay, (d) => (d ? 1 : 0)),
    a.lr,
    a.beta1,
    a.beta2,
    a.eps,
    a.weightDecay,
    a.step,
    a.maxNorm,
    nativeThreads(),
  );
  a.params.forEach((x, i) => {
    x.assign(outs[i]);
  });
  tf.dispose(outs);
  return norm;
}
