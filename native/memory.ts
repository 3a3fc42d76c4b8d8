/**
 * What a device holds in memory (issue 20). Peak live tensor bytes (tf.profile) were the only
 * figure; a device really holds its wasm heap (grown to fit, never shrunk), the JS objects and
 * ArrayBuffers of its isolate (inputs it received, arrays read back, the native kernels' running
 * state, garbage not yet collected) and the native addon's own buffers. Each is read here:
 *
 * - wasm heap: the backend's memory buffer's byteLength. It only grows, so the value at the end
 *   of a call is its high-water.
 * - JS: this isolate's `v8.getHeapStatistics()` used heap + external memory, less the wasm heap
 *   (V8 counts the wasm memory as external). Per isolate: a worker reads its own figures.
 *   Sampled after every kernel (the engine's `runKernelFunc`) and at the ends of the call.
 * - native: the addon's byte counter of this thread (helper threads charge their caller),
 *   its high-water reset at the start of the call.
 *
 * On the `tensorflow` backend tensors live in TensorFlow's allocator, which tfjs-node does not
 * report; the peak tensor bytes stand in for it there.
 */
import { readFileSync } from 'node:fs';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as tf from '@tensorflow/tfjs';
import { nativeAddon } from './addon.js';

/** A device's memory in bytes, by where it lives; `totalBytes` is their sum (the real figure). */
export interface DeviceMemory {
  /** Live tfjs tensor bytes (at the peak of a call: the peak added by it, as tf.profile reads it). */
  tensorBytes: number;
  /** The wasm backend's heap size (0 on other backends). */
  wasmHeapBytes: number;
  /** This isolate's JS heap in use plus its external memory (ArrayBuffers), without the wasm heap. */
  jsBytes: number;
  /** The native addon's buffers charged to this device (0 without the addon). */
  nativeBytes: number;
  /** What the device holds: wasm heap + JS + native (+ tensor bytes on the tensorflow backend). */
  totalBytes: number;
}

/**
 * One measured call's peak on a device, as a recipe's memory check reads it: the tensor bytes it
 * added (the paper's activation count, the figure before issue 20) and what the device really held
 * at its peak (`DeviceMemory.totalBytes`: its resident weights and optimizer state included).
 */
export interface ProbedPeak {
  tensorBytes: number;
  realBytes: number;
}

interface WasmModuleView {
  wasm?: { HEAPU8?: Uint8Array };
}

interface WasmMalloc {
  wasm?: { _malloc?: (bytes: number) => number; _free?: (ptr: number) => void };
}

/** Room reserved beyond a call's tensors, for the backend's small allocations (< 1 MiB measured). */
const RESERVE_SLACK_BYTES = 2 * 2 ** 20;

/**
 * Makes room in the wasm heap for `bytes` of tensors about to be allocated, by growing it once
 * (issue 20). Allocation by allocation, emscripten grows the heap by up to 20% (at most 96 MiB)
 * past each request (blockwise L=4096 fwd+bwd: heap 77 MiB for 64 MiB of tensors, measured with
 * Identity sharing memory); one block of `bytes` allocated and freed grows it to fit that request
 * exactly (66 MiB there), and the freed block then holds the call's tensors. A heap that already has the room is left as it is. No-op off wasm.
 */
export function reserveWasmHeap(bytes: number): void {
  if (tf.getBackend() !== 'wasm' || bytes <= 0) return;
  const wasm = (tf.backend() as unknown as WasmMalloc).wasm;
  if (!wasm?._malloc || !wasm._free) return;
  // NOTE: room beside the tensors for the backend's own small allocations, which would otherwise
  // set off a 20% growth at the last tensor
  const ptr = wasm._malloc(bytes + RESERVE_SLACK_BYTES);
  if (ptr !== 0) wasm._free(ptr);
}

function wasmHeapBytes(): number {
  if (tf.getBackend() !== 'wasm') return 0;
  return (tf.backend() as unknown as WasmModuleView).wasm?.HEAPU8?.buffer.byteLength ?? 0;
}

/** JS heap in use + external memory of this isolate, less the wasm heap `heap`. */
function jsBytes(heap: number): number {
  const h = getHeapStatistics();
  return Math.max(0, h.used_heap_size + h.external_memory - heap);
}

let gc: (() => void) | undefined;

/**
 * A full garbage collection of this isolate, so a reading starts from what is alive: JS garbage
 * left by earlier work moved a device's figure by ±10 MiB from one reading to the next. Device
 * tasks also call it once their inputs' arrays are in tensors: V8 had not collected them by the end
 * of a call.
 */
