/**
 * Spaces, as Gymnasium 1.x's `gymnasium.spaces`: `Box`, `Discrete`, `MultiDiscrete` and `Dict`,
 * each with `sample`, `contains`, `seed` and a JSON form. The JSON form follows Minari's
 * `serialize_space` (type, dtype, shape, low, high / n, start / nvec / subspaces) so dataset
 * metadata reads in both languages; infinities are written as the strings "inf" and "-inf"
 * (valid JSON, and numpy turns them back into floats), and `parseSpaceJSON` also takes Python's
 * `Infinity` tokens.
 */
import type { Rng } from '../../common/index.js';
import { InvalidArgument } from './errors.js';
import { checkSeed, childSeed, describe, makeRng } from './seeding.js';

/** Element types a Box can hold. Integer boxes are out of scope (no env here uses them). */
export type BoxDtype = 'float32' | 'float64';
/** A Box value: a flat typed array (row-major for multi-dimensional shapes) or a number array. */
export type BoxValue = Float32Array | Float64Array;

export type SpaceJSON =
  | { type: 'Box'; dtype: BoxDtype; shape: number[]; low: JSONNumber[]; high: JSONNumber[] }
  | { type: 'Discrete'; dtype: 'int64'; n: number; start: number }
  | { type: 'MultiDiscrete'; dtype: 'int64'; nvec: number[]; start: number[] }
  | { type: 'Dict'; subspaces: Record<string, SpaceJSON> };
/** A number in JSON: infinities as "inf" / "-inf" strings. */
export type JSONNumber = number | 'inf' | '-inf';

/** Any space; narrow with `instanceof` or `kind`. */
export type Space = Box | Discrete | MultiDiscrete | DictSpace;

/** What every space offers. */
abstract class BaseSpace<T> {
  protected rng: Rng;
  constructor(seed?: number) {
    this.rng = makeRng(checkSeed(seed, `${this.constructor.name}`)).rng;
  }
  /** A random element (uniform where bounded, see `Box.sample`). */
  abstract sample(): T;
  /** Why `x` is not an element, or null when it is. */
  abstract explain(x: unknown): string | null;
  /** True when `x` is an element of the space. */
  contains(x: unknown): x is T {
    return this.explain(x) === null;
  }
  /** Reseeds the sampler; returns the seeds used (one per leaf space, as Gymnasium). */
  seed(seed?: number): number[] {
    const made = makeRng(checkSeed(seed, `${this.constructor.name}.seed`));
    this.rng = made.rng;
    return [made.seed];
  }
  abstract toJSON(): SpaceJSON;
  abstract toString(): string;
}

const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const fmt = (v: number) => (v === Infinity ? 'inf' : v === -Infinity ? '-inf' : String(v));

function isNumberArray(x: unknown): x is ArrayLike<number> {
  if (ArrayBuffer.isView(x)) return !(x instanceof DataView) && !(x instanceof BigInt64Array);
  return Array.isArray(x) && x.every((v) => typeof v === 'number');
}

/**
 * A box in R^n: `low <= x <= high` element-wise, bounds possibly infinite. Bounds are stored in
 * the box's dtype (as Gymnasium casts them), so a float32 box's bound 0.1 is float32(0.1).
 */
export class Box extends BaseSpace<BoxValue> {
  readonly kind = 'Box' as const;
  readonly shape: readonly number[];
  readonly size: number;
  readonly low: BoxValue;
  readonly high: BoxValue;

