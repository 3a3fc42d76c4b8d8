/**
 * Dataset metadata: Gymnasium spaces as Minari serialises them, and the dataset-level metadata
 * object — Minari's `metadata.json` keys, plus ours under a `ring_` prefix. The same JSON object
 * is `data/metadata.json` in the Minari layout and the `metadata.json` key of the Arrow schema's
 * metadata in the single-file layout, so converting between them never loses a field.
 */
import { InputError } from '../common/index.js';

/** A Gymnasium Box (flattened to `prod(shape)` values per step) or Discrete space. */
export type Space =
  | {
      type: 'Box';
      /** numpy dtype name as Minari writes it: `float32`, `float64`, `int64`, ... */
      dtype: string;
      shape: number[];
      /** Nested like `shape`; ±Infinity allowed (Minari writes Python's `-Infinity`). */
      low: unknown;
      high: unknown;
    }
  | { type: 'Discrete'; dtype: 'int64'; n: number; start: number };

/** Values per step of a space once flattened. */
export function spaceDim(space: Space): number {
  return space.type === 'Box' ? space.shape.reduce((a, b) => a * b, 1) : 1;
}

/** A float32 Box space of `dim` values, unbounded (what D4RL files imply). */
export function boxSpace(dim: number, dtype = 'float32', low = -Infinity, high = Infinity): Space {
  return { type: 'Box', dtype, shape: [dim], low: new Array(dim).fill(low), high: new Array(dim).fill(high) };
}

// Python's json writes ±Infinity and NaN as bare tokens; JSON.parse rejects them. Outside strings
// we swap them for sentinels and back.
const SENTINELS: Record<string, number> = {
  '"__ring_inf__"': Infinity,
  '"__ring_-inf__"': -Infinity,
  '"__ring_nan__"': Number.NaN,
};

/** JSON.parse that accepts Python's `Infinity`, `-Infinity` and `NaN` tokens. */
export function parsePythonJson(text: string): unknown {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === '\\') out += text[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
    } else if (text.startsWith('-Infinity', i)) {
      out += '"__ring_-inf__"';
      i += 8;
    } else if (text.startsWith('Infinity', i)) {
      out += '"__ring_inf__"';
      i += 7;
    } else if (text.startsWith('NaN', i)) {
      out += '"__ring_nan__"';
      i += 2;
    } else out += c;
  }
  return JSON.parse(out, (_k, v) =>
    typeof v === 'string' && `"${v}"` in SENTINELS ? SENTINELS[`"${v}"`] : v,
  );
}

/** JSON.stringify that writes non-finite numbers the way Python's json does (Minari reads them). */
export function stringifyPythonJson(value: unknown): string {
  const text = JSON.stringify(value, (_k, v) => {
    if (typeof v !== 'number' || Number.isFinite(v)) return v;
    return Number.isNaN(v) ? '__ring_nan__' : v > 0 ? '__ring_inf__' : '__ring_-inf__';
  });
  return text
    .replaceAll('"__ring_inf__"', 'Infinity')
    .replaceAll('"__ring_-inf__"', '-Infinity')
    .replaceAll('"__ring_nan__"', 'NaN');
}

/** Parses a serialised space (Minari's JSON string, or an object); `where` names file and key. */
export function parseSpace(value: unknown, where: string): Space {
  let obj: unknown = value;
  if (typeof value === 'string') {
    try {
      obj = parsePythonJson(value);
    } catch (err) {
      throw new InputError(
        `${where}: expected a JSON space; got unparsable text (${(err as Error).message})`,
      );
    }
  }
  const o = obj as Record<string, unknown> | null;
  if (!o || typeof o !== 'object')
    throw new InputError(`${where}: expected a space object; got ${typeof obj}`);
  if (o.type === 'Box') {
    const shape = o.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
      throw new InputError(`${where}: Box space needs an integer "shape" list; got ${JSON.stringify(shape)}`);
    return {
      type: 'Box',
      dtype: String(o.dtype ?? 'float32'),
      shape: shape as number[],
      low: o.low,
      high: o.high,
    };
  }
  if (o.type === 'Discrete') {
    if (!Number.isInteger(o.n))
      throw new InputError(`${where}: Discrete space needs an integer "n"; got ${o.n}`);
    return { type: 'Discrete', dtype: 'int64', n: o.n as number, start: Number(o.start ?? 0) };
  }
  throw new InputError(
    `${where}: unsupported space type ${JSON.stringify(o.type)} (expected Box or Discrete; Dict/Tuple/Text spaces are not supported)`,
  );
}