export function collectGarbage(): void {
  if (!gc) {
    // NOTE: V8's gc() without --expose-gc on the command line: the flag, then a fresh context
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}

function nativeLivePeak(): [number, number] {
  return nativeAddon()?.nativeBytes() ?? [0, 0];
}

function total(m: Omit<DeviceMemory, 'totalBytes'>): number {
  // NOTE: only TensorFlow's allocator is invisible to the other three readings
  const outside = tf.getBackend() === 'tensorflow' ? m.tensorBytes : 0;
  return m.wasmHeapBytes + m.jsBytes + m.nativeBytes + outside;
}

/** What this device holds now (an idle device's figure is the runtime's fixed cost). */
export function deviceMemoryNow(): DeviceMemory {
  collectGarbage();
  const heap = wasmHeapBytes();
  const m = {
    tensorBytes: tf.memory().numBytes,
    wasmHeapBytes: heap,
    jsBytes: jsBytes(heap),
    nativeBytes: nativeLivePeak()[0],
  };
  return { ...m, totalBytes: total(m) };
}

interface KernelRunner {
  runKernelFunc(params: unknown): unknown;
  /** The engine's count of live tensor bytes (what `tf.memory().numBytes` reads). */
  state: { numBytes: number; tensorInfo: WeakMap<object, unknown> };
  /** Registers a tensor: a new buffer when its dataId is not yet known (else a view or clone). */
  trackTensor(t: { dataId: object; size: number; dtype: string }, backend: unknown): void;
  /** Forgets a buffer once the backend freed it. */
  removeDataId(dataId: object, backend: unknown): void;
}

/**
 * Counts the bytes of distinct tensor buffers created during a call and still alive, with their
 * peak. WHY beside tf.profile's figure: the engine's `numBytes` adds a tensor's size for every
 * tensor, so a reshape, a clone or a custom op's saved copy of an input (which share their
 * buffer) count it again; the paper's memory model counts what is stored (issue 14). Buffers that
 * existed before the call are not counted, nor subtracted when the call frees them.
 */
class BufferCounter {
  private readonly live = new Map<object, number>();
  bytes = 0;
  peak = 0;

  constructor(private readonly engine: KernelRunner) {}

  /** Before `trackTensor` runs: a tensor whose buffer the engine does not know yet is a new one. */
  track(t: { dataId: object; size: number; dtype: string }): void {
    if (this.engine.state.tensorInfo.has(t.dataId) || t.dtype === 'string' || t.dtype === 'complex64') return;
    const bytes = t.size * (t.dtype === 'bool' ? 1 : 4);
    this.live.set(t.dataId, bytes);
    this.bytes += bytes;
    if (this.bytes > this.peak) this.peak = this.bytes;
  }

  remove(dataId: object): void {
    const bytes = this.live.get(dataId);
    if (bytes === undefined) return;
    this.live.delete(dataId);
    this.bytes -= bytes;
  }
}

/** Replaces `engine[key]` for the length of a measurement; returns the function that restores it. */
function patchEngine<K extends 'runKernelFunc' | 'trackTensor' | 'removeDataId'>(
  engine: KernelRunner,
  key: K,
  wrap: (original: KernelRunner[K]) => KernelRunner[K],
): () => void {
  const own = Object.getOwnPropertyDescriptor(engine, key); // a measurement around this one
  engine[key] = wrap(engine[key]);
  return () => {
    if (own) Object.defineProperty(engine, key, own);
    else delete (engine as Partial<KernelRunner>)[key]; // the prototype's method again
  };
}

/**
 * Runs `compute` and returns its result with the peak tensor bytes it added (tf.profile's figure:
 * the largest engine byte count after any kernel, minus what was resident before), the peak bytes
 * of distinct tensor buffers it created (`bufferBytes`: views and saved copies counted once) and,
 * beside them, what the device held at its peak (`memory`; its `tensorBytes` equals `peakBytes`).
 *
 * The tensor peak is read after every kernel here rather than by tf.profile: tf.profile keeps a
 * record and two promises per kernel until the call ends, which the device then holds as JS (issue
 * 20: ≈ 30 MiB over the 21 000 kernels of blockwise L = 4096 with RING_NATIVE=0).
 */
export async function withPeakBytes<R>(
  compute: () => R,
  measure: boolean,
): Promise<{ result: R; peakBytes: number; bufferBytes: number; memory?: DeviceMemory }> {
  if (!measure) return { result: compute(), peakBytes: 0, bufferBytes: 0 };
  const engine = tf.engine() as unknown as KernelRunner;
  const before = engine.state.numBytes;
  let tensorPeak = before;
  collectGarbage();
  nativeAddon()?.resetNativePeak();
  // the largest wasm heap + JS seen, with its parts (the heap only grows, the JS part also falls)
  let peak = { heap: wasmHeapBytes(), js: 0 };
  peak.js = jsBytes(peak.heap);
  const sample = () => {
    const heap = wasmHeapBytes();
    const js = jsBytes(heap);
    if (heap + js > peak.heap + peak.js) peak = { heap, js };
  };
  const buffers = new BufferCounter(engine);
  // NOTE: a call is synchronous kernels back to back, so no timer can sample it: every kernel
  // (the engine's one entry point for them, custom ops included) samples after it runs.
  const restore = [
    patchEngine(
      engine,
      'runKernelFunc',
      (run) =>
        function (this: KernelRunner, params: unknown) {
          const out = run.call(this, params);
          // after the kernel's outputs are counted, before its caller frees its inputs (tf.profile's point)
          if (engine.state.numBytes > tensorPeak) tensorPeak = engine.state.numBytes;
          sample();
          return out;
        },
    ),
    patchEngine(
      engine,
      'trackTensor',
      (track) =>
        function (this: KernelRunner, t, backend) {
          buffers.track(t);
          track.call(this, t, backend);
        },
    ),
    patchEngine(
      engine,
      'removeDataId',
      (remove) =>
        function (this: KernelRunner, dataId, backend) {
          buffers.remove(dataId);
          remove.call(this, dataId, backend);
        },
    ),
  ];
  let result: R;
  try {
    result = compute();
    sample();
  } finally {
    for (const r of restore.reverse()) r();
  }
  const peakBytes = Math.max(0, tensorPeak - before);
  // NOTE: the addon's buffers live only inside one of its calls, between two samples; their
  // high-water is added to the sampled peak (an upper bound when the two peaks do not coincide)
  const m = {
    tensorBytes: peakBytes,
    wasmHeapBytes: peak.heap,
    jsBytes: peak.js,
    nativeBytes: nativeLivePeak()[1],
  };
  return { result, peakBytes, bufferBytes: buffers.peak, memory: { ...m, totalBytes: total(m) } };
}

/**
 * This process's peak resident memory in bytes so far (Linux /proc/self/status VmHWM): the main
 * thread and every device together, what a machine's memory limit sees. Undefined off Linux.
 */
export function processPeakRssBytes(): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