  /**
   * `low`/`high`: scalars (broadcast to `shape`) or arrays of `product(shape)` values; when both
   * are arrays `shape` may be omitted.
   */
  constructor(
    low: number | ArrayLike<number>,
    high: number | ArrayLike<number>,
    shape?: readonly number[],
    readonly dtype: BoxDtype = 'float32',
    seed?: number,
  ) {
    super(seed);
    const inferred = typeof low !== 'number' ? [low.length] : typeof high !== 'number' ? [high.length] : null;
    const s = shape ?? inferred;
    if (!s) throw new InvalidArgument('Box: give a shape when low and high are both scalars');
    if (!s.every((d) => Number.isInteger(d) && d >= 0))
      throw new InvalidArgument(`Box: shape must be non-negative integers; got [${s.join(', ')}]`);
    if (dtype !== 'float32' && dtype !== 'float64')
      throw new InvalidArgument(`Box: dtype must be "float32" or "float64"; got ${describe(dtype)}`);
    this.shape = [...s];
    this.size = product(s);
    const make = (v: number | ArrayLike<number>, what: string): BoxValue => {
      const out = dtype === 'float32' ? new Float32Array(this.size) : new Float64Array(this.size);
      if (typeof v === 'number') out.fill(v);
      else {
        if (v.length !== this.size)
          throw new InvalidArgument(
            `Box: ${what} has ${v.length} values; shape [${s.join(', ')}] needs ${this.size}`,
          );
        out.set(v);
      }
      return out;
    };
    this.low = make(low, 'low');
    this.high = make(high, 'high');
    for (let i = 0; i < this.size; i++) {
      if (Number.isNaN(this.low[i]) || Number.isNaN(this.high[i]) || this.low[i] > this.high[i])
        throw new InvalidArgument(`Box: low[${i}] = ${this.low[i]} must be <= high[${i}] = ${this.high[i]}`);
      if (this.low[i] === Infinity || this.high[i] === -Infinity)
        throw new InvalidArgument(`Box: bounds at ${i} leave no room: [${this.low[i]}, ${this.high[i]}]`);
    }
  }

  /** True when every dimension has finite bounds on both sides. */
  isBounded(): boolean {
    for (let i = 0; i < this.size; i++)
      if (!Number.isFinite(this.low[i]) || !Number.isFinite(this.high[i])) return false;
    return true;
  }

  /**
   * As Gymnasium: uniform on [low, high] where bounded, standard normal where unbounded,
   * low + Exp(1) / high − Exp(1) where bounded on one side.
   */
  sample(): BoxValue {
    const out = this.dtype === 'float32' ? new Float32Array(this.size) : new Float64Array(this.size);
    for (let i = 0; i < this.size; i++) {
      const lo = this.low[i];
      const hi = this.high[i];
      const loFin = Number.isFinite(lo);
      const hiFin = Number.isFinite(hi);
      let v: number;
      if (loFin && hiFin) v = lo + (hi - lo) * this.rng.next();
      else if (!loFin && !hiFin) v = this.rng.normal();
      else if (loFin) v = lo - Math.log(1 - this.rng.next());
      else v = hi + Math.log(1 - this.rng.next());
      out[i] = v;
      // NOTE: rounding to float32 may step just past a bound; clamp like numpy's cast + clip.
      if (out[i] > hi) out[i] = hi;
      if (out[i] < lo) out[i] = lo;
    }
    return out;
  }

  explain(x: unknown): string | null {
    if (!isNumberArray(x)) return `expected an array of ${this.size} numbers; got ${describe(x)}`;
    if (x.length !== this.size)
      return `expected ${this.size} values (shape [${this.shape.join(', ')}]); got ${x.length}`;
    for (let i = 0; i < this.size; i++) {
      const v = x[i];
      if (Number.isNaN(v)) return `element ${i} is NaN`;
      if (!(v >= this.low[i] && v <= this.high[i]))
        return `element ${i} = ${v} is outside [${fmt(this.low[i])}, ${fmt(this.high[i])}]`;
    }
    return null;
  }

  toJSON(): SpaceJSON {
    const arr = (a: BoxValue): JSONNumber[] =>
      Array.from(a, (v) => (v === Infinity ? 'inf' : v === -Infinity ? '-inf' : v));
    return {
      type: 'Box',
      dtype: this.dtype,
      shape: [...this.shape],
      low: arr(this.low),
      high: arr(this.high),
    };
  }

  toString(): string {
    const bound = (a: BoxValue) => {
      const first = a[0];
      return a.every((v) => v === first) ? fmt(first ?? 0) : `[${Array.from(a, fmt).join(' ')}]`;
    };
    return `Box(${bound(this.low)}, ${bound(this.high)}, (${this.shape.join(', ')}${this.shape.length === 1 ? ',' : ''}), ${this.dtype})`;
  }
}

