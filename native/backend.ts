/**
 * Picking TensorFlow.js's backend (ARCHITECTURE.md: tensorflow > wasm > cpu).
 *
 * - `tensorflow`: `@tensorflow/tfjs-node-gpu` when a CUDA GPU is visible, else `@tensorflow/tfjs-node`.
 *   Both are optional peer dependencies: `npm run add-tensorflow` builds the CPU one here (below).
 * - `wasm`: `@tensorflow/tfjs-backend-wasm`, the embedded default. Single-threaded in Node, so a
 *   device of the ring is a worker thread with its own wasm instance.
 * - `cpu`: tfjs's plain JavaScript kernels; slow, for debugging.
 *
 * Chosen by an explicit argument, else the `RING_BACKEND` environment variable, else `auto`
 * (tensorflow when installed, else wasm); `RING_BACKEND_OVERRIDE` beats all of them.
 *
 * `npm run add-tensorflow` (scripts/install-tensorflow.sh) builds tfjs-node here against the C
 * library of TensorFlow's PyPI wheel (issue 7). CPU threads: TensorFlow runs each op on one
 * intra-op thread pool per process, shared by every tfjs context in it — the ring's worker-thread
 * devices included — so N devices on C cores share C threads by default and do not oversubscribe;
 * `cpuThreads` / `RING_CPU_THREADS` sizes that pool (e.g. C/N when devices are separate processes).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { InputError } from '../common/index.js';
import { configureNative, nativeStatus } from './addon.js';
import { currentPlacement, installNativeKernels } from './kernels.js';

export const BACKEND_NAMES = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export type BackendChoice = BackendName | 'auto';

export interface BackendInfo {
  /** The backend that runs. */
  name: BackendName;
  /** Which package provides it, e.g. `@tensorflow/tfjs-node-gpu`. */
  provider: string;
  /** Why this one was picked, one line. */
  reason: string;
  /** Which attention/matmul kernels run beside it (native/addon.ts), one line. */
  kernels?: string;
}

export interface InitBackendOptions {
  /** `auto` (default) or a backend name; falls back to `RING_BACKEND` when undefined. */
  backend?: BackendChoice;
  /** Print the one-line notice of which backend runs (default: true on the main thread). */
  notice?: boolean;
  /**
   * Threads of the `tensorflow` backend's intra-op pool for this whole process (shared by all
   * devices in it); falls back to `RING_CPU_THREADS`, else TensorFlow's default (all cores).
   * Takes effect only before the TensorFlow library first loads in the process; an explicit
   * `TF_NUM_INTRAOP_THREADS` wins. Ignored by wasm (single-threaded) and cpu.
   */
  cpuThreads?: number;
  /**
   * Use the native kernels (native/addon.ts, issue 7) when the addon loads; default true unless
   * `RING_NATIVE=0`. They serve attention on every backend whose tensors live in CPU memory (wasm,
   * cpu, tfjs-node on the CPU; never a GPU device, issue 23) and the wasm/cpu backends' matmuls.
   */
  native?: boolean;
  /** OS threads per native call (default `RING_NATIVE_THREADS`, else all cores on this thread). */
  nativeThreads?: number;
}

const require = createRequire(import.meta.url);
let current: BackendInfo | undefined;

