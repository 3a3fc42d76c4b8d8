/**
 * The fused optimiser step (issue 14): AdamW with global-norm clipping over every parameter in
 * one addon call, on the wasm backend's memory. The variables' and moments' heap memory is
 * updated in place; the gradients are read in place. Elsewhere (another backend, the addon off
 * or built without `adamw`) it answers undefined and train/optim.ts runs its tfjs kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../common/index.js';
import { nativeThreads } from './addon.js';
import { nativeForCurrentBackend } from './kernels.js';

interface WasmHeapBackend {
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
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
 * Gives `x` memory of its own when it shares its buffer (a variable made from a tensor still
 * alive, or a view from the wasm Identity kernel): writing in place must change `x` only.
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
  for (const x of [...a.params, ...a.m, ...a.v]) ownMemory(backend, x);
  // NOTE: views are taken last, with nothing allocated before the call: a heap growth in
  // between would detach them
  const view = (t: tf.Tensor) =>
    backend.typedArrayFromHeap({ dataId: t.dataId, shape: t.shape, dtype: 'float32' });
  return addon.adamw(
    a.params.map(view),
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
}