/** Integers {start, ..., start + n − 1}. */
export class Discrete extends BaseSpace<number> {
  readonly kind = 'Discrete' as const;
  readonly shape: readonly number[] = [];
  constructor(
    readonly n: number,
    readonly start = 0,
    seed?: number,
  ) {
    super(seed);
    if (!Number.isSafeInteger(n) || n <= 0)
      throw new InvalidArgument(`Discrete: n must be a positive integer; got ${n}`);
    if (!Number.isSafeInteger(start))
      throw new InvalidArgument(`Discrete: start must be an integer; got ${start}`);
  }
  sample(): number {
    return this.start + this.rng.int(this.n);
  }
  explain(x: unknown): string | null {
    if (typeof x !== 'number' || !Number.isInteger(x)) return `expected an integer; got ${describe(x)}`;
    if (x < this.start || x >= this.start + this.n)
      return `${x} is outside {${this.start}, ..., ${this.start + this.n - 1}}`;
    return null;
  }
  toJSON(): SpaceJSON {
    return { type: 'Discrete', dtype: 'int64', n: this.n, start: this.start };
  }
  toString(): string {
    return this.start === 0 ? `Discrete(${this.n})` : `Discrete(${this.n}, start=${this.start})`;
  }
}

/** A vector of integers, element i in {start[i], ..., start[i] + nvec[i] − 1}. */
export class MultiDiscrete extends BaseSpace<Int32Array> {
  readonly kind = 'MultiDiscrete' as const;
  readonly nvec: Int32Array;
  readonly start: Int32Array;
  readonly shape: readonly number[];
  constructor(nvec: ArrayLike<number>, start?: ArrayLike<number>, seed?: number) {
    super(seed);
    this.nvec = Int32Array.from(nvec);
    this.start = start ? Int32Array.from(start) : new Int32Array(this.nvec.length);
    this.shape = [this.nvec.length];
    if (this.start.length !== this.nvec.length)
      throw new InvalidArgument(
        `MultiDiscrete: start has ${this.start.length} values, nvec ${this.nvec.length}`,
      );
    for (let i = 0; i < nvec.length; i++)
      if (!Number.isInteger(nvec[i]) || nvec[i] <= 0)
        throw new InvalidArgument(`MultiDiscrete: nvec[${i}] must be a positive integer; got ${nvec[i]}`);
  }
  sample(): Int32Array {
    return this.nvec.map((n, i) => this.start[i] + this.rng.int(n));
  }
  explain(x: unknown): string | null {
    if (!isNumberArray(x)) return `expected an array of ${this.nvec.length} integers; got ${describe(x)}`;
    if (x.length !== this.nvec.length) return `expected ${this.nvec.length} values; got ${x.length}`;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      if (!Number.isInteger(v)) return `element ${i} = ${v} is not an integer`;
      if (v < this.start[i] || v >= this.start[i] + this.nvec[i])
        return `element ${i} = ${v} is outside {${this.start[i]}, ..., ${this.start[i] + this.nvec[i] - 1}}`;
    }
    return null;
  }
  toJSON(): SpaceJSON {
    return {
      type: 'MultiDiscrete',
      dtype: 'int64',
      nvec: Array.from(this.nvec),
      start: Array.from(this.start),
    };
  }
  toString(): string {
    return `MultiDiscrete([${this.nvec.join(' ')}])`;
  }
}

/** Value of a Dict space: one value per key. */
export type DictValue = { [key: string]: unknown };

/** Named subspaces. Keys are sorted, as Gymnasium does for a plain mapping. */
export class DictSpace extends BaseSpace<DictValue> {
  readonly kind = 'Dict' as const;
  readonly shape = null;
  readonly spaces: Readonly<Record<string, Space>>;
  constructor(spaces: Record<string, Space>, seed?: number) {
    super(seed);
    const sorted: Record<string, Space> = {};
    for (const k of Object.keys(spaces).sort()) sorted[k] = spaces[k];
    this.spaces = sorted;
  }
  sample(): DictValue {
    const out: DictValue = {};
    for (const [k, s] of Object.entries(this.spaces)) out[k] = s.sample();
    return out;
  }
  explain(x: unknown): string | null {
    if (typeof x !== 'object' || x === null || Array.isArray(x) || ArrayBuffer.isView(x))
      return `expected an object with keys ${Object.keys(this.spaces).join(', ')}; got ${describe(x)}`;
    const rec = x as Record<string, unknown>;
    const keys = Object.keys(rec);
    for (const k of Object.keys(this.spaces)) if (!(k in rec)) return `key "${k}" is missing`;
    for (const k of keys) if (!(k in this.spaces)) return `key "${k}" is not in the space`;
    for (const [k, s] of Object.entries(this.spaces)) {
      const why = s.explain(rec[k]);
      if (why) return `["${k}"]: ${why}`;
    }
    return null;
  }
  /** An integer seed seeds this space, then each subspace from seeds it draws (as Gymnasium). */
  override seed(seed?: number): number[] {
    const [own] = super.seed(seed);
    const out = [own];
    for (const s of Object.values(this.spaces)) out.push(...s.seed(childSeed(this.rng)));
    return out;
  }
  toJSON(): SpaceJSON {
    const subspaces: Record<string, SpaceJSON> = {};
    for (const [k, s] of Object.entries(this.spaces)) subspaces[k] = s.toJSON();
    return { type: 'Dict', subspaces };
  }
  toString(): string {
    return `Dict(${Object.entries(this.spaces)
      .map(([k, s]) => `'${k}': ${s.toString()}`)
      .join(', ')})`;
  }
}