/** Serialises a space exactly as Minari's `serialize_space` does (a JSON string). */
export function serializeSpace(space: Space): string {
  if (space.type === 'Discrete')
    return stringifyPythonJson({ type: 'Discrete', dtype: 'int64', start: space.start, n: space.n });
  return stringifyPythonJson({
    type: 'Box',
    dtype: space.dtype,
    shape: space.shape,
    low: space.low,
    high: space.high,
  });
}

/** Static metadata a writer is given up front (what the data is and where it came from). */
export interface DatasetDescription {
  /** Minari-style id `(namespace/)name-v<version>`, e.g. `d4rl/hopper-medium-v2`. */
  datasetId: string;
  observationSpace: Space;
  actionSpace: Space;
  /** Gymnasium env id the data came from (`Ant-v5`), if known. */
  envId?: string;
  /** Time limit of the env (written into `env_spec`). */
  maxEpisodeSteps?: number;
  /** Keyword arguments the env was made with (`env_spec.kwargs`); {} = Gymnasium's defaults. */
  envKwargs?: Record<string, unknown>;
  /** A full Gymnasium `EnvSpec.to_json()` string; overrides `envId`. */
  envSpec?: string;
  /** Where the data came from: `d4rl:<file>`, `minari:<id>`, `exp collect`, ... */
  source?: string;
  /** The collection policy (Minari's `algorithm_name`). */
  algorithmName?: string;
  /** Returns of a random and an expert policy, for normalised scores (D4RL/Minari refs). */
  refMinScore?: number;
  refMaxScore?: number;
  description?: string;
  author?: string[];
  authorEmail?: string[];
  codePermalink?: string;
  /** More keys copied verbatim into the metadata object. */
  extra?: Record<string, unknown>;
}

/** Version of our additions to the format (the `ring_format_version` key). */
export const FORMAT_VERSION = 1;

/** Minari accepts a dataset whose `minari_version` is in its supported set; every 0.5.x release
 * supports 0.5.0, the first release with the Arrow storage whose layout we write. */
export const MINARI_VERSION = '0.5.0';

const DATASET_ID_RE = /^(?:[-_\w][-_\w/]*[-_\w]+\/)?[-_\w]+?-v\d+$/;

export function checkDatasetId(id: string, where: string): void {
  if (!DATASET_ID_RE.test(id))
    throw new InputError(
      `${where}: dataset id ${JSON.stringify(id)} is not of the form (namespace/)name-v<version> (Minari's rule), e.g. d4rl/hopper-medium-v2`,
    );
}

/**
 * Gymnasium 1.x's registrations of the ids our data comes from: entry point, vector entry point,
 * reward threshold (gymnasium/envs/__init__.py). Minari's `recover_environment()` calls
 * `gym.make(env_spec)`, which needs the entry point; null made it raise (issue 15).
 */
const GYMNASIUM_SPECS: Record<string, { entry: string; vector?: string; threshold?: number }> = {
  'CartPole-v1': {
    entry: 'gymnasium.envs.classic_control.cartpole:CartPoleEnv',
    vector: 'gymnasium.envs.classic_control.cartpole:CartPoleVectorEnv',
    threshold: 475,
  },
  'Pendulum-v1': { entry: 'gymnasium.envs.classic_control.pendulum:PendulumEnv' },
};
for (const [name, module, threshold] of [
  ['Ant', 'ant', 6000],
  ['HalfCheetah', 'half_cheetah', 4800],
  ['Hopper', 'hopper', 3800],
  ['Walker2d', 'walker2d', undefined],
] as const)
  for (const v of [4, 5])
    GYMNASIUM_SPECS[`${name}-v${v}`] = {
      entry: `gymnasium.envs.mujoco.${module}_v${v}:${name}Env`,
      threshold,
    };

/** Gymnasium's entry point (`module:Class`) of a registered id we know, else undefined. */
export function gymnasiumEntryPoint(envId: string): string | undefined {
  return GYMNASIUM_SPECS[envId]?.entry;
}

/**
 * Gymnasium's `EnvSpec.to_json()` for an env id (what Minari's `EnvSpec.from_json` reads and
 * `recover_environment` makes). The entry point is Gymnasium's own for the ids it registers
 * (gymnasiumEntryPoint); for another id it is null, and `recover_environment` cannot make it.
 */
export function envSpecJson(
  envId: string,
  maxEpisodeSteps?: number,
  kwargs: Record<string, unknown> = {},
): string {
  const known = GYMNASIUM_SPECS[envId];
  return JSON.stringify({
    id: envId,
    entry_point: known?.entry ?? null,
    reward_threshold: known?.threshold ?? null,
    nondeterministic: false,
    max_episode_steps: maxEpisodeSteps ?? null,
    order_enforce: true,
    disable_env_checker: false,
    kwargs,
    additional_wrappers: [],
    vector_entry_point: known?.vector ?? null,
  });
}

