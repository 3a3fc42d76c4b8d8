/**
 * Ant-v5, as Gymnasium 1.x's `AntEnv` (PAPER.md §2): a quadruped on a free joint.
 * Observation (105,) = qpos[2:] (13) + qvel (14) + clip(cfrc_ext[1:], contact_force_range) (78);
 * 27 without contact forces, 2 more with current x/y positions.
 * Reward = forward_reward_weight · vx + healthy_reward − ctrl_cost_weight · ‖a‖²
 *          − contact_cost_weight · ‖clip(cfrc_ext)‖².
 * Terminates when the state is non-finite or the torso z leaves healthy_z_range.
 */
import type { Info, StepResult } from './core.js';
import { InvalidArgument } from './errors.js';
import type { KwargTable } from './kwargs.js';
import { bodyId, MujocoEnv, controlCost } from './mujoco_env.js';
import { Box } from './spaces.js';

export interface AntOptions {
  xml_file: string;
  frame_skip: number;
  forward_reward_weight: number;
  ctrl_cost_weight: number;
  contact_cost_weight: number;
  healthy_reward: number;
  main_body: number | string;
  terminate_when_unhealthy: boolean;
  healthy_z_range: [number, number];
  contact_force_range: [number, number];
  reset_noise_scale: number;
  exclude_current_positions_from_observation: boolean;
  include_cfrc_ext_in_observation: boolean;
}

/** Ant-v5's keywords and Gymnasium's defaults. */
export const ANT_KWARGS: KwargTable = {
  xml_file: {
    kind: 'string',
    default: 'ant.xml',
    doc: "MJCF model: a name in rl/envs/assets/ (as Gymnasium's assets), or a path starting with '.', '/' or '~'",
  },
  frame_skip: {
    kind: 'positiveInteger',
    default: 5,
    doc: 'physics steps per env step (dt = 0.01 × frame_skip)',
  },
  forward_reward_weight: { kind: 'number', default: 1, doc: 'weight of the x velocity reward' },
  ctrl_cost_weight: { kind: 'number', default: 0.5, doc: 'weight of ‖action‖²' },
  contact_cost_weight: { kind: 'number', default: 5e-4, doc: 'weight of ‖clipped cfrc_ext‖²' },
  healthy_reward: { kind: 'number', default: 1.0, doc: 'reward per step while healthy' },
  main_body: { kind: 'bodyRef', default: 1, doc: 'body whose x/y displacement gives the velocity' },
  terminate_when_unhealthy: { kind: 'boolean', default: true, doc: 'terminate when unhealthy' },
  healthy_z_range: { kind: 'range', default: [0.2, 1.0], doc: 'torso z range that counts as healthy' },
  contact_force_range: { kind: 'range', default: [-1.0, 1.0], doc: 'clip range of cfrc_ext' },
  reset_noise_scale: {
    kind: 'number',
    default: 0.1,
    doc: 'qpos ~ U(±scale), qvel ~ scale·N(0, 1) around the initial state',
  },
  exclude_current_positions_from_observation: {
    kind: 'boolean',
    default: true,
    doc: 'drop qpos[0:2] (x, y)',
  },
  include_cfrc_ext_in_observation: {
    kind: 'boolean',
    default: true,
    doc: 'append the 78 clipped contact forces',
  },
};

export class AntEnv extends MujocoEnv {
  readonly observationSpace: Box;
  /** Sizes of the observation's parts, as Gymnasium's `observation_structure`. */
  readonly observationStructure: { skipped_qpos: number; qpos: number; qvel: number; cfrc_ext: number };
  private readonly mainBody: number;

