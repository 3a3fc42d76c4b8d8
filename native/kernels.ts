/**
 * tfjs kernels of the wasm and cpu backends re-registered to run on the native addon (issue 7),
 * on the backend's own memory: on wasm the operands are views of the wasm heap and results are
 * written straight into the output's heap slot, so nothing is copied.
 *
 * - `BatchMatMul`: the addon's sgemm. Every `tf.matMul` (and its gradients, which are matMuls with
 *   transpose flags) takes this path; small or unsupported products (other dtypes, batch
 *   broadcasting other than 1 ↔ n) go to the backend's own kernel, kept as the fallback.
 * - `Exp`: vectorised and threaded (a softmax over an LM's vocabulary is most of its use: on wasm
 *   it was the slowest kernel of an LM finetuning step, measured).
 * - `Identity` on wasm: shares the input's memory instead of copying it (issue 20).
 * - `Slice` on wasm, contiguous slices: copies the rows straight from the input's heap memory.
 * - `Tanh`: vectorised (wasm's is scalar libm, ≈ 25 ns an element: the policies' action head).
 * - `GatherV2` on wasm, rows of a table (axis 0): copies each row from the table's heap memory.
 * - `RingScatterAddRows` (ours, no tfjs kernel of that name): the gradient of such a gather
 *   (`scatterAddRows`), which the wasm backend lacks; on the heap, native or a JS loop.
 *
 * Identity, Slice and GatherV2 are memory bookkeeping, not native kernels: they run with the
 * addon off too, as does RingScatterAddRows (its JS loop).
 *
 * Each call checks that the addon is loaded and enabled, so `configureNative({ enabled: false })`
 * or RING_NATIVE=0 brings back the backend's kernels at once (all but Identity).
 */
import * as tf from '@tensorflow/tfjs';
import {
  type BackendPlacement,
  type NativeAddon,
  nativeAddon,
  nativeRefusedOn,
  nativeThreads,
} from './addon.js';

/** Where the current tfjs backend keeps its tensors (the flags are tfjs-node's, when present). */
export function currentPlacement(): BackendPlacement {
  const backend = tf.backend() as unknown as { isGPUPackage?: unknown; isUsingGpuDevice?: unknown };
  const flag = (v: unknown) => (typeof v === 'boolean' ? v : undefined);
  return {
    name: tf.getBackend(),
    isGPUPackage: flag(backend.isGPUPackage),
    isUsingGpuDevice: flag(backend.isUsingGpuDevice),
  };
}

/**
 * The addon if native kernels may run on the current backend (native/addon.ts `nativeRefusedOn`:
 * never on a GPU device), else undefined and the backend's own kernels run.
 */
export function nativeForCurrentBackend(): NativeAddon | undefined {
  if (nativeRefusedOn(currentPlacement()) !== undefined) return undefined;
  return nativeAddon();
}

/**
 * Products smaller than this many multiply-adds (M·N·K) stay on the backend's kernel: the call
 * costs more than the product there (break-even near 32³ against wasm's XNNPACK).
 */
export const NATIVE_MATMUL_MIN_MACS = 64 * 64 * 32;

/** Whether a float32 (M, K)·(K, N) product runs native on the current backend. */
export function nativeMatmulApplies(M: number, N: number, K: number): boolean {
  if (M * N * K < NATIVE_MATMUL_MIN_MACS) return false;
  // NOTE: the tensorflow backend has its own multi-threaded BLAS (and GPU backends must never
  // sync: nativeForCurrentBackend refuses them), so products run native on wasm and cpu only
  const backend = tf.getBackend();
  if (backend !== 'wasm' && backend !== 'cpu') return false;
  return nativeForCurrentBackend() !== undefined;
}

interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}
/** The wasm backend on any numeric dtype: its heap views are Float32, Int32 or Uint8 arrays. */
interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}
interface CpuBackend {
  readSync(dataId: unknown): Float32Array;
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}
type KernelArgs = Parameters<tf.KernelFunc>[0];

const installed = new Set<string>();
let nativeCalls = 0;

/** Products this thread has run native so far (tests check the path was taken). */
export function nativeMatmulCount(): number {
  return nativeCalls;
}

type NativeKernel = (
  args: KernelArgs,
  backendName: string,
  fallback: tf.KernelFunc,
) => tf.TensorInfo | tf.TensorInfo[];
const KERNELS: [string, NativeKernel][] = [
  ['BatchMatMul', nativeBatchMatMul],
  ['Exp', nativeExp],
  ['Tanh', nativeTanh],
  ['Identity', sharedIdentity],
  ['Slice', heapSlice],
  ['GatherV2', heapGather],
];

