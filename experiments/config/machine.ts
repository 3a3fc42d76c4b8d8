/**
 * What this machine can hold, for the bounds on size flags and config keys (issue 16 item 11):
 * `--devices 1000` started 1,011 threads and 3.3 GB of memory with no answer in 90 s. A count or
 * size the machine cannot hold is refused before any work, naming the bound and why.
 */
import { totalmem } from 'node:os';

/** Physical memory of this machine in bytes. */
export function machineMemoryBytes(): number {
  return totalmem();
}

/**
 * The most worker threads (ring devices, env workers) one process may start here: each holds a
 * wasm instance and its heap (≈ `perThreadMb`), and half the memory is left to everything else.
 */
export function maxWorkerThreads(perThreadMb = 64): number {
  return Math.max(1, Math.min(256, Math.floor(machineMemoryBytes() / 2 / (perThreadMb * 2 ** 20))));
}

/** Why `maxWorkerThreads()` is the bound, for messages and schema docs. */
export const WORKER_THREADS_WHY = "one worker thread per device, ≈ 64 MB each, half of this machine's memory";

/** `bytes` in GiB with one decimal, for messages. */
export function gib(bytes: number): string {
  const g = bytes / 2 ** 30;
  return g >= 1e6 ? `${g.toExponential(2)} GiB` : `${g.toFixed(1)} GiB`;
}