  constructor(readonly options: AntOptions) {
    super(options.xml_file, options.frame_skip);
    const { nq, nv, nbody } = this.model;
    const skip = options.exclude_current_positions_from_observation ? 2 : 0;
    const cfrc = options.include_cfrc_ext_in_observation ? (nbody - 1) * 6 : 0;
    this.observationStructure = { skipped_qpos: skip, qpos: nq - skip, qvel: nv, cfrc_ext: cfrc };
    this.observationSpace = new Box(-Infinity, Infinity, [nq - skip + nv + cfrc], 'float64');
    this.mainBody =
      typeof options.main_body === 'number' ? options.main_body : bodyId(this.model, options.main_body);
    if (this.mainBody < 0 || this.mainBody >= nbody)
      throw new InvalidArgument(
        `Ant-v5: keyword main_body: no body ${JSON.stringify(options.main_body)} in the model`,
      );
  }

  /** Sum of squares of cfrc_ext clipped to contact_force_range, over all bodies (world too). */
  private contactCost(): number {
    const [lo, hi] = this.options.contact_force_range;
    const f = this.data.cfrc_ext;
    let s = 0;
    for (let i = 0; i < f.length; i++) {
      const v = Math.min(Math.max(f[i], lo), hi);
      s += v * v;
    }
    return this.options.contact_cost_weight * s;
  }

  isHealthy(): boolean {
    const { qpos, qvel } = this.data;
    for (let i = 0; i < qpos.length; i++) if (!Number.isFinite(qpos[i])) return false;
    for (let i = 0; i < qvel.length; i++) if (!Number.isFinite(qvel[i])) return false;
    const [lo, hi] = this.options.healthy_z_range;
    return lo <= qpos[2] && qpos[2] <= hi;
  }

  step(action: ArrayLike<number>): StepResult<Float64Array> {
    const b = 3 * this.mainBody;
    // NOTE: xpos after mj_step is the kinematics of the last substep's start, as Gymnasium reads it.
    let xpos = this.data.xpos;
    const x0 = xpos[b];
    const y0 = xpos[b + 1];
    this.doSimulation(action);
    xpos = this.data.xpos;
    const vx = (xpos[b] - x0) / this.dt;
    const vy = (xpos[b + 1] - y0) / this.dt;
    const obs = this.observation();
    const o = this.options;
    const healthy = this.isHealthy();
    const forward = vx * o.forward_reward_weight;
    const survive = healthy ? o.healthy_reward : 0;
    const ctrl = controlCost(o.ctrl_cost_weight, action);
    const contact = this.contactCost();
    const reward = forward + survive - (ctrl + contact);
    const terminated = !healthy && o.terminate_when_unhealthy;
    const qpos = this.data.qpos;
    const info: Info = {
      x_position: qpos[0],
      y_position: qpos[1],
      distance_from_origin: Math.hypot(qpos[0], qpos[1]),
      x_velocity: vx,
      y_velocity: vy,
      reward_forward: forward,
      reward_ctrl: -ctrl,
      reward_contact: -contact,
      reward_survive: survive,
    };
    return [obs, reward, terminated, false, info];
  }

  /** (obsDim,) = qpos[skip:] ++ qvel ++ clip(cfrc_ext[1:]). */
  observation(): Float64Array {
    const { qpos, qvel } = this.data;
    const s = this.observationStructure;
    const out = new Float64Array(this.observationSpace.size);
    out.set(s.skipped_qpos ? qpos.subarray(s.skipped_qpos) : qpos);
    out.set(qvel, s.qpos);
    if (s.cfrc_ext) {
      const [lo, hi] = this.options.contact_force_range;
      const f = this.data.cfrc_ext;
      const at = s.qpos + s.qvel;
      for (let i = 0; i < s.cfrc_ext; i++) out[at + i] = Math.min(Math.max(f[6 + i], lo), hi);
    }
    return out;
  }

  protected resetModel(): Float64Array {
    const scale = this.options.reset_noise_scale;
    const qpos = this.uniformAround(this.initQpos, scale);
    const qvel = this.normalAround(this.initQvel, scale);
    this.setState(qpos, qvel);
    return this.observation();
  }

  protected override resetInfo(): Info {
    const qpos = this.data.qpos;
    return { x_position: qpos[0], y_position: qpos[1], distance_from_origin: Math.hypot(qpos[0], qpos[1]) };
  }
}