/** Registers the native kernels for `backendName` (wasm or cpu) once per thread. */
export function installNativeKernels(backendName: string): void {
  if ((backendName !== 'wasm' && backendName !== 'cpu') || installed.has(backendName)) return;
  installed.add(backendName);
  for (const [name, kernel] of KERNELS) {
    const original = tf.getKernel(name, backendName);
    if (!original) continue;
    const kernelFunc = (args: KernelArgs) => kernel(args, backendName, original.kernelFunc);
    tf.unregisterKernel(name, backendName);
    tf.registerKernel({ ...original, kernelFunc: kernelFunc as tf.KernelFunc });
  }
  if (!tf.getKernel(SCATTER_ADD_ROWS, backendName))
    tf.registerKernel({
      kernelName: SCATTER_ADD_ROWS,
      backendName,
      kernelFunc: ((args: KernelArgs) => scatterAddRowsKernel(args, backendName)) as tf.KernelFunc,
    });
}

const SCATTER_ADD_ROWS = 'RingScatterAddRows';

/**
 * src (N, D) added into the rows of a (rows, D) zero table at ids (N, int32): Σ_n [ids[n] = r] ·
 * src[n]. The gradient of `tf.gather(table, ids)` with respect to the table. On wasm and cpu (after
 * `installNativeKernels`) our kernel; elsewhere (tfjs-node, webgl) tfjs's unsortedSegmentSum.
 */
export function scatterAddRows(src: tf.Tensor2D, ids: tf.Tensor1D, rows: number): tf.Tensor2D {
  if (src.dtype !== 'float32' || ids.dtype !== 'int32' || ids.size !== src.shape[0])
    throw new Error(
      `scatterAddRows: src must be float32 and ids int32 with one id per row of src (${src.shape[0]}); got ${src.dtype} src and ${ids.size} ${ids.dtype} ids`,
    );
  if (!tf.getKernel(SCATTER_ADD_ROWS, tf.getBackend()))
    return tf.unsortedSegmentSum(src, ids, rows) as tf.Tensor2D;
  const inputs = { x: src, indices: ids } as unknown as tf.NamedTensorMap;
  const attrs = { rows } as unknown as tf.NamedAttrMap;
  return tf.engine().runKernel(SCATTER_ADD_ROWS, inputs, attrs) as tf.Tensor2D;
}

function scatterAddRowsKernel(args: KernelArgs, backendName: string): tf.TensorInfo {
  const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
  const { rows } = args.attrs as { rows: number };
  const [n, width] = x.shape;
  const addon = tf.getBackend() === backendName ? nativeForCurrentBackend() : undefined;
  const run = (ids: Int32Array, src: Float32Array, dst: Float32Array) => {
    if (addon) addon.scatterAddRows(ids, src, dst, n, width, rows);
    else scatterAddRowsJs(ids, src, dst, width, rows);
  };
  if (backendName === 'wasm') {
    const wasm = args.backend as unknown as WasmHeapBackend;
    const out = wasm.makeOutput([rows, width], 'float32'); // first: it may grow the heap
    try {
      run(
        wasm.typedArrayFromHeap(indices) as Int32Array,
        wasm.typedArrayFromHeap(x) as Float32Array,
        wasm.typedArrayFromHeap(out) as Float32Array,
      );
    } catch (err) {
      (args.backend as unknown as { disposeData(id: unknown): void }).disposeData(out.dataId);
      throw err;
    }
    return out;
  }
  const cpu = args.backend as unknown as CpuBackend;
  const dst = new Float32Array(rows * width);
  run(cpu.readSync(indices.dataId) as unknown as Int32Array, cpu.readSync(x.dataId), dst);
  return cpu.makeTensorInfo([rows, width], 'float32', dst);
}

/** The addon's scatterAddRows in JS (RING_NATIVE=0): the same sums, in the same order. */
function scatterAddRowsJs(
  ids: Int32Array,
  src: Float32Array,
  dst: Float32Array,
  width: number,
  rows: number,
): void {
  dst.fill(0, 0, rows * width);
  for (let k = 0; k < ids.length; k++) {
    const r = ids[k];
    if (!(r >= 0 && r < rows))
      throw new Error(`scatterAddRows: ids[${k}] = ${r} is outside the table's ${rows} rows`);
    const out = r * width;
    const inp = k * width;
    for (let d = 0; d < width; d++) dst[out + d] += src[inp + d];
  }
}

/** Elements below which Exp stays on the backend's kernel. */
const NATIVE_EXP_MIN = 4096;

// NOTE: the addon starts its helper threads per call (≈ 20–50 µs each), and on a busy machine a
// call waits for its slowest thread's time slice, so small ops ran 3× slower on 2 threads than on
// 1 (AT training, vanilla attention: 3283 vs 9482 tokens/s). Extra threads only from this much work.
const MACS_PER_EXTRA_THREAD = 1 << 22;
const EXP_PER_EXTRA_THREAD = 1 << 18;

