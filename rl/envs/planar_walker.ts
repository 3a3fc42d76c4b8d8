/**
 * Hopper-v5 and Walker2d-v5, as Gymnasium 1.x's `HopperEnv` and `Walker2dEnv`: planar robots
 * (slide x, slide z, hinge y at the root) rewarded for forward speed while healthy.
 * Observation = qpos[1:] ++ clip(qvel, −10, 10): (11,) Hopper, (17,) Walker2d.
 * Reward = forward_reward_weight · vx + healthy_reward − ctrl_cost_weight · ‖a‖².
 * Healthy: z = qpos[1] and angle = qpos[2] strictly inside their ranges, and for the Hopper also
 * every entry of state_vector()[2:] strictly inside healthy_state_range.
 */
import type { Info, StepResult } from './core.js';
import type { KwargTable } from './kwargs.js';
import { MujocoEnv, controlCost } from './mujoco_env.js';
import { Box } from './spaces.js';

export interface PlanarWalkerOptions {
  xml_file: string;
  frame_skip: number;
  forward_reward_weight: number;
  ctrl_cost_weight: number;
  healthy_reward: number;
  terminate_when_unhealthy: boolean;
  /** Hopper only. */
  healthy_state_range?: [number, number];
  healthy_z_range: [number, number];
  healthy_angle_range: [number, number];
  reset_noise_scale: number;
  exclude_current_positions_from_observation: boolean;
}

const common = (xml: string): KwargTable => ({
  xml_file: {
    kind: 'string',
    default: xml,
    doc: "MJCF model: a name in rl/envs/assets/ (as Gymnasium's assets), or a path starting with '.', '/' or '~'",
  },
  frame_skip: {
    kind: 'positiveInteger',
    default: 4,
    doc: 'physics steps per env step (dt = 0.002 × frame_skip)',
  },
  forward_reward_weight: { kind: 'number', default: 1.0, doc: 'weight of the x velocity reward' },
  ctrl_cost_weight: { kind: 'number', default: 1e-3, doc: 'weight of ‖action‖²' },
  healthy_reward: { kind: 'number', default: 1.0, doc: 'reward per step while healthy' },
  terminate_when_unhealthy: { kind: 'boolean', default: true, doc: 'terminate when unhealthy' },
});

export const HOPPER_KWARGS: KwargTable = {
  ...common('hopper.xml'),
  healthy_state_range: { kind: 'range', default: [-100.0, 100.0], doc: 'open range for state_vector()[2:]' },
  healthy_z_range: {
    kind: 'range',
    default: [0.7, Infinity],
    doc: 'open range for the torso height qpos[1]',
  },
  healthy_angle_range: { kind: 'range', default: [-0.2, 0.2], doc: 'open range for the torso angle qpos[2]' },
  reset_noise_scale: {
    kind: 'number',
    default: 5e-3,
    doc: 'qpos, qvel ~ U(±scale) around the initial state',
  },
  exclude_current_positions_from_observation: { kind: 'boolean', default: true, doc: 'drop qpos[0] (x)' },
};

export const WALKER2D_KWARGS: KwargTable = {
  ...common('walker2d_v5.xml'),
  healthy_z_range: { kind: 'range', default: [0.8, 2.0], doc: 'open range for the torso height qpos[1]' },
  healthy_angle_range: { kind: 'range', default: [-1.0, 1.0], doc: 'open range for the torso angle qpos[2]' },
  reset_noise_scale: {
    kind: 'number',
    default: 5e-3,
    doc: 'qpos, qvel ~ U(±scale) around the initial state',
  },
  exclude_current_positions_from_observation: { kind: 'boolean', default: true, doc: 'drop qpos[0] (x)' },
};

const inside = (v: number, [lo, hi]: [number, number]) => lo < v && v < hi;

/** Hopper-v5 and Walker2d-v5 differ only in model, defaults and the Hopper's state check. */
export class PlanarWalkerEnv extends MujocoEnv {
  readonly observationSpace: Box;
  private readonly skip: number;

  constructor(readonly options: PlanarWalkerOptions) {
    super(options.xml_file, options.frame_skip);
    this.skip = options.exclude_current_positions_from_observation ? 1 : 0;
    this.observationSpace = new Box(
      -Infinity,
      Infinity,
      [this.model.nq + this.model.nv - this.skip],
      'float64',
    );
  }

  isHealthy(): boolean {
    const { qpos, qvel } = this.data;
    const o = this.options;
    if (o.healthy_state_range) {
      for (let i = 2; i < qpos.length; i++) if (!inside(qpos[i], o.healthy_state_range)) return false;
      for (let i = 0; i < qvel.length; i++) if (!inside(qvel[i], o.healthy_state_range)) return false;
    }
    return inside(qpos[1], o.healthy_z_range) && inside(qpos[2], o.healthy_angle_range);
  }

  step(action: ArrayLike<number>): StepResult<Float64Array> {
    const x0 = this.data.qpos[0];
    this.doSimulation(action);
    const qpos = this.data.qpos;
    const vx = (qpos[0] - x0) / this.dt;
    const o = this.options;
    const healthy = this.isHealthy();
    const forward = o.forward_reward_weight * vx;
    const survive = healthy ? o.healthy_reward : 0;
    const ctrl = controlCost(o.ctrl_cost_weight, action);
    const info: Info = {
      x_position: qpos[0],
      z_distance_from_origin: qpos[1] - this.initQpos[1],
      x_velocity: vx,
      reward_forward: forward,
      reward_ctrl: -ctrl,
      reward_survive: survive,
    };
    return [
      this.observation(),
      forward + survive - ctrl,
      !healthy && o.terminate_when_unhealthy,
      false,
      info,
    ];
  }

  /** (obsDim,) = qpos[skip:] ++ clip(qvel, −10, 10). */
  observation(): Float64Array {
    const { qpos, qvel } = this.data;
    const out = new Float64Array(this.observationSpace.size);
    out.set(qpos.subarray(this.skip));
    const at = qpos.length - this.skip;
    for (let i = 0; i < qvel.length; i++) out[at + i] = Math.min(Math.max(qvel[i], -10), 10);
    return out;
  }

  protected resetModel(): Float64Array {
    const scale = this.options.reset_noise_scale;
    this.setState(this.uniformAround(this.initQpos, scale), this.uniformAround(this.initQvel, scale));
    return this.observation();
  }

  protected override resetInfo(): Info {
    return { x_position: this.data.qpos[0], z_distance_from_origin: this.data.qpos[1] - this.initQpos[1] };
  }
}
