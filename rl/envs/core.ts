/**
 * The environment contract, as Gymnasium 1.x's `gymnasium.Env`:
 * `reset({ seed, options }) → [obs, info]` and
 * `step(action) → [obs, reward, terminated, truncated, info]`, where `terminated` is a true end of
 * the MDP (the agent fell) and `truncated` an outside cut (the time limit). Wrappers stack on top
 * and `unwrapped` reaches the base environment.
 */
import type { Rng } from '../../common/index.js';
import { InvalidAction } from './errors.js';
import { checkSeed, makeRng } from './seeding.js';
import type { Space } from './spaces.js';

/** Extra information an env returns beside the observation; values are JSON-like. */
export type Info = Record<string, unknown>;

/** Arguments of `reset`. `options` are env-specific (e.g. CartPole's `low`/`high`). */
export interface ResetArgs {
  /** Reseeds the env's generator; without it the generator continues (or is drawn from the OS). */
  seed?: number;
  options?: Record<string, unknown>;
}

/** `[obs, reward, terminated, truncated, info]`. */
export type StepResult<Obs> = [obs: Obs, reward: number, terminated: boolean, truncated: boolean, info: Info];

/** Static facts about a registered env (Gymnasium's EnvSpec). */
export interface EnvSpec {
  /** `Name-vN`, e.g. `Ant-v5`. */
  id: string;
  /** Steps before `TimeLimit` truncates; undefined for no limit. */
  maxEpisodeSteps?: number;
  /** Return at which the task counts as solved, when defined. */
  rewardThreshold?: number;
  /** Keyword arguments the env was made with (defaults filled in). */
  kwargs: Record<string, unknown>;
}

export interface EnvMetadata {
  renderModes: string[];
  /** Steps per second of simulated time (1 / dt), as Gymnasium's render_fps. */
  renderFps?: number;
}

export abstract class Env<Obs = Float64Array, Act = ArrayLike<number>> {
  abstract readonly observationSpace: Space;
  abstract readonly actionSpace: Space;
  metadata: EnvMetadata = { renderModes: [] };
  /** Set by `make`; null for an env constructed directly. */
  spec: EnvSpec | null = null;
  private rngState: Rng | null = null;

  /** The env's generator (Gymnasium's `np_random`), drawn from the OS on first use if unseeded. */
  protected get npRandom(): Rng {
    if (!this.rngState) this.rngState = makeRng().rng;
    return this.rngState;
  }

  /** Starts an episode: `[initial observation, info]`. */
  abstract reset(args?: ResetArgs): [Obs, Info];

  /**
   * Subclasses call this first in `reset`: it validates and applies the seed, as Gymnasium's
   * `Env.reset(seed=...)` does, before they draw the initial state from `this.npRandom`.
   */
  protected applySeed(args: ResetArgs): void {
    const seed = checkSeed(args.seed, `${this.name}.reset`);
    if (seed !== undefined) this.rngState = makeRng(seed).rng;
  }

  abstract step(action: Act): StepResult<Obs>;

  /** Frees native resources; calling it twice is allowed. */
  close(): void {}

  /** The innermost env under all wrappers. */
  get unwrapped(): Env<unknown, unknown> {
    return this as unknown as Env<unknown, unknown>;
  }

  /** Name used in messages: the spec id when made by `make`, else the class name. */
  get name(): string {
    return this.spec?.id ?? this.constructor.name;
  }

  toString(): string {
    return `${this.constructor.name}<${this.name}>`;
  }
}

/** Throws `InvalidAction` when `action` is not in `space`, naming the env, the space and why. */
export function assertAction(env: { name: string }, space: Space, action: unknown): void {
  const why = space.explain(action);
  if (why !== null) throw new InvalidAction(`${env.name}.step: action not in ${space.toString()}: ${why}`);
}

/** Base of all wrappers: forwards everything to the wrapped env; override what changes. */
export class Wrapper<Obs = Float64Array, Act = ArrayLike<number>, InnerObs = Obs, InnerAct = Act> extends Env<
  Obs,
  Act
> {
  constructor(readonly env: Env<InnerObs, InnerAct>) {
    super();
    this.spec = env.spec;
    this.metadata = env.metadata;
  }
  get observationSpace(): Space {
    return this.env.observationSpace;
  }
  get actionSpace(): Space {
    return this.env.actionSpace;
  }
  reset(args: ResetArgs = {}): [Obs, Info] {
    return this.env.reset(args) as unknown as [Obs, Info];
  }
  step(action: Act): StepResult<Obs> {
    return this.env.step(action as unknown as InnerAct) as unknown as StepResult<Obs>;
  }
  override close(): void {
    this.env.close();
  }
  override get unwrapped(): Env<unknown, unknown> {
    return this.env.unwrapped;
  }
  override get name(): string {
    return this.env.name;
  }
  override toString(): string {
    return `${this.constructor.name}<${this.env.toString()}>`;
  }
}
