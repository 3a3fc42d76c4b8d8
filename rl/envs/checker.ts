/**
 * `checkEnv`, after Gymnasium's `gymnasium.utils.env_checker.check_env`: runs an env through its
 * contract and throws `EnvCheckError` with a precise message at the first violation. Checks:
 * spaces, reset's return and seeding (same seed → same obs; the unseeded reset after a seeded one
 * continues the seeded stream), reset options, step's return types and determinism, rejection of
 * actions outside the space (issue 4), and that close() may be called twice.
 */
import { type Env, type Info, Wrapper } from './core.js';
import { EnvCheckError } from './errors.js';
import { describe } from './seeding.js';
import { Box, Discrete, DictSpace, MultiDiscrete, type Space, valuesEqual } from './spaces.js';

export interface CheckEnvOptions {
  /** Also step with a NaN / out-of-bounds action and expect a throw (default true). */
  checkInvalidActions?: boolean;
  /** Called with each warning (Gymnasium logs them); default: collected only. */
  onWarning?: (message: string) => void;
}

export interface CheckEnvReport {
  /** Names of the checks that passed, in order. */
  passed: string[];
  warnings: string[];
}

function isSpace(x: unknown): x is Space {
  return x instanceof Box || x instanceof Discrete || x instanceof MultiDiscrete || x instanceof DictSpace;
}

function isPlainObject(x: unknown): x is Info {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !ArrayBuffer.isView(x);
}

