/**
 * Seeding, as Gymnasium's `utils.seeding.np_random`: a non-negative integer seed gives a
 * reproducible generator, no seed draws one from the OS. The generator is common/'s mulberry32,
 * so streams differ from numpy's PCG64: the same seed does NOT give the same numbers as Python
 * (the parity tests feed Python our initial states and actions instead, see test/rl/envs).
 */
import { randomBytes } from 'node:crypto';
import { Rng } from '../../common/index.js';
import { InvalidArgument } from './errors.js';

/** Checks a seed the way Gymnasium does: an integer ≥ 0 (or undefined). */
export function checkSeed(seed: unknown, where: string): number | undefined {
  if (seed === undefined || seed === null) return undefined;
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed))
    throw new InvalidArgument(`${where}: seed must be a non-negative integer; got ${describe(seed)}`);
  if (seed < 0) throw new InvalidArgument(`${where}: seed must be greater or equal to zero; got ${seed}`);
  return seed;
}

/** A generator and the seed it came from (drawn from the OS when none is given). */
export function makeRng(seed?: number): { rng: Rng; seed: number } {
  const s = seed ?? randomBytes(4).readUInt32LE(0);
  // NOTE: mulberry32 has a 32-bit state; fold larger seeds so 2**32 + 1 differs from 1.
  const folded = ((s % 0x100000000) ^ (Math.floor(s / 0x100000000) * 0x9e3779b1)) >>> 0;
  return { rng: new Rng(folded), seed: s };
}

/** An integer seed in [0, 2**31) drawn from `rng`, to seed a child generator. */
export function childSeed(rng: Rng): number {
  return Math.floor(rng.next() * 0x80000000);
}

/** Uniform in [low, high). */
export function uniform(rng: Rng, low: number, high: number): number {
  return low + (high - low) * rng.next();
}

/** Short description of any value for error messages. */
export function describe(x: unknown): string {
  if (x === undefined) return 'undefined';
  if (x === null) return 'null';
  if (typeof x === 'number' || typeof x === 'boolean' || typeof x === 'bigint') return String(x);
  if (typeof x === 'string') return JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}…` : x);
  if (ArrayBuffer.isView(x)) {
    const a = x as unknown as ArrayLike<number>;
    return `${x.constructor.name}(${a.length})`;
  }
  if (Array.isArray(x)) return `array of length ${x.length}`;
  if (typeof x === 'function') return 'a function';
  return `an object (${Object.prototype.toString.call(x).slice(8, -1)})`;
}
