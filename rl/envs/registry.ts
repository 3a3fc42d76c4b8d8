/**
 * The registry, as Gymnasium's `register` / `make` / `spec`: ids of the form `Name-vN`, each with
 * a factory, a keyword table with defaults, and a `maxEpisodeSteps`. `make` builds the env and
 * wraps it like Gymnasium does: `OrderEnforcing(TimeLimit(env))` (our OrderEnforcing also forbids
 * stepping past the end of an episode, issue 4).
 */
import { AntEnv, ANT_KWARGS, type AntOptions } from './ant.js';
import {
  CARTPOLE_KWARGS,
  CartPoleEnv,
  type CartPoleOptions,
  PENDULUM_KWARGS,
  PendulumEnv,
  type PendulumOptions,
} from './classic.js';
import type { Env, EnvSpec } from './core.js';
import { InvalidArgument, UnregisteredEnv } from './errors.js';
import { HALF_CHEETAH_KWARGS, HalfCheetahEnv, type HalfCheetahOptions } from './half_cheetah.js';
import { type KwargTable, parseKwargs } from './kwargs.js';
import {
  HOPPER_KWARGS,
  PlanarWalkerEnv,
  type PlanarWalkerOptions,
  WALKER2D_KWARGS,
} from './planar_walker.js';
import { describe } from './seeding.js';
import { OrderEnforcing, TimeLimit } from './wrappers.js';

/** What `register` takes. */
export interface EnvRegistration {
  id: string;
  /** Builds the unwrapped env from checked keywords (defaults filled in). */
  entryPoint: (kwargs: Record<string, unknown>) => Env<unknown, unknown>;
  kwargs: KwargTable;
  maxEpisodeSteps?: number;
  rewardThreshold?: number;
  /** One line for `exp env list`. */
  description: string;
  /** Uses MuJoCo (slow to build, native memory). */
  mujoco?: boolean;
}

/** Options of `make` itself (not passed to the env). */
export interface MakeOptions {
  /** Overrides the registered time limit; 0 turns it off. */
  maxEpisodeSteps?: number;
  /** Leave out OrderEnforcing (vector envs manage resets themselves). Default false. */
  disableOrderEnforcing?: boolean;
}

const registry = new Map<string, EnvRegistration>();

export function register(reg: EnvRegistration): void {
  if (!/^[A-Za-z0-9_./:]+-v\d+$/.test(reg.id))
    throw new InvalidArgument(`register: id must look like Name-vN; got ${JSON.stringify(reg.id)}`);
  registry.set(reg.id, reg);
}

/** Registered ids, sorted. */
export function registeredIds(): string[] {
  return [...registry.keys()].sort();
}

/** The registration of `id`, or an error that says what exists (Gymnasium's NameNotFound / VersionNotFound). */
export function registration(id: string): EnvRegistration {
  if (typeof id !== 'string') throw new UnregisteredEnv(`make: env id must be a string; got ${describe(id)}`);
  const reg = registry.get(id);
  if (reg) return reg;
  const m = /^(.*)-v(\d+)$/.exec(id);
  const name = m ? m[1] : id;
  const versions = registeredIds().filter((k) => k.replace(/-v\d+$/, '') === name);
  if (versions.length > 0)
    throw new UnregisteredEnv(
      `Environment version ${m ? `v${m[2]}` : '(none given)'} for environment ${name} doesn't exist; it provides ${versions.join(', ')}`,
    );
  const names = [...new Set(registeredIds().map((k) => k.replace(/-v\d+$/, '')))];
  const close = names
    .map((n) => ({ n, d: editDistance(n.toLowerCase(), name.toLowerCase()) }))
    .filter((x) => x.d <= Math.max(2, Math.floor(name.length / 3)))
    .sort((a, b) => a.d - b.d)[0];
  throw new UnregisteredEnv(
    `Environment ${name} doesn't exist.${close ? ` Did you mean: ${close.n}?` : ''} Registered: ${registeredIds().join(', ')}`,
  );
}

/** The spec `make(id)` would give with `kwargs`. */
export function spec(id: string, kwargs: Record<string, unknown> = {}): EnvSpec {
  const reg = registration(id);
  return {
    id,
    maxEpisodeSteps: reg.maxEpisodeSteps,
    rewardThreshold: reg.rewardThreshold,
    kwargs: parseKwargs(id, reg.kwargs, kwargs),
  };
}

