/**
 * HalfCheetah-v5, as Gymnasium 1.x's `HalfCheetahEnv`: a planar runner that never terminates.
 * Observation (17,) = qpos[1:] (8) + qvel (9). Reward = forward_reward_weight · vx − ctrl_cost_weight · ‖a‖².
 */
import type { Info, StepResult } from './core.js';
import type { KwargTable } from './kwargs.js';
import { MujocoEnv, controlCost } from './mujoco_env.js';
import { Box } from './spaces.js';

export interface HalfCheetahOptions {
  xml_file: string;
  frame_skip: number;
  forward_reward_weight: number;
  ctrl_cost_weight: number;
  reset_noise_scale: number;
  exclude_current_positions_from_observation: boolean;
}

export const HALF_CHEETAH_KWARGS: KwargTable = {
  xml_file: {
    kind: 'string',
    default: 'half_cheetah.xml',
    doc: "MJCF model: a name in rl/envs/assets/ (as Gymnasium's assets), or a path starting with '.', '/' or '~'",
  },
  frame_skip: {
    kind: 'positiveInteger',
    default: 5,
    doc: 'physics steps per env step (dt = 0.01 × frame_skip)',
  },
  forward_reward_weight: { kind: 'number', default: 1.0, doc: 'weight of the x velocity reward' },
  ctrl_cost_weight: { kind: 'number', default: 0.1, doc: 'weight of ‖action‖²' },
  reset_noise_scale: {
    kind: 'number',
    default: 0.1,
    doc: 'qpos ~ U(±scale), qvel ~ scale·N(0, 1) around the initial state',
  },
  exclude_current_positions_from_observation: { kind: 'boolean', default: true, doc: 'drop qpos[0] (x)' },
};

export class HalfCheetahEnv extends MujocoEnv {
  readonly observationSpace: Box;
  private readonly skip: number;

  constructor(readonly options: HalfCheetahOptions) {
    super(options.xml_file, options.frame_skip);
    this.skip = options.exclude_current_positions_from_observation ? 1 : 0;
    this.observationSpace = new Box(
      -Infinity,
      Infinity,
      [this.model.nq + this.model.nv - this.skip],
      'float64',
    );
  }

  step(action: ArrayLike<number>): StepResult<Float64Array> {
    const x0 = this.data.qpos[0];
    this.doSimulation(action);
    const x1 = this.data.qpos[0];
    const vx = (x1 - x0) / this.dt;
    const forward = this.options.forward_reward_weight * vx;
    const ctrl = controlCost(this.options.ctrl_cost_weight, action);
    const info: Info = { x_position: x1, x_velocity: vx, reward_forward: forward, reward_ctrl: -ctrl };
    return [this.observation(), forward - ctrl, false, false, info];
  }

  /** (obsDim,) = qpos[skip:] ++ qvel. */
  observation(): Float64Array {
    const { qpos, qvel } = this.data;
    const out = new Float64Array(this.observationSpace.size);
    out.set(qpos.subarray(this.skip));
    out.set(qvel, qpos.length - this.skip);
    return out;
  }

  protected resetModel(): Float64Array {
    const scale = this.options.reset_noise_scale;
    this.setState(this.uniformAround(this.initQpos, scale), this.normalAround(this.initQvel, scale));
    return this.observation();
  }

  protected override resetInfo(): Info {
    return { x_position: this.data.qpos[0] };
  }
}
