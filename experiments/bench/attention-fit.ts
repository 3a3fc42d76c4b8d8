/**
 * Does one `exp bench attention` shape fit this machine? Checked before any input is drawn or
 * device started (issue 16 items 11 and 14): `--devices 1000` started 1,011 threads and 3.3 GB
 * with no answer, and vanilla at 200K tokens died inside a kernel with "Cannot read properties
 * of undefined". What is refused is a lower bound on what the shape needs, so a refusal is never
 * wrong; a shape that passes may still run out, and main.ts's allocation net reports that.
 */
import { InputError } from '../../common/index.js';
import { gib, machineMemoryBytes, maxWorkerThreads, WORKER_THREADS_WHY } from '../config/machine.js';
import type { AttentionBenchOptions } from './attention.js';

/** A wasm instance addresses at most 4 GiB (wasm32; tfjs-backend-wasm's memory maximum). */
export const WASM_HEAP_LIMIT_BYTES = 2 ** 32;

export interface BenchMemoryNeed {
  /** q, k, v (and dOut with --backward) as drawn in the main thread, float32. */
  inputBytes: number;
  /** out (and dq, dk, dv with --backward), float32. */
  outputBytes: number;
  /**
   * vanilla's (B, H, T, T) float32 scores and their softmax on its device (both live until the op
   * returns: tf.tidy keeps every head's intermediates; measured 2·B·H·T²·4 at T = 8192); 0 for
   * the others.
   */
  scoreBytes: number;
  /** What the busiest device holds at least: its share of inputs and outputs, plus the scores. */
  perDeviceBytes: number;
  /**
   * The whole process (devices are threads of it): the main thread's input arrays plus every
   * device (the device gets copies of the inputs: structured clone, then its heap).
   */
  totalBytes: number;
}

/** A lower bound on the memory a bench shape needs (float32 everywhere). */
export function benchMemoryNeed(o: AttentionBenchOptions): BenchMemoryNeed {
  const { batch: B, heads: H, kvHeads: Hk, seqLen: T, headDim: D } = o;
  const N = o.impl === 'ring' ? o.devices : 1;
  const qFloats = B * H * T * D; // (B, H, T, D)
  const kvFloats = B * Hk * T * D; // (B, Hk, T, D)
  const inputBytes = 4 * (qFloats * (o.backward ? 2 : 1) + 2 * kvFloats);
  const outputBytes = 4 * (o.backward ? 2 * qFloats + 2 * kvFloats : qFloats);
  const scoreBytes = o.impl === 'vanilla' ? 2 * 4 * B * H * T * T : 0; // scores + softmax, (B, H, T, T) each
  const perDeviceBytes = (inputBytes + outputBytes) / N + scoreBytes;
  return { inputBytes, outputBytes, scoreBytes, perDeviceBytes, totalBytes: inputBytes + N * perDeviceBytes };
}

/**
 * Throws an InputError (exit 2) when the device count exceeds the worker threads this machine
 * can hold, or the shape's memory (lower bound) exceeds the machine's memory or, on the wasm
 * backend, one device's 4 GiB heap. Call after the options' own checks.
 */
export function assertBenchFitsMachine(o: AttentionBenchOptions): void {
  const maxDevices = maxWorkerThreads();
  if (o.devices > maxDevices)
    throw new InputError(
      `--devices: expected at most ${maxDevices} (${WORKER_THREADS_WHY}); got ${o.devices}`,
    );
  const need = benchMemoryNeed(o);
  const shape = `--impl ${o.impl} --seq-len ${o.seqLen} --batch ${o.batch} --heads ${o.heads} --kv-heads ${o.kvHeads} --head-dim ${o.headDim}${o.backward ? ' --backward' : ''}`;
  const parts =
    `q, k, v${o.backward ? ', dOut' : ''} ${gib(need.inputBytes)} and the outputs ${gib(need.outputBytes)}` +
    (need.scoreBytes
      ? `, and vanilla's (B, H, T, T) scores and softmax 2·B·H·T²·4 = 2·${o.batch}·${o.heads}·${o.seqLen}²·4 bytes = ${gib(need.scoreBytes)}`
      : '');
  const fix =
    o.impl === 'vanilla'
      ? 'use a shorter --seq-len, or --impl blockwise or ring (no T² scores)'
      : 'use a shorter --seq-len, fewer --heads or a smaller --batch/--head-dim';
  const machine = machineMemoryBytes();
  if (need.totalBytes > machine)
    throw new InputError(
      `exp bench attention ${shape}: needs at least ${gib(need.totalBytes)} (${parts}, copied to the device); this machine has ${gib(machine)}: ${fix}`,
    );
  if (o.backend === 'wasm' && need.perDeviceBytes > WASM_HEAP_LIMIT_BYTES)
    throw new InputError(
      `exp bench attention ${shape}: one device needs at least ${gib(need.perDeviceBytes)} (${parts}${o.impl === 'ring' ? `, over ${o.devices} devices` : ''}); a wasm device's heap holds at most ${gib(WASM_HEAP_LIMIT_BYTES)}: ${fix}`,
    );
}