/** The setting's thread count, capped so every thread gets at least `perThread` units of work. */
function threadsFor(work: number, perThread: number): number {
  return Math.max(1, Math.min(nativeThreads(), Math.floor(work / perThread)));
}

/** Elements below which Tanh stays on the backend's kernel (wasm's takes ≈ 25 ns an element). */
const NATIVE_TANH_MIN = 256;

function nativeExp(args: KernelArgs, backendName: string, fallback: tf.KernelFunc): tf.TensorInfo {
  return unaryKernel('exp', NATIVE_EXP_MIN, args, backendName, fallback);
}

function nativeTanh(args: KernelArgs, backendName: string, fallback: tf.KernelFunc): tf.TensorInfo {
  return unaryKernel('tanh', NATIVE_TANH_MIN, args, backendName, fallback);
}

/** A float32 elementwise kernel on the addon's `fn` from `min` elements, else the backend's. */
function unaryKernel(
  fn: 'exp' | 'tanh',
  min: number,
  args: KernelArgs,
  backendName: string,
  fallback: tf.KernelFunc,
): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const n = x.shape.reduce((p, q) => p * q, 1);
  const addon =
    x.dtype === 'float32' && n >= min && tf.getBackend() === backendName
      ? nativeForCurrentBackend()
      : undefined;
  if (!addon) return fallback(args) as tf.TensorInfo;
  const threads = threadsFor(n, EXP_PER_EXTRA_THREAD);
  if (backendName === 'wasm') {
    const wasm = args.backend as unknown as WasmBackend;
    const out = wasm.makeOutput(x.shape, 'float32'); // first: it may grow the heap
    addon[fn](wasm.typedArrayFromHeap(x), wasm.typedArrayFromHeap(out), n, threads);
    return out;
  }
  const cpu = args.backend as unknown as CpuBackend;
  const y = new Float32Array(n);
  addon[fn](cpu.readSync(x.dataId), y, n, threads);
  return cpu.makeTensorInfo(x.shape, 'float32', y);
}

interface RefCounted {
  incRef(dataId: unknown): void;
}

/**
 * Identity (what `tensor.clone()` and a custom op's `save` run) sharing the input's memory by
 * reference count, as tfjs's cpu backend and wasm's own Reshape do, where wasm's kernel copies it
 * (issue 20: saving q, k, v, out for the backward copied all four, 128 MiB at L = 16K). Tensors are
 * immutable; the native kernels and the attention engines write only into tensors they have just
 * allocated (outputs, dK/dV accumulators), before anything can share them. It runs with the native
 * kernels off (RING_NATIVE=0) as well: it copies nothing either way, and the tfjs kernels' path
 * saved 32 MiB of copies at L = 4096 that way (issue 20).
 */
