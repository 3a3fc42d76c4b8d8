/**
 * MuJoCo on DeepMind's WebAssembly build (`@mujoco/mujoco`), and the base of the MuJoCo tasks,
 * as Gymnasium's `MujocoEnv`: a model compiled from an MJCF XML string, `frameSkip` physics steps
 * per env step followed by `mj_rnePostConstraint` (so `cfrc_ext` is current), `setState` +
 * `mj_forward` for resets.
 *
 * The wasm module is loaded once per thread by a top-level await, so `make` stays synchronous
 * like Gymnasium's; it takes ~150 ms and works the same in worker threads.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import loadMujoco from '@mujoco/mujoco';
import { Env, type Info, type ResetArgs, type StepResult } from './core.js';
import { InvalidAction, InvalidArgument } from './errors.js';
import { Box } from './spaces.js';

/** The part of the wasm MjModel this project reads (the bindings type most fields as `any`). */
export interface MjModel {
  readonly nq: number;
  readonly nv: number;
  readonly nu: number;
  readonly na: number;
  readonly nbody: number;
  readonly opt: { timestep: number };
  readonly actuator_ctrlrange: Float64Array;
  delete(): void;
}
/** The part of the wasm MjData this project reads; arrays are live views into wasm memory. */
export interface MjData {
  readonly qpos: Float64Array;
  readonly qvel: Float64Array;
  readonly ctrl: Float64Array;
  readonly act: Float64Array;
  /** (nbody, 6) external forces on each body (torque then force, com-based). */
  readonly cfrc_ext: Float64Array;
  /** (nbody, 3) Cartesian body positions. */
  readonly xpos: Float64Array;
  /** (nbody, 4) body orientations as quaternions (w, x, y, z). */
  readonly xquat: Float64Array;
  delete(): void;
}
interface MujocoModule {
  MjModel: { from_xml_string(xml: string): MjModel };
  MjData: new (model: MjModel) => MjData;
  mj_step(m: MjModel, d: MjData): void;
  mj_forward(m: MjModel, d: MjData): void;
  mj_kinematics(m: MjModel, d: MjData): void;
  mj_resetData(m: MjModel, d: MjData): void;
  mj_rnePostConstraint(m: MjModel, d: MjData): void;
  mj_versionString(): string;
  mj_name2id(m: MjModel, type: number, name: string): number;
}

const mujoco = (await loadMujoco()) as unknown as MujocoModule;

/** The MuJoCo version of the wasm build (3.14.0 for @mujoco/mujoco 3.14.0). */
export function mujocoVersion(): string {
  return mujoco.mj_versionString();
}

/** Where the MJCF models live: rl/envs/assets/ in the repository (read from dist/ too). */
export function assetPath(file: string): string {
  return fileURLToPath(new URL(`../../../rl/envs/assets/${file}`, import.meta.url));
}

/** The models in rl/envs/assets/, under Gymnasium's asset names (Walker2d-v5's default is walker2d_v5.xml). */
export function shippedModels(): string[] {
  return readdirSync(assetPath('.'))
    .filter((f) => f.endsWith('.xml'))
    .sort();
}

/**
 * Where `xml_file` points, resolved as Gymnasium's expand_model_path does: a name starting with
 * '.' or '/' is a path, '~' is the home folder, anything else names a model in our assets (as
 * Gymnasium's name its own). A name we do not ship is refused, never replaced by another model
 * (issue 15: `walker2d.xml` used to load the v5 model where Gymnasium loads its v4 one).
 */
export function resolveModelPath(file: string): string {
  if (file.startsWith('.') || file.startsWith('/')) return file;
  if (file === '~' || file.startsWith('~/')) return join(homedir(), file.slice(1));
  const path = assetPath(file);
  if (!existsSync(path))
    throw new InvalidArgument(
      `xml_file "${file}": no such model here; a name is looked up among the models we ship ` +
        `(${shippedModels().join(', ')}), as Gymnasium looks in its assets folder; ` +
        `for your own MJCF file pass a path starting with './', '/' or '~/'`,
    );
  return path;
}