/** Checks `env` (a fresh env: it is reset and stepped, not closed unless `close` is tested). */
export function checkEnv(env: Env<unknown, unknown>, options: CheckEnvOptions = {}): CheckEnvReport {
  const name = env.name;
  const passed: string[] = [];
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    options.onWarning?.(m);
  };
  const fail = (m: string): never => {
    throw new EnvCheckError(`checkEnv(${name}): ${m}`);
  };

  if (env instanceof Wrapper)
    warn(
      `the env (${env.toString()}) is wrapped; checks see the wrappers' behaviour (Gymnasium recommends checking env.unwrapped)`,
    );

  // Spaces.
  const obsSpace: unknown = env.observationSpace;
  const actSpace: unknown = env.actionSpace;
  if (!isSpace(obsSpace))
    fail(`observationSpace must be a Box, Discrete, MultiDiscrete or Dict; got ${describe(obsSpace)}`);
  if (!isSpace(actSpace))
    fail(`actionSpace must be a Box, Discrete, MultiDiscrete or Dict; got ${describe(actSpace)}`);
  const observationSpace = obsSpace as Space;
  const actionSpace = actSpace as Space;
  if (actionSpace instanceof Box && actionSpace.isBounded()) {
    let symmetric = true;
    for (let i = 0; i < actionSpace.size; i++)
      if (actionSpace.low[i] !== -actionSpace.high[i]) symmetric = false;
    if (!symmetric)
      warn(
        `the Box action space ${actionSpace.toString()} is not symmetric; policies usually assume [-1, 1]`,
      );
  }
  passed.push('spaces');

  // reset() return value.
  const checkReset = (result: unknown, call: string): unknown => {
    if (!Array.isArray(result)) fail(`${call} must return [obs, info]; got ${describe(result)}`);
    const r = result as unknown[];
    if (r.length !== 2) fail(`${call} must return a 2-element array [obs, info]; got length ${r.length}`);
    const [obs, info] = r;
    const why = observationSpace.explain(obs);
    if (why !== null)
      fail(`the observation returned by ${call} is not within ${observationSpace.toString()}: ${why}`);
    if (!isPlainObject(info))
      fail(`the info returned by ${call} must be a plain object; got ${describe(info)}`);
    return obs;
  };
  checkReset(env.reset(), 'reset()');
  passed.push('reset returns [obs, info]');

  // Seeding: same seed → same obs; the unseeded reset continues the seeded stream.
  const o1 = checkReset(env.reset({ seed: 123 }), 'reset({ seed: 123 })');
  const o2 = checkReset(env.reset(), 'reset() after reset({ seed: 123 })');
  const o3 = checkReset(env.reset({ seed: 123 }), 'reset({ seed: 123 })');
  const o4 = checkReset(env.reset(), 'reset() after reset({ seed: 123 })');
  if (!valuesEqual(o1, o3))
    fail(
      'reset({ seed: 123 }) twice gave different observations; with the same seed reset must be deterministic',
    );
  if (!valuesEqual(o2, o4))
    fail(
      'reset() after reset({ seed: 123 }) gave different observations in two runs; the generator must continue from the seed',
    );
  if (valuesEqual(o1, o2))
    warn('reset() gave the same observation as the seeded reset before it; is the initial state random?');
  const o5 = checkReset(env.reset({ seed: 456 }), 'reset({ seed: 456 })');
  if (valuesEqual(o1, o5)) warn('reset with seeds 123 and 456 gave the same observation; is the seed used?');
  passed.push('reset seeding');

  checkReset(env.reset({ seed: 123, options: {} }), 'reset({ seed: 123, options: {} })');
  passed.push('reset options');

  // step() return value and determinism.
  actionSpace.seed(7);
  const action = actionSpace.sample();
  const checkStep = (result: unknown, call: string) => {
    if (!Array.isArray(result))
      fail(`${call} must return [obs, reward, terminated, truncated, info]; got ${describe(result)}`);
    const r = result as unknown[];
    if (r.length !== 5)
      fail(`${call} must return 5 elements [obs, reward, terminated, truncated, info]; got ${r.length}`);
    const [obs, reward, terminated, truncated, info] = r;
    const why = observationSpace.explain(obs);
    if (why !== null)
      fail(`the observation returned by ${call} is not within ${observationSpace.toString()}: ${why}`);
    if (typeof reward !== 'number')
      fail(`the reward returned by ${call} must be a number; got ${describe(reward)}`);
    if (!Number.isFinite(reward as number)) warn(`the reward returned by ${call} is not finite: ${reward}`);
    if (typeof terminated !== 'boolean')
      fail(`terminated returned by ${call} must be a boolean; got ${describe(terminated)}`);
    if (typeof truncated !== 'boolean')
      fail(`truncated returned by ${call} must be a boolean; got ${describe(truncated)}`);
    if (!isPlainObject(info))
      fail(`the info returned by ${call} must be a plain object; got ${describe(info)}`);
    return r as [unknown, number, boolean, boolean, Info];
  };
  env.reset({ seed: 123 });
  const s1 = checkStep(env.step(action), 'step(actionSpace.sample())');
  env.reset({ seed: 123 });
  const s2 = checkStep(env.step(action), 'step(actionSpace.sample())');
  if (!valuesEqual(s1[0], s2[0]))
    fail('the same seed and action gave different observations after one step; step must be deterministic');
  if (!valuesEqual(s1[1], s2[1]))
    fail(`the same seed and action gave different rewards (${s1[1]} vs ${s2[1]})`);
  if (s1[2] !== s2[2]) fail('the same seed and action gave different terminated flags');
  if (s1[3] !== s2[3]) fail('the same seed and action gave different truncated flags');
  passed.push('step returns [obs, reward, terminated, truncated, info]');
  passed.push('step determinism');

  // Invalid actions are rejected (issue 4), for spaces where one can be built.
  if (options.checkInvalidActions !== false) {
    const invalid: [string, unknown][] = [];
    if (actionSpace instanceof Box) {
      const nan = Float64Array.from(actionSpace.sample());
      nan[0] = Number.NaN;
      invalid.push(['a NaN action', nan]);
      invalid.push(['an action one element short', Float64Array.from(actionSpace.sample()).subarray(1)]);
      if (Number.isFinite(actionSpace.high[0])) {
        const out = Float64Array.from(actionSpace.sample());
        out[0] = actionSpace.high[0] + 1;
        invalid.push(['an action above the upper bound', out]);
      }
    } else if (actionSpace instanceof Discrete) {
      invalid.push(['an action outside Discrete', actionSpace.start + actionSpace.n]);
      invalid.push(['a non-integer action', actionSpace.start + 0.5]);
    }
    for (const [what, a] of invalid) {
      env.reset({ seed: 123 });
      let threw = false;
      try {
        env.step(a);
      } catch {
        threw = true;
      }
      if (!threw)
        fail(
          `step() accepted ${what} (${describe(a)}); it must throw for actions outside ${actionSpace.toString()}`,
        );
    }
    passed.push('invalid actions rejected');
  }

  try {
    env.close();
    env.close();
  } catch (err) {
    fail(`calling close() twice must be allowed; the second call threw: ${(err as Error).message}`);
  }
  passed.push('close twice');
  return { passed, warnings };
}
