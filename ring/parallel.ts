/**
 * Collectives over the ring transport, for sequence-parallel training: every device holds a
 * replica of the parameters and a shard of the sequence, so gradients are summed over devices
 * after each backward pass (ring all-reduce: a reduce-scatter then an all-gather, N − 1 steps
 * each, moving 2·(N − 1)/N of the buffer per device — bandwidth-optimal).
 */
import type { RingTransport } from './transport.js';

/** Bounds of chunk i of n over `length` elements. */
function chunk(i: number, n: number, length: number): [number, number] {
  const size = Math.ceil(length / n);
  return [Math.min(length, i * size), Math.min(length, (i + 1) * size)];
}

/** Floats in the largest message `allReduceSum` sends for a buffer of `length` floats. */
export function allReduceMessageFloats(length: number, devices: number): number {
  return Math.ceil(length / devices);
}

/** Sums `data` over every device in place; all devices end with the same values. */
export function allReduceSum(transport: RingTransport, data: Float32Array): Float32Array {
  const N = transport.worldSize;
  const r = transport.rank;
  if (N === 1) return data;
  const mod = (x: number) => ((x % N) + N) % N;
  // reduce-scatter: after step s, chunk (r − s − 1) holds the sum of s + 2 devices' parts
  for (let s = 0; s < N - 1; s++) {
    const [a, b] = chunk(mod(r - s), N, data.length);
    transport.send([data.subarray(a, b)]);
    const [c, d] = chunk(mod(r - s - 1), N, data.length);
    const incoming = transport.recv()[0];
    for (let i = c; i < d; i++) data[i] += incoming[i - c];
  }
  // all-gather: chunk (r + 1) is complete here; pass complete chunks around
  for (let s = 0; s < N - 1; s++) {
    const [a, b] = chunk(mod(r + 1 - s), N, data.length);
    transport.send([data.subarray(a, b)]);
    const [c, d] = chunk(mod(r - s), N, data.length);
    data.set(transport.recv()[0], c);
    void d;
  }
  return data;
}

/** The same parameters everywhere: device 0's values are passed around the ring. */
export function broadcastFromRank0(transport: RingTransport, data: Float32Array): Float32Array {
  const N = transport.worldSize;
  if (N === 1) return data;
  const r = transport.rank;
  if (r !== 0) data.set(transport.recv()[0]);
  if (r !== N - 1) transport.send([data]);
  return data;
}