/** Rebuilds a space from its JSON form (ours or Minari's). */
export function spaceFromJSON(json: unknown, path = 'space'): Space {
  if (typeof json !== 'object' || json === null)
    throw new InvalidArgument(`${path}: expected an object; got ${describe(json)}`);
  const j = json as Record<string, unknown>;
  const num = (v: unknown, where: string): number => {
    if (typeof v === 'number') return v;
    if (v === 'inf' || v === 'Infinity' || v === '+inf') return Infinity;
    if (v === '-inf' || v === '-Infinity') return -Infinity;
    throw new InvalidArgument(`${where}: expected a number or "inf"/"-inf"; got ${describe(v)}`);
  };
  const nums = (v: unknown, where: string): number[] => {
    if (!Array.isArray(v)) throw new InvalidArgument(`${where}: expected an array; got ${describe(v)}`);
    return v.map((x, i) => num(x, `${where}[${i}]`));
  };
  switch (j.type) {
    case 'Box': {
      const dtype = j.dtype === 'float64' ? 'float64' : j.dtype === 'float32' ? 'float32' : null;
      if (!dtype)
        throw new InvalidArgument(`${path}.dtype: expected "float32" or "float64"; got ${describe(j.dtype)}`);
      const shape = nums(j.shape, `${path}.shape`);
      // NOTE: numpy's tolist() of a multi-dimensional box nests arrays; flatten row-major.
      const flat = (v: unknown, where: string): unknown =>
        Array.isArray(v) ? (v as unknown[]).flat(Number.POSITIVE_INFINITY) : nums([v], where)[0];
      const low = flat(j.low, `${path}.low`);
      const high = flat(j.high, `${path}.high`);
      return new Box(
        typeof low === 'number' ? low : nums(low, `${path}.low`),
        typeof high === 'number' ? high : nums(high, `${path}.high`),
        shape,
        dtype,
      );
    }
    case 'Discrete':
      return new Discrete(num(j.n, `${path}.n`), j.start === undefined ? 0 : num(j.start, `${path}.start`));
    case 'MultiDiscrete':
      return new MultiDiscrete(
        nums(j.nvec, `${path}.nvec`),
        j.start === undefined ? undefined : nums(j.start, `${path}.start`),
      );
    case 'Dict': {
      if (typeof j.subspaces !== 'object' || j.subspaces === null)
        throw new InvalidArgument(`${path}.subspaces: expected an object; got ${describe(j.subspaces)}`);
      const subs: Record<string, Space> = {};
      for (const [k, v] of Object.entries(j.subspaces)) subs[k] = spaceFromJSON(v, `${path}.subspaces.${k}`);
      return new DictSpace(subs);
    }
    default:
      throw new InvalidArgument(
        `${path}.type: expected one of Box, Discrete, MultiDiscrete, Dict; got ${describe(j.type)}`,
      );
  }
}

/** Parses a space from JSON text, accepting Python's `Infinity`/`-Infinity` tokens (json.dumps). */
export function parseSpaceJSON(text: string): Space {
  const fixed = text.replace(/(-?)\bInfinity\b/g, (_m, sign: string) => (sign ? '"-inf"' : '"inf"'));
  return spaceFromJSON(JSON.parse(fixed));
}

/** Deep equality of two space values (typed arrays compared element-wise, NaN equal to NaN). */
export function valuesEqual(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a === b || (Number.isNaN(a) && Number.isNaN(b));
  if (isNumberArray(a) && isNumberArray(b)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!valuesEqual(a[i], b[i])) return false;
    return true;
  }
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    if (ka.length !== kb.length) return false;
    return ka.every((k) => valuesEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return a === b;
}
