/**
 * Classic control, as Gymnasium 1.x: CartPole-v1 (Barto, Sutton & Anderson's cart-pole, Euler
 * at τ = 0.02) and Pendulum-v1 (swing-up, dt = 0.05). Small and fast, for tests.
 */
import { Env, type Info, type ResetArgs, assertAction, type StepResult } from './core.js';
import { InvalidArgument, ResetNeeded } from './errors.js';
import type { KwargTable } from './kwargs.js';
import { describe, uniform } from './seeding.js';
import { Box, Discrete } from './spaces.js';

/** A reset option that must be a number (Gymnasium's `verify_number_and_cast`). */
function optionNumber(
  env: string,
  options: Record<string, unknown> | undefined,
  key: string,
  fallback: number,
): number {
  if (!options || !(key in options)) return fallback;
  const v = options[key];
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN;
  if (Number.isNaN(n))
    throw new InvalidArgument(
      `${env}.reset: option ${key} (${describe(v)}) could not be converted to a number`,
    );
  return n;
}

export interface CartPoleOptions {
  sutton_barto_reward: boolean;
}
export const CARTPOLE_KWARGS: KwargTable = {
  sutton_barto_reward: {
    kind: 'boolean',
    default: false,
    doc: 'reward 0 per step and −1 on termination (Sutton & Barto) instead of +1 per step',
  },
};

export class CartPoleEnv extends Env<Float32Array, number> {
  readonly gravity = 9.8;
  readonly massCart = 1.0;
  readonly massPole = 0.1;
  readonly totalMass = 1.1;
  /** Half the pole's length. */
  readonly length = 0.5;
  readonly poleMassLength = 0.05;
  readonly forceMag = 10.0;
  /** Seconds between state updates. */
  readonly tau = 0.02;
  readonly thetaThreshold = (12 * 2 * Math.PI) / 360;
  readonly xThreshold = 2.4;
  readonly actionSpace = new Discrete(2);
  readonly observationSpace: Box;
  /** (x, ẋ, θ, θ̇) in float64; observations are its float32 copy. */
  state: Float64Array | null = null;
  private stepsBeyondTerminated: number | null = null;

  constructor(readonly options: CartPoleOptions = { sutton_barto_reward: false }) {
    super();
    const high = [this.xThreshold * 2, Infinity, this.thetaThreshold * 2, Infinity];
    this.observationSpace = new Box(
      high.map((v) => -v),
      high,
      [4],
      'float32',
    );
    this.metadata = { renderModes: [], renderFps: 50 };
  }

  reset(args: ResetArgs = {}): [Float32Array, Info] {
    this.applySeed(args);
    const low = optionNumber(this.name, args.options, 'low', -0.05);
    const high = optionNumber(this.name, args.options, 'high', 0.05);
    if (low > high)
      throw new InvalidArgument(
        `${this.name}.reset: lower bound (${low}) must be lower than higher bound (${high})`,
      );
    const rng = this.npRandom;
    this.state = Float64Array.from({ length: 4 }, () => uniform(rng, low, high));
    this.stepsBeyondTerminated = null;
    return [Float32Array.from(this.state), {}];
  }