/** The metadata object (Minari keys + ours) for a description, before totals are known. */
export function describe(
  d: DatasetDescription,
  dataFormat: 'arrow' | 'hdf5' = 'arrow',
): Record<string, unknown> {
  checkDatasetId(d.datasetId, 'metadata.dataset_id');
  const meta: Record<string, unknown> = {
    total_episodes: 0,
    total_steps: 0,
    data_format: dataFormat,
    jpeg_encoding: false,
    observation_space: serializeSpace(d.observationSpace),
    action_space: serializeSpace(d.actionSpace),
  };
  const spec = d.envSpec ?? (d.envId ? envSpecJson(d.envId, d.maxEpisodeSteps, d.envKwargs) : undefined);
  if (spec !== undefined) meta.env_spec = spec;
  meta.dataset_id = d.datasetId;
  if (d.codePermalink !== undefined) meta.code_permalink = d.codePermalink;
  if (d.author !== undefined) meta.author = d.author;
  if (d.authorEmail !== undefined) meta.author_email = d.authorEmail;
  if (d.algorithmName !== undefined) meta.algorithm_name = d.algorithmName;
  if (d.description !== undefined) meta.description = d.description;
  meta.minari_version = MINARI_VERSION;
  if (d.refMinScore !== undefined) meta.ref_min_score = d.refMinScore;
  if (d.refMaxScore !== undefined) meta.ref_max_score = d.refMaxScore;
  meta.ring_format_version = FORMAT_VERSION;
  if (d.source !== undefined) meta.ring_source = d.source;
  Object.assign(meta, d.extra ?? {});
  return meta;
}

/** Typed view of a dataset's metadata object, checked. */
export interface DatasetInfo {
  datasetId: string;
  observationSpace: Space;
  actionSpace: Space;
  obsDim: number;
  actDim: number;
  envId?: string;
  totalEpisodes: number;
  totalSteps: number;
  refMinScore?: number;
  refMaxScore?: number;
  algorithmName?: string;
  source?: string;
  /** Short content digest (first 8 hex of `contentSha256`): the MLflow dataset digest. */
  digest?: string;
  contentSha256?: string;
  /** Per-dimension mean and std of the step observations (DT's state normalisation). */
  obsMean?: number[];
  obsStd?: number[];
  /** The whole metadata object as stored. */
  raw: Record<string, unknown>;
}

/** Checks a metadata object; `where` names the file (and key) for errors. */
export function readInfo(raw: unknown, where: string): DatasetInfo {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw new InputError(`${where}: expected a JSON object of dataset metadata`);
  const m = raw as Record<string, unknown>;
  for (const key of ['total_episodes', 'total_steps', 'observation_space', 'action_space']) {
    if (!(key in m)) throw new InputError(`${where}: missing key "${key}"`);
  }
  const int = (key: string) => {
    const v = m[key];
    if (!Number.isInteger(v) || (v as number) < 0)
      throw new InputError(`${where}: "${key}" must be a non-negative integer; got ${JSON.stringify(v)}`);
    return v as number;
  };
  const num = (key: string) => (typeof m[key] === 'number' ? (m[key] as number) : undefined);
  const str = (key: string) => (typeof m[key] === 'string' ? (m[key] as string) : undefined);
  const observationSpace = parseSpace(m.observation_space, `${where}: "observation_space"`);
  const actionSpace = parseSpace(m.action_space, `${where}: "action_space"`);
  let envId: string | undefined;
  const spec = str('env_spec');
  if (spec) {
    try {
      envId = (parsePythonJson(spec) as { id?: string }).id;
    } catch {
      envId = undefined;
    }
  }
  const arr = (key: string) =>
    Array.isArray(m[key]) ? (m[key] as unknown[]).map((x) => Number(x)) : undefined;
  return {
    datasetId: str('dataset_id') ?? '',
    observationSpace,
    actionSpace,
    obsDim: spaceDim(observationSpace),
    actDim: spaceDim(actionSpace),
    envId,
    totalEpisodes: int('total_episodes'),
    totalSteps: int('total_steps'),
    refMinScore: num('ref_min_score'),
    refMaxScore: num('ref_max_score'),
    algorithmName: str('algorithm_name'),
    source: str('ring_source'),
    digest: str('ring_digest'),
    contentSha256: str('ring_content_sha256'),
    obsMean: arr('ring_obs_mean'),
    obsStd: arr('ring_obs_std'),
    raw: m,
  };
}
