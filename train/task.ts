/**
 * Typed ring tasks: a function a device runs, named once with its argument and result types and
 * with how large a message it sends, so callers neither spell module URLs and function names at
 * each call nor size the ring's channels themselves. And the token sharding every sequence-
 * parallel trainer does: each device's columns of a (B, T) array under the ring's layout.
 */
import { type RingLayout, tokenIndices } from '../ring/index.js';
import type { RingGroup } from '../cluster/index.js';

export interface RingTask<A, R> {
  /** URL of the module exporting the function (a device imports it). */
  readonly module: string;
  readonly fn: string;
  /** The largest message (floats) a device sends its neighbour while running these arguments. */
  messageFloats(args: A[]): number;
  /** Runs on every device of `group` with `args[rank]`; the results by rank. Phantom `R` ties the type. */
  run(group: RingGroup, args: A[]): Promise<R[]>;
}

/**
 * Declares a task: `ringTask<StepArgs, StepResult>(new URL('./train-device.js', import.meta.url),
 * 'trainStep', (args) => …)`. Tasks that send nothing over the ring pass `() => 1`.
 */
export function ringTask<A, R>(
  module: URL | string,
  fn: string,
  messageFloats: (args: A[]) => number,
): RingTask<A, R> {
  const url = typeof module === 'string' ? module : module.href;
  return {
    module: url,
    fn,
    messageFloats,
    run: (group, args) => group.run<A, R>(url, fn, args, Math.max(1, messageFloats(args))),
  };
}

/**
 * The columns device `rank` of `devices` holds, of every row of a (B, T) row-major array:
 * (B, T / devices), in the layout's token order (contiguous blocks or striped).
 */
export function shardColumns<T extends Int32Array | Float32Array>(
  a: T,
  batch: number,
  seqLen: number,
  rank: number,
  devices: number,
  layout: RingLayout,
): T {
  if (a.length !== batch * seqLen)
    throw new Error(`shardColumns: expected ${batch} × ${seqLen} values, got ${a.length}`);
  if (devices === 1) return a;
  const ix = tokenIndices(rank, devices, seqLen, layout);
  const out = new (a.constructor as new (n: number) => T)(batch * ix.length);
  for (let b = 0; b < batch; b++)
    for (let t = 0; t < ix.length; t++) out[b * ix.length + t] = a[b * seqLen + ix[t]];
  return out;
}