function sharedIdentity(
  args: KernelArgs,
  backendName: string,
  fallback: tf.KernelFunc,
): tf.TensorInfo | tf.TensorInfo[] {
  const { x } = args.inputs as { x: tf.TensorInfo };
  if (backendName !== 'wasm' || x.dtype === 'string') return fallback(args);
  (args.backend as unknown as RefCounted).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/**
 * A contiguous Slice on wasm (a block of rows, a head of (B, H, T, D)) copied from a view of the
 * input's heap memory. wasm's own kernel first reads the whole input into a new JS array
 * (`readSync`), per slice: slicing a (B, H, T, D) tensor into head blocks made JS garbage of the
 * tensor's size per block (issue 20: 88 MiB of JS above an idle device, blockwise L = 4096 with
 * RING_NATIVE=0). The same values are copied; other slices go to the backend's kernel.
 */
function heapSlice(
  args: KernelArgs,
  backendName: string,
  fallback: tf.KernelFunc,
): tf.TensorInfo | tf.TensorInfo[] {
  const { x } = args.inputs as { x: tf.TensorInfo };
  if (backendName !== 'wasm' || x.dtype === 'string') return fallback(args);
  const { begin, size } = args.attrs as { begin: number | number[]; size: number | number[] };
  const [start, extent] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
  const n = extent.reduce((p, q) => p * q, 1);
  if (n === 0 || !tf.slice_util.isSliceContinous(x.shape, start, extent)) return fallback(args);
  const offset = tf.slice_util.computeFlatOffset(start, tf.util.computeStrides(x.shape));
  const wasm = args.backend as unknown as WasmHeapBackend;
  const out = wasm.makeOutput(extent, x.dtype); // first: it may grow the heap
  wasm.typedArrayFromHeap(out).set(wasm.typedArrayFromHeap(x).subarray(offset, offset + n));
  return out;
}

/**
 * Rows of a table gathered on wasm (axis 0, no batch dims: every embedding lookup), each copied
 * from a view of the table's heap memory. wasm's own kernel took 5 ms to gather 2,048 rows of 64
 * floats (an Agentic Transformer step's timestep embedding: 9% of the step once its FFN was fused,
 * bench/results/rl-train-profile.json, issue 14); the copies take a fraction of that. Other
 * gathers, and indices out of range (whose error is the backend's to give), go to the backend.
 */
function heapGather(
  args: KernelArgs,
  backendName: string,
  fallback: tf.KernelFunc,
): tf.TensorInfo | tf.TensorInfo[] {
  const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
  const { axis, batchDims } = args.attrs as { axis: number; batchDims?: number };
  const rank = x.shape.length;
  if (
    backendName !== 'wasm' ||
    x.dtype === 'string' ||
    indices.dtype !== 'int32' ||
    rank < 1 ||
    (axis !== 0 && axis !== -rank) ||
    (batchDims ?? 0) !== 0
  )
    return fallback(args);
  const wasm = args.backend as unknown as WasmHeapBackend;
  const rows = x.shape[0];
  const width = x.shape.slice(1).reduce((p, q) => p * q, 1);
  const ids = Int32Array.from(wasm.typedArrayFromHeap(indices));
  for (const id of ids) if (!(id >= 0 && id < rows)) return fallback(args);
  const out = wasm.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype); // first: it may grow the heap
  const table = wasm.typedArrayFromHeap(x);
  const dst = wasm.typedArrayFromHeap(out);
  // NOTE: both are views of the one heap: copyWithin moves each row without the subarray object
  // that set() needs (2,048 rows of 64: 70 µs against 200)
  const heap = new (table.constructor as Float32ArrayConstructor)(table.buffer);
  const from = table.byteOffset / table.BYTES_PER_ELEMENT;
  const to = dst.byteOffset / dst.BYTES_PER_ELEMENT;
  for (let n = 0; n < ids.length; n++)
    heap.copyWithin(to + n * width, from + ids[n] * width, from + (ids[n] + 1) * width);
  return out;
}

function nativeBatchMatMul(
  args: KernelArgs,
  backendName: string,
  fallback: tf.KernelFunc,
): tf.TensorInfo | tf.TensorInfo[] {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  const ra = a.shape.length;
  const rb = b.shape.length;
  const M = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const K = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const N = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  const batchDimsA = a.shape.slice(0, -2);
  const batchDimsB = b.shape.slice(0, -2);
  const batchA = batchDimsA.reduce((x, y) => x * y, 1);
  const batchB = batchDimsB.reduce((x, y) => x * y, 1);
  const sameBatch = batchDimsA.join() === batchDimsB.join();
  // only equal batch dims, or one side unbatched (the shapes tfjs's gradients produce)
  const simple = sameBatch || (batchA === 1 && ra === 2) || (batchB === 1 && rb === 2);
  const innerB = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  if (
    a.dtype !== 'float32' ||
    b.dtype !== 'float32' ||
    !simple ||
    K !== innerB ||
    !nativeMatmulApplies(M, N, K)
  )
    return fallback(args);
  const addon = nativeForCurrentBackend()!;
  nativeCalls++;
  const batch = Math.max(batchA, batchB);
  const outShape = [...(batchA >= batchB ? batchDimsA : batchDimsB), M, N];
  const threads = threadsFor(M * N * K, MACS_PER_EXTRA_THREAD);
  const run = (av: Float32Array, bv: Float32Array, cv: Float32Array) => {
    for (let i = 0; i < batch; i++) {
      const ai = batchA === 1 ? 0 : i;
      const bi = batchB === 1 ? 0 : i;
      addon.sgemm(
        av.subarray(ai * M * K, (ai + 1) * M * K),
        bv.subarray(bi * K * N, (bi + 1) * K * N),
        cv.subarray(i * M * N, (i + 1) * M * N),
        M,
        N,
        K,
        transposeA,
        transposeB,
        threads,
      );
    }
  };
  if (backendName === 'wasm') {
    const backend = args.backend as unknown as WasmBackend;
    // NOTE: the output first: allocating may grow the wasm heap and detach earlier views
    const out = backend.makeOutput(outShape, 'float32');
    run(backend.typedArrayFromHeap(a), backend.typedArrayFromHeap(b), backend.typedArrayFromHeap(out));
    return out;
  }
  const backend = args.backend as unknown as CpuBackend;
  const c = new Float32Array(batch * M * N);
  run(backend.readSync(a.dataId), backend.readSync(b.dataId), c);
  return backend.makeTensorInfo(outShape, 'float32', c);
}
