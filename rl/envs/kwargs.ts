/**
 * Keyword arguments of `make`, checked against each env's table of names, kinds and defaults:
 * an unknown name or a value of the wrong kind is an error naming the env, the keyword, what
 * was expected and what came (Gymnasium raises a TypeError for an unexpected keyword).
 */
import { InvalidArgument, UnregisteredEnv } from './errors.js';
import { describe } from './seeding.js';

/** How one keyword is checked. `range`: a pair [low, high] with low <= high. */
export type KwargKind = 'number' | 'positiveInteger' | 'boolean' | 'string' | 'range' | 'bodyRef';

export interface KwargSpec {
  kind: KwargKind;
  default: unknown;
  /** One line for `exp env list --kwargs` and docs. */
  doc: string;
}
export type KwargTable = Record<string, KwargSpec>;

/** Defaults overlaid with `given`, every value checked; throws on unknown names. */
export function parseKwargs<T>(envId: string, table: KwargTable, given: Record<string, unknown> = {}): T {
  const out: Record<string, unknown> = {};
  for (const [k, spec] of Object.entries(table)) out[k] = spec.default;
  for (const [k, v] of Object.entries(given)) {
    const spec = table[k];
    if (!spec) {
      const known = Object.keys(table);
      throw new UnregisteredEnv(
        `${envId}: unexpected keyword argument "${k}"; it takes ${known.length ? known.join(', ') : 'no keywords'}`,
      );
    }
    out[k] = checkKwarg(envId, k, spec.kind, v);
  }
  return out as T;
}

function checkKwarg(envId: string, name: string, kind: KwargKind, v: unknown): unknown {
  const bad = (expected: string) =>
    new InvalidArgument(`${envId}: keyword ${name} expects ${expected}; got ${describe(v)}`);
  switch (kind) {
    case 'number':
      if (typeof v !== 'number' || Number.isNaN(v)) throw bad('a number');
      return v;
    case 'positiveInteger':
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw bad('a positive integer');
      return v;
    case 'boolean':
      if (typeof v !== 'boolean') throw bad('true or false');
      return v;
    case 'string':
      if (typeof v !== 'string' || v.length === 0) throw bad('a non-empty string');
      return v;
    case 'bodyRef':
      if (
        !(typeof v === 'string' && v.length > 0) &&
        !(typeof v === 'number' && Number.isInteger(v) && v >= 0)
      )
        throw bad('a body index or name');
      return v;
    case 'range': {
      if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === 'number' && !Number.isNaN(x)))
        throw bad('a pair [low, high] of numbers');
      const [lo, hi] = v as [number, number];
      if (lo > hi) throw bad('a pair [low, high] with low <= high');
      return [lo, hi];
    }
  }
}