/** Reads an MJCF file named by `xml_file` (resolveModelPath). */
export function readModelXml(file: string): string {
  const path = resolveModelPath(file);
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new InvalidArgument(`xml_file "${file}": cannot read ${path}: ${(err as Error).message}`);
  }
}

export abstract class MujocoEnv extends Env<Float64Array, ArrayLike<number>> {
  readonly model: MjModel;
  readonly data: MjData;
  readonly actionSpace: Box;
  abstract override readonly observationSpace: Box;
  /** qpos / qvel after compiling (the model's qpos0, zero velocity): the reset's mean state. */
  readonly initQpos: Float64Array;
  readonly initQvel: Float64Array;
  private closed = false;

  constructor(
    xmlFile: string,
    readonly frameSkip: number,
  ) {
    super();
    if (!Number.isInteger(frameSkip) || frameSkip < 1)
      throw new InvalidArgument(`frame_skip: expected a positive integer; got ${frameSkip}`);
    const xml = readModelXml(xmlFile);
    try {
      this.model = mujoco.MjModel.from_xml_string(xml);
    } catch (err) {
      throw new InvalidArgument(`xml_file ${xmlFile}: MuJoCo could not compile it: ${String(err)}`);
    }
    this.data = new mujoco.MjData(this.model);
    this.initQpos = Float64Array.from(this.data.qpos);
    this.initQvel = Float64Array.from(this.data.qvel);
    // NOTE: as Gymnasium, the action space is the actuators' ctrlrange in float32.
    const range = this.model.actuator_ctrlrange;
    const nu = this.model.nu;
    const low = new Float32Array(nu);
    const high = new Float32Array(nu);
    for (let i = 0; i < nu; i++) {
      low[i] = range[2 * i];
      high[i] = range[2 * i + 1];
    }
    this.actionSpace = new Box(low, high, [nu], 'float32');
    this.metadata = { renderModes: [], renderFps: Math.round(1 / this.dt) };
  }

  /** Seconds of simulated time per env step: timestep × frameSkip. */
  get dt(): number {
    return this.model.opt.timestep * this.frameSkip;
  }

  /** Sets qpos and qvel and recomputes derived quantities (Gymnasium's `set_state`). */
  setState(qpos: ArrayLike<number>, qvel: ArrayLike<number>): void {
    if (qpos.length !== this.model.nq || qvel.length !== this.model.nv)
      throw new InvalidArgument(
        `${this.name}.setState: expected qpos (${this.model.nq},) and qvel (${this.model.nv},); got (${qpos.length},) and (${qvel.length},)`,
      );
    this.data.qpos.set(qpos);
    this.data.qvel.set(qvel);
    mujoco.mj_forward(this.model, this.data);
  }

  /** qpos then qvel, concatenated (Gymnasium's `state_vector`). */
  stateVector(): Float64Array {
    const { qpos, qvel } = this.data;
    const out = new Float64Array(qpos.length + qvel.length);
    out.set(qpos);
    out.set(qvel, qpos.length);
    return out;
  }

  /**
   * Validates the action (length, finite, within ctrlrange) and steps the physics. Gymnasium
   * raises only on a wrong length and lets MuJoCo clamp out-of-range controls; the issue asks for
   * an error instead, so a policy whose outputs leave [-1, 1] needs `ClipAction` (issue 4).
   */
  protected doSimulation(action: ArrayLike<number>): void {
    const nu = this.model.nu;
    if (!action || typeof action !== 'object' || action.length !== nu)
      throw new InvalidAction(
        `${this.name}.step: action dimension mismatch: expected (${nu},); got ${action && typeof action === 'object' ? `(${action.length},)` : typeof action}`,
      );
    const why = this.actionSpace.explain(action);
    if (why !== null)
      throw new InvalidAction(`${this.name}.step: action not in ${this.actionSpace.toString()}: ${why}`);
    const { model, data } = this;
    data.ctrl.set(action);
    for (let i = 0; i < this.frameSkip; i++) mujoco.mj_step(model, data);
    mujoco.mj_rnePostConstraint(model, data);
  }

