/**
 * What a replay needs to know about a task (issue 18): the geometry to draw, read from the loaded
 * MuJoCo model (the same MJCF the physics runs), or the few constants of a classic-control task;
 * and a snapshot of the state the drawing needs at one instant.
 */
import { CartPoleEnv, KinematicsScratch, MujocoEnv, PendulumEnv } from '../envs/index.js';
import type { Env } from '../envs/index.js';
import { InputError } from '../../common/index.js';

/** MuJoCo's geom types (mjtGeom) that the page draws; heightfields and meshes are not in our models. */
export const GEOM_TYPES = ['plane', 'hfield', 'sphere', 'capsule', 'ellipsoid', 'cylinder', 'box'] as const;
export type GeomType = (typeof GEOM_TYPES)[number];

/** One geom as the model has it: pose relative to its body, MuJoCo's `size` meaning per type. */
export interface SceneGeom {
  type: GeomType;
  /** (3,) sphere: radius; capsule/cylinder: radius, half-length; box: half-extents; plane: half-sizes. */
  size: number[];
  /** Index of the body it is attached to (0: the world). */
  body: number;
  /** (3,) position and (4,) quaternion (w, x, y, z) in the body's frame. */
  pos: number[];
  quat: number[];
  /** (4,) colour in [0, 1]. */
  rgba: number[];
}

/** A MuJoCo task's scene: geoms, and the body the camera follows (the root body). */
export interface MujocoScene {
  kind: 'mujoco';
  nbody: number;
  nq: number;
  /** The body the camera follows and the page highlights: the first body under the world. */
  trackBody: number;
  geoms: SceneGeom[];
  /** Vertical field of view of the model's free camera, degrees (MJCF `visual/global/fovy`). */
  fovy: number;
}
/** CartPole: the state is (x, ẋ, θ, θ̇); the pole's half-length and the track's edge. */
export interface CartPoleScene {
  kind: 'cartpole';
  poleHalfLength: number;
  xThreshold: number;
}
/** Pendulum: the state is (θ, θ̇), θ = 0 upright; a rod of length `length`. */
export interface PendulumScene {
  kind: 'pendulum';
  length: number;
}
export type Scene = MujocoScene | CartPoleScene | PendulumScene;

/** The state drawn at one instant: qpos (or a classic task's state), and MuJoCo's body poses. */
export interface StateSnapshot {
  /** (nq,) MuJoCo qpos, or the classic-control state vector. */
  qpos: Float64Array;
  /** (nbody, 3) body positions and (nbody, 4) quaternions (w, x, y, z); MuJoCo tasks only. */
  xpos?: Float64Array;
  xquat?: Float64Array;
}

// The wasm bindings type these fields loosely: the part of MjModel / MjData a scene reads.
interface SceneModel {
  ngeom: number;
  nbody: number;
  nq: number;
  geom_type: Int32Array;
  geom_size: Float64Array;
  geom_bodyid: Int32Array;
  geom_pos: Float64Array;
  geom_quat: Float64Array;
  geom_rgba: Float32Array;
  body_parentid: Int32Array;
  vis: { global: { fovy: number } };
}

/** The base env under the wrappers, checked to be one the replay can draw. */
export function replayableEnv(env: Env<unknown, unknown>): MujocoEnv | CartPoleEnv | PendulumEnv {
  const base = env.unwrapped;
  if (base instanceof MujocoEnv || base instanceof CartPoleEnv || base instanceof PendulumEnv) return base;
  throw new InputError(
    `rollout: cannot draw ${base.constructor.name}: the replay draws MuJoCo tasks, CartPole and Pendulum`,
  );
}

/** The scene of a (base) env: geometry from its compiled model, or a classic task's constants. */
export function sceneOf(env: MujocoEnv | CartPoleEnv | PendulumEnv): Scene {
  if (env instanceof CartPoleEnv)
    return { kind: 'cartpole', poleHalfLength: env.length, xThreshold: env.xThreshold };
  if (env instanceof PendulumEnv) return { kind: 'pendulum', length: env.l };
  const m = env.model as unknown as SceneModel;
  const geoms: SceneGeom[] = [];
  for (let g = 0; g < m.ngeom; g++) {
    const type = GEOM_TYPES[m.geom_type[g]];
    if (type === undefined || type === 'hfield')
      throw new InputError(
        `rollout: geom ${g} of ${env.name} has type ${m.geom_type[g]}, which the replay does not draw`,
      );
    geoms.push({
      type,
      size: Array.from(m.geom_size.subarray(3 * g, 3 * g + 3)),
      body: m.geom_bodyid[g],
      pos: Array.from(m.geom_pos.subarray(3 * g, 3 * g + 3)),
      quat: Array.from(m.geom_quat.subarray(4 * g, 4 * g + 4)),
      rgba: Array.from(m.geom_rgba.subarray(4 * g, 4 * g + 4), (v) => Math.round(v * 1000) / 1000),
    });
  }
  let trackBody = 1;
  for (let b = 1; b < m.nbody; b++)
    if (m.body_parentid[b] === 0) {
      trackBody = b;
      break;
    }
  return { kind: 'mujoco', nbody: m.nbody, nq: m.nq, trackBody, geoms, fovy: m.vis.global.fovy };
}

/**
 * The state of `env` now: copies (MjData's arrays are live views into wasm memory). MuJoCo body
 * poses come from `scratch` when given (a recorder keeps one per episode), else a fresh one.
 */
export function snapshotOf(
  env: MujocoEnv | CartPoleEnv | PendulumEnv,
  scratch?: KinematicsScratch,
): StateSnapshot {
  if (env instanceof CartPoleEnv || env instanceof PendulumEnv) {
    const s = (env as unknown as { state: Float64Array | undefined }).state;
    if (!s) throw new InputError(`rollout: ${env.name} has no state before its first reset`);
    return { qpos: Float64Array.from(s) };
  }
  // NOTE: not env.data.xpos: after mj_step those are the last substep's start, not this qpos's
  const qpos = Float64Array.from(env.data.qpos);
  if (scratch) return { qpos, ...scratch.poses(qpos) };
  const own = new KinematicsScratch(env.model);
  try {
    return { qpos, ...own.poses(qpos) };
  } finally {
    own.delete();
  }
}
