/**
 * One episode in memory, and the checks and content hash every writer applies to it.
 * Minari's convention: an episode of T steps has T+1 observations (the last one is what the
 * final step led to) and T actions, rewards and flags.
 */
import type { Hash } from 'node:crypto';
import { InputError } from '../common/index.js';

/** An episode as plain typed arrays. Shapes in the comments; all row-major. */
export interface Episode {
  /** Episode id (Minari's `episode_id`; dense 0..E-1 in datasets we write). */
  id: number;
  /** Number of steps T. */
  length: number;
  /** (T+1, obsDim) */
  observations: Float32Array;
  /** (T, actDim) */
  actions: Float32Array;
  /** (T) */
  rewards: Float64Array;
  /** (T) 1 where the MDP ended (Gymnasium `terminated`; D4RL `terminals`). */
  terminations: Uint8Array;
  /** (T) 1 where a time limit cut the episode (Gymnasium `truncated`; D4RL `timeouts`). */
  truncations: Uint8Array;
  /** Numeric infos, name → (T+1, dim) float32 (row t: the info returned with observation t). */
  infos?: Record<string, Float32Array>;
  /** Reset seed, if recorded (Minari's per-episode metadata). */
  seed?: number;
}

/** What a writer accepts: any numeric array-likes with the shapes of `Episode`. */
export interface EpisodeInput {
  observations: ArrayLike<number>;
  actions: ArrayLike<number>;
  rewards: ArrayLike<number>;
  terminations: ArrayLike<number | boolean>;
  truncations: ArrayLike<number | boolean>;
  infos?: Record<string, ArrayLike<number>>;
  seed?: number;
}

function toF32(a: ArrayLike<number>): Float32Array {
  return a instanceof Float32Array ? a : Float32Array.from(a);
}

function toFlags(a: ArrayLike<number | boolean>): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ? 1 : 0;
  return out;
}

/**
 * Checks an episode against the dataset's dimensions and converts it to typed arrays.
 * `where` names the dataset (file) and episode for errors.
 */
export function checkEpisode(
  input: EpisodeInput,
  id: number,
  dims: { obsDim: number; actDim: number; infoDims?: Map<string, number> },
  where: string,
): Episode {
  const T = input.rewards.length;
  const at = `${where}: episode ${id}`;
  if (T === 0) throw new InputError(`${at}: key "rewards": expected at least 1 step; got 0`);
  const expect = (key: string, got: number, want: number, what: string) => {
    if (got !== want)
      throw new InputError(
        `${at}: key "${key}": expected ${want} values (${what}); got ${got} (mismatched lengths)`,
      );
  };
  expect(
    'observations',
    input.observations.length,
    (T + 1) * dims.obsDim,
    `T+1=${T + 1} rows × ${dims.obsDim}`,
  );
  expect('actions', input.actions.length, T * dims.actDim, `T=${T} rows × ${dims.actDim}`);
  expect('terminations', input.terminations.length, T, `T=${T}`);
  expect('truncations', input.truncations.length, T, `T=${T}`);
  const rewards = Float64Array.from(input.rewards);
  for (let t = 0; t < T; t++) {
    if (!Number.isFinite(rewards[t]))
      throw new InputError(`${at}: key "rewards": expected finite values; got ${rewards[t]} at step ${t}`);
  }
  const observations = toF32(input.observations);
  const actions = toF32(input.actions);
  for (const [key, arr] of [
    ['observations', observations],
    ['actions', actions],
  ] as const) {
    for (let k = 0; k < arr.length; k++) {
      if (!Number.isFinite(arr[k]))
        throw new InputError(
          `${at}: key "${key}": expected finite values; got ${arr[k]} at row ${Math.floor(k / (key === 'observations' ? dims.obsDim : dims.actDim))}`,
        );
    }
  }
  let infos: Record<string, Float32Array> | undefined;
  if (input.infos && Object.keys(input.infos).length > 0) {
    infos = {};
    for (const [name, values] of Object.entries(input.infos)) {
      const dim = values.length / (T + 1);
      if (!Number.isInteger(dim) || dim < 1)
        throw new InputError(
          `${at}: key "infos/${name}": expected (T+1)=${T + 1} rows; got ${values.length} values`,
        );
      const want = dims.infoDims?.get(name);
      if (want !== undefined && want !== dim)
        throw new InputError(`${at}: key "infos/${name}": expected ${want} values per row; got ${dim}`);
      infos[name] = toF32(values);
    }
  }
  return {
    id,
    length: T,
    observations,
    actions,
    rewards,
    terminations: toFlags(input.terminations),
    truncations: toFlags(input.truncations),
    infos,
    seed: input.seed,
  };
}

function bytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Feeds an episode's content into the dataset hash. Canonical dtypes (float32 observations and
 * actions, float64 rewards, one byte per flag, infos by sorted name), so the same data gives the
 * same digest in either layout and whatever dtype a source file used.
 */
export function hashEpisode(hash: Hash, ep: Episode, obsDim: number, actDim: number): void {
  hash.update(`episode ${ep.id} T=${ep.length} obs=${obsDim} act=${actDim}\n`);
  hash.update(bytes(ep.observations));
  hash.update(bytes(ep.actions));
  hash.update(bytes(ep.rewards));
  hash.update(ep.terminations);
  hash.update(ep.truncations);
  for (const name of Object.keys(ep.infos ?? {}).sort()) {
    hash.update(`info ${name}\n`);
    hash.update(bytes((ep.infos as Record<string, Float32Array>)[name]));
  }
}

/** Running sums for per-dimension mean/std (shifted by the first row to avoid cancellation). */
export class MomentSums {
  private shift: Float64Array | undefined;
  private sum: Float64Array;
  private sumSq: Float64Array;
  count = 0;

  constructor(readonly dim: number) {
    this.sum = new Float64Array(dim);
    this.sumSq = new Float64Array(dim);
  }

  /** Adds `rows` rows of `values` (row-major, `dim` per row). */
  add(values: Float32Array, rows: number): void {
    const d = this.dim;
    if (rows === 0) return;
    if (!this.shift) this.shift = Float64Array.from(values.subarray(0, d));
    const shift = this.shift;
    for (let r = 0; r < rows; r++) {
      const o = r * d;
      for (let j = 0; j < d; j++) {
        const x = values[o + j] - shift[j];
        this.sum[j] += x;
        this.sumSq[j] += x * x;
      }
    }
    this.count += rows;
  }

  /** Population mean and std (numpy's default, as DT's `np.std`). */
  result(): { mean: number[]; std: number[] } {
    const n = Math.max(1, this.count);
    const mean: number[] = [];
    const std: number[] = [];
    for (let j = 0; j < this.dim; j++) {
      const m = this.sum[j] / n;
      mean.push(m + (this.shift?.[j] ?? 0));
      std.push(Math.sqrt(Math.max(0, this.sumSq[j] / n - m * m)));
    }
    return { mean, std };
  }
}