/**
 * Builds a registered env: `make('Ant-v5', { include_cfrc_ext_in_observation: false })`.
 * Keywords use Gymnasium's names; `max_episode_steps` among them is taken as Gymnasium's make does.
 */
export function make<Obs = Float64Array, Act = ArrayLike<number>>(
  id: string,
  kwargs: Record<string, unknown> = {},
  options: MakeOptions = {},
): Env<Obs, Act> {
  const reg = registration(id);
  const { max_episode_steps, ...envKwargs } = kwargs;
  let maxSteps = options.maxEpisodeSteps ?? reg.maxEpisodeSteps;
  if (max_episode_steps !== undefined) {
    if (
      typeof max_episode_steps !== 'number' ||
      !Number.isInteger(max_episode_steps) ||
      max_episode_steps < 0
    )
      throw new InvalidArgument(
        `${id}: max_episode_steps expects a non-negative integer; got ${describe(max_episode_steps)}`,
      );
    maxSteps = max_episode_steps;
  }
  if (maxSteps !== undefined && (!Number.isInteger(maxSteps) || maxSteps < 0))
    throw new InvalidArgument(`${id}: maxEpisodeSteps expects a non-negative integer; got ${maxSteps}`);
  const full = parseKwargs<Record<string, unknown>>(id, reg.kwargs, envKwargs);
  const base = reg.entryPoint(full);
  const envSpec: EnvSpec = {
    id,
    maxEpisodeSteps: maxSteps || undefined,
    rewardThreshold: reg.rewardThreshold,
    kwargs: full,
  };
  base.spec = envSpec;
  let env: Env<unknown, unknown> = base;
  if (maxSteps) env = new TimeLimit(env, maxSteps);
  if (!options.disableOrderEnforcing) env = new OrderEnforcing(env);
  env.spec = envSpec;
  return env as Env<Obs, Act>;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

// ---- The built-in environments (Gymnasium 1.x ids, defaults and time limits). ----

register({
  id: 'Ant-v5',
  entryPoint: (k) => new AntEnv(k as unknown as AntOptions),
  kwargs: ANT_KWARGS,
  maxEpisodeSteps: 1000,
  rewardThreshold: 6000,
  description: 'MuJoCo quadruped, obs 105 (27 without contact forces), action 8',
  mujoco: true,
});
register({
  id: 'HalfCheetah-v5',
  entryPoint: (k) => new HalfCheetahEnv(k as unknown as HalfCheetahOptions),
  kwargs: HALF_CHEETAH_KWARGS,
  maxEpisodeSteps: 1000,
  rewardThreshold: 4800,
  description: 'MuJoCo planar runner, obs 17, action 6, never terminates',
  mujoco: true,
});
register({
  id: 'Hopper-v5',
  entryPoint: (k) => new PlanarWalkerEnv(k as unknown as PlanarWalkerOptions),
  kwargs: HOPPER_KWARGS,
  maxEpisodeSteps: 1000,
  rewardThreshold: 3800,
  description: 'MuJoCo planar one-legged hopper, obs 11, action 3',
  mujoco: true,
});
register({
  id: 'Walker2d-v5',
  // NOTE: Walker2d has no healthy_state_range; the shared class skips that check when absent.
  entryPoint: (k) => new PlanarWalkerEnv(k as unknown as PlanarWalkerOptions),
  kwargs: WALKER2D_KWARGS,
  maxEpisodeSteps: 1000,
  description: 'MuJoCo planar biped, obs 17, action 6',
  mujoco: true,
});
register({
  id: 'CartPole-v1',
  entryPoint: (k) => new CartPoleEnv(k as unknown as CartPoleOptions) as unknown as Env<unknown, unknown>,
  kwargs: CARTPOLE_KWARGS,
  maxEpisodeSteps: 500,
  rewardThreshold: 475,
  description: 'classic control, obs 4 (float32), action Discrete(2)',
});
register({
  id: 'Pendulum-v1',
  entryPoint: (k) => new PendulumEnv(k as unknown as PendulumOptions) as unknown as Env<unknown, unknown>,
  kwargs: PENDULUM_KWARGS,
  maxEpisodeSteps: 200,
  description: 'classic control swing-up, obs 3 (float32), action Box(-2, 2, (1,))',
});