/** Parses a backend name from a flag or the environment, naming the source on error. */
export function parseBackendChoice(value: string | undefined, source = '--backend'): BackendChoice {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if ((BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendName;
  throw new InputError(
    `${source}: unknown backend '${value}'; expected one of auto, ${BACKEND_NAMES.join(', ')}`,
  );
}

function packageInstalled(name: string): boolean {
  try {
    require.resolve(`${name}/package.json`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a CUDA device is visible to TensorFlow: a device node exists and `CUDA_VISIBLE_DEVICES`
 * does not hide every device (unset: all visible; '' or '-1': none, as CUDA reads it).
 */
export function cudaVisible(
  env: NodeJS.ProcessEnv = process.env,
  exists: (path: string) => boolean = existsSync,
): boolean {
  const mask = env.CUDA_VISIBLE_DEVICES;
  if (mask !== undefined && (mask.trim() === '' || mask.trim().startsWith('-1'))) return false;
  return exists('/dev/nvidia0') || exists('/dev/nvidiactl');
}

/** The tfjs-node packages to try for the `tensorflow` backend, best first. */
export function tensorflowPackages(cuda: boolean): string[] {
  return cuda ? ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] : ['@tensorflow/tfjs-node'];
}

/** Parses a positive thread count, naming the source on error. */
export function parseCpuThreads(value: string | undefined, source = 'RING_CPU_THREADS'): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InputError(`${source}: expected a positive integer thread count, got '${value}'`);
  return n;
}

/**
 * Environment TensorFlow reads when its library initialises. NOTE: set on the main thread before
 * the first import: a worker's process.env is a copy that C code's getenv() does not see, but
 * workers share the process's real environment, so the main thread's values reach every device.
 */
function configureTensorflowEnv(cpuThreads: number | undefined): void {
  // oneDNN and cpu_feature_guard banners on every load and worker otherwise.
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  if (cpuThreads !== undefined) process.env.TF_NUM_INTRAOP_THREADS ??= String(cpuThreads);
}

/** The TensorFlow C library version the tfjs-node binding reports, if it exposes one. */
function tensorflowLibVersion(): string | undefined {
  const backend = tf.backend() as unknown as { binding?: { TF_Version?: unknown } };
  const v = backend.binding?.TF_Version;
  return typeof v === 'string' ? v : undefined;
}

async function loadTensorflow(cpuThreads?: number): Promise<BackendInfo> {
  configureTensorflowEnv(cpuThreads);
  const candidates = tensorflowPackages(cudaVisible());
  const errors: string[] = [];
  for (const pkg of candidates) {
    if (!packageInstalled(pkg)) {
      errors.push(`${pkg} is not installed`);
      continue;
    }
    try {
      await import(pkg);
      await tf.setBackend('tensorflow');
      await tf.ready();
      const onGpu = currentPlacement().isUsingGpuDevice === true;
      const lib = tensorflowLibVersion();
      const threads = process.env.TF_NUM_INTRAOP_THREADS;
      return {
        name: 'tensorflow',
        provider: pkg,
        reason:
          (onGpu
            ? 'on a CUDA device'
            : pkg.endsWith('-gpu')
              ? 'no CUDA device in use (CPU)'
              : 'TensorFlow C library (CPU)') +
          (lib ? ` ${lib}` : '') +
          (threads ? `, ${threads} intra-op threads` : ''),
      };
    } catch (err) {
      errors.push(
        `${pkg} failed to load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
      );
    }
  }
  throw new Error(
    `backend 'tensorflow' is unavailable (${errors.join('; ')}); run \`npm run add-tensorflow\` or use --backend wasm`,
  );
}

async function loadWasm(): Promise<BackendInfo> {
  // NOTE: in Node the wasm binaries are read from the package folder; without an explicit path
  // tfjs tries to fetch them relative to the page, which does not exist here.
  const dir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  setWasmPaths(`${dir}/`);
  await tf.setBackend('wasm');
  await tf.ready();
  return { name: 'wasm', provider: '@tensorflow/tfjs-backend-wasm', reason: 'embedded default' };
}

async function loadCpu(): Promise<BackendInfo> {
  await tf.setBackend('cpu');
  await tf.ready();
  return { name: 'cpu', provider: '@tensorflow/tfjs (cpu)', reason: 'requested' };
}

/**
 * Initialises tfjs's backend once per thread and returns what runs. Calling it again with the
 * same choice is free; a different explicit choice switches backends.
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendInfo> {
  // NOTE: RING_BACKEND_OVERRIDE beats even an explicit choice, so suites that pin wasm run
  // unchanged on another path (test/speed/tensorflow.test.ts, issue 7).
  const override = process.env.RING_BACKEND_OVERRIDE
    ? parseBackendChoice(process.env.RING_BACKEND_OVERRIDE, 'RING_BACKEND_OVERRIDE')
    : undefined;
  const choice =
    (override === 'auto' ? undefined : override) ??
    options.backend ??
    parseBackendChoice(process.env.RING_BACKEND, 'RING_BACKEND');
  const cpuThreads =
    options.cpuThreads === undefined
      ? parseCpuThreads(process.env.RING_CPU_THREADS)
      : parseCpuThreads(String(options.cpuThreads), 'initBackend: cpuThreads');
  if (options.native !== undefined) configureNative({ enabled: options.native });
  if (options.nativeThreads !== undefined) configureNative({ threads: options.nativeThreads });
  if (current && (choice === 'auto' || choice === current.name)) {
    current.kernels = nativeStatus(currentPlacement());
    return current;
  }
  tf.env().set('PROD', true); // skips tfjs's per-op NaN checks and debug warnings
  let info: BackendInfo;
  if (choice === 'tensorflow') info = await loadTensorflow(cpuThreads);
  else if (choice === 'wasm') info = await loadWasm();
  else if (choice === 'cpu') info = await loadCpu();
  else {
    const hasNode =
      packageInstalled('@tensorflow/tfjs-node') || packageInstalled('@tensorflow/tfjs-node-gpu');
    if (hasNode) {
      try {
        info = await loadTensorflow(cpuThreads);
      } catch (err) {
        info = await loadWasm();
        info.reason = `fallback: ${err instanceof Error ? err.message : String(err)}`;
      }
    } else {
      info = await loadWasm();
      info.reason = '@tensorflow/tfjs-node is not installed (`npm run add-tensorflow` adds it)';
    }
  }
  installNativeKernels(info.name);
  // NOTE: the kernels line names the backend's placement: on a GPU it says native is off (issue 23)
  info.kernels = nativeStatus(currentPlacement());
  current = info;
  if (options.notice ?? false)
    process.stderr.write(`backend: ${info.name} (${info.provider}; ${info.reason}); ${info.kernels}\n`);
  return info;
}

/** The backend this thread runs, if initialised. */
export function currentBackend(): BackendInfo | undefined {
  return current;
}