  step(action: number): StepResult<Float32Array> {
    assertAction(this, this.actionSpace, action);
    if (!this.state) throw new ResetNeeded(`${this.name}: call reset before using step`);
    let [x, xDot, theta, thetaDot] = this.state;
    const force = action === 1 ? this.forceMag : -this.forceMag;
    const cos = Math.cos(theta);
    const sin = Math.sin(theta);
    const temp = (force + this.poleMassLength * thetaDot * thetaDot * sin) / this.totalMass;
    const thetaAcc =
      (this.gravity * sin - cos * temp) /
      (this.length * (4.0 / 3.0 - (this.massPole * cos * cos) / this.totalMass));
    const xAcc = temp - (this.poleMassLength * thetaAcc * cos) / this.totalMass;
    // Euler, as Gymnasium's default kinematics_integrator.
    x = x + this.tau * xDot;
    xDot = xDot + this.tau * xAcc;
    theta = theta + this.tau * thetaDot;
    thetaDot = thetaDot + this.tau * thetaAcc;
    this.state = Float64Array.of(x, xDot, theta, thetaDot);
    const terminated =
      x < -this.xThreshold ||
      x > this.xThreshold ||
      theta < -this.thetaThreshold ||
      theta > this.thetaThreshold;
    const sb = this.options.sutton_barto_reward;
    let reward: number;
    if (!terminated) reward = sb ? 0.0 : 1.0;
    else if (this.stepsBeyondTerminated === null) {
      this.stepsBeyondTerminated = 0;
      reward = sb ? -1.0 : 1.0;
    } else {
      // Undefined behaviour in Gymnasium (it warns); `make` adds OrderEnforcing, which forbids it.
      this.stepsBeyondTerminated += 1;
      reward = sb ? -1.0 : 0.0;
    }
    return [Float32Array.from(this.state), reward, terminated, false, {}];
  }
}

export interface PendulumOptions {
  g: number;
}
export const PENDULUM_KWARGS: KwargTable = {
  g: { kind: 'number', default: 10.0, doc: 'gravity, m/s²' },
};

/** ((x + π) mod 2π) − π with a non-negative modulo, as numpy's %. */
function angleNormalize(x: number): number {
  const m = 2 * Math.PI;
  return ((((x + Math.PI) % m) + m) % m) - Math.PI;
}

export class PendulumEnv extends Env<Float32Array, ArrayLike<number>> {
  readonly maxSpeed = 8;
  readonly maxTorque = 2.0;
  readonly dt = 0.05;
  readonly m = 1.0;
  readonly l = 1.0;
  readonly actionSpace = new Box(-2.0, 2.0, [1], 'float32');
  readonly observationSpace = new Box([-1, -1, -8], [1, 1, 8], [3], 'float32');
  /** (θ, θ̇). */
  state: Float64Array | null = null;

  constructor(readonly options: PendulumOptions = { g: 10.0 }) {
    super();
    this.metadata = { renderModes: [], renderFps: 30 };
  }

  reset(args: ResetArgs = {}): [Float32Array, Info] {
    this.applySeed(args);
    const x = optionNumber(this.name, args.options, 'x_init', Math.PI);
    const y = optionNumber(this.name, args.options, 'y_init', 1.0);
    const rng = this.npRandom;
    this.state = Float64Array.of(uniform(rng, -x, x), uniform(rng, -y, y));
    return [this.observation(), {}];
  }

  private observation(): Float32Array {
    const [th, thDot] = this.state!;
    return Float32Array.of(Math.cos(th), Math.sin(th), thDot);
  }

  step(action: ArrayLike<number>): StepResult<Float32Array> {
    assertAction(this, this.actionSpace, action);
    if (!this.state) throw new ResetNeeded(`${this.name}: call reset before using step`);
    const [th, thDot] = this.state;
    const { g } = this.options;
    const u = Math.min(Math.max(action[0], -this.maxTorque), this.maxTorque);
    // NOTE: Gymnasium's u is a float32 scalar, and under NumPy 2 (NEP 50) a Python float times a
    // float32 stays float32: the torque terms are rounded to float32 there, so here too
    // (parity ≤ 1e-13 over 60 steps instead of drifting past 1e-6 in the swing-up; issue 21)
    const torqueCost = Math.fround(Math.fround(0.001) * Math.fround(u * u));
    const costs = angleNormalize(th) ** 2 + 0.1 * thDot ** 2 + torqueCost;
    const torqueAccel = Math.fround(Math.fround(3.0 / (this.m * this.l ** 2)) * u);
    let newThDot = thDot + (((3 * g) / (2 * this.l)) * Math.sin(th) + torqueAccel) * this.dt;
    newThDot = Math.min(Math.max(newThDot, -this.maxSpeed), this.maxSpeed);
    const newTh = th + newThDot * this.dt;
    this.state = Float64Array.of(newTh, newThDot);
    return [this.observation(), -costs, false, false, {}];
  }
}