  /** Resets the physics, then samples the task's initial state (`resetModel`). */
  reset(args: ResetArgs = {}): [Float64Array, Info] {
    this.applySeed(args);
    mujoco.mj_resetData(this.model, this.data);
    const obs = this.resetModel();
    return [obs, this.resetInfo()];
  }

  /** Draws the initial qpos/qvel around `initQpos`/`initQvel` and returns the observation. */
  protected abstract resetModel(): Float64Array;
  protected resetInfo(): Info {
    return {};
  }
  abstract override step(action: ArrayLike<number>): StepResult<Float64Array>;

  /** Uniform noise in [-scale, scale) added to `base`. */
  protected uniformAround(base: Float64Array, scale: number): Float64Array {
    const rng = this.npRandom;
    return base.map((v) => v + (-scale + 2 * scale * rng.next()));
  }
  /** Gaussian noise of standard deviation `scale` added to `base`. */
  protected normalAround(base: Float64Array, scale: number): Float64Array {
    const rng = this.npRandom;
    return base.map((v) => v + scale * rng.normal());
  }

  override close(): void {
    if (this.closed) return;
    this.closed = true;
    this.data.delete();
    this.model.delete();
  }
}

/**
 * Body poses (xpos (nbody, 3), xquat (nbody, 4)) of a qpos by forward kinematics on a scratch
 * MjData of its own. After mj_step the env's own xpos are those of the last substep's start, not
 * of its qpos; a replay must draw the qpos it shows, and must not touch the env's data (issue 18).
 * Holds wasm memory: `delete` it.
 */
export class KinematicsScratch {
  private readonly data: MjData;

  constructor(private readonly model: MjModel) {
    this.data = new mujoco.MjData(model);
  }

  poses(qpos: ArrayLike<number>): { xpos: Float64Array; xquat: Float64Array } {
    this.data.qpos.set(qpos);
    mujoco.mj_kinematics(this.model, this.data);
    return { xpos: Float64Array.from(this.data.xpos), xquat: Float64Array.from(this.data.xquat) };
  }

  delete(): void {
    this.data.delete();
  }
}

/** Index of the body called `name`, or -1 (mjOBJ_BODY = 1). */
export function bodyId(model: MjModel, name: string): number {
  return mujoco.mj_name2id(model, 1, name);
}

/**
 * weight · ‖action‖², computed the way numpy computes Gymnasium's
 * `weight * np.sum(np.square(action))`: for a float32 action (what `Box.sample` gives and what
 * policies usually send) in float32 with numpy's pairwise summation order, else in float64.
 * Matching the rounding keeps rewards equal to Gymnasium's to the last bit (the parity tests).
 */
export function controlCost(weight: number, action: ArrayLike<number>): number {
  const n = action.length;
  if (!(action instanceof Float32Array)) {
    let s = 0;
    for (let i = 0; i < n; i++) s += action[i] * action[i];
    return weight * s;
  }
  const f = Math.fround;
  const sq = (i: number) => f(action[i] * action[i]);
  let s: number;
  if (n < 8) {
    // numpy's pairwise_sum: a plain loop below 8 elements
    s = 0;
    for (let i = 0; i < n; i++) s = f(s + sq(i));
  } else {
    // eight accumulators over blocks of 8, combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)),
    // then the tail (numpy's PW_BLOCKSIZE of 128 is never reached by an action here)
    const r = [0, 1, 2, 3, 4, 5, 6, 7].map(sq);
    const whole = n - (n % 8);
    for (let i = 8; i < whole; i += 8) for (let j = 0; j < 8; j++) r[j] = f(r[j] + sq(i + j));
    s = f(f(f(r[0] + r[1]) + f(r[2] + r[3])) + f(f(r[4] + r[5]) + f(r[6] + r[7])));
    for (let i = whole; i < n; i++) s = f(s + sq(i));
  }
  // NEP 50: a Python float times a float32 scalar is float32
  return f(f(weight) * s);
}
