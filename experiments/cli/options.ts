/** Options shared by several commands. */
import type { Argv } from 'yargs';
import { InputError } from '../../common/index.js';
import { BACKEND_NAMES, type BackendChoice, parseBackendChoice } from '../../native/index.js';

export function withBackend<T>(y: Argv<T>) {
  return y.option('backend', {
    type: 'string',
    describe: `Compute backend: auto, ${BACKEND_NAMES.join(', ')} (env RING_BACKEND)`,
    default: process.env.RING_BACKEND ?? 'auto',
  });
}

export function backendFromArgs(value: string | undefined): BackendChoice {
  return parseBackendChoice(value, '--backend');
}

/** Re-exported for the count flags here; the recipes' device counts use it too. */
export { maxWorkerThreads, WORKER_THREADS_WHY } from '../config/machine.js';

/**
 * A count flag (`--num-envs`, `--episodes`): a positive safe integer, at most `max` when given;
 * anything else is an InputError (exit 2) naming the flag, the bound and why.
 */
export function countFlag(value: unknown, flag: string, max?: { limit: number; why: string }): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
    throw new InputError(`${flag}: expected a positive integer; got ${value}`);
  if (max && value > max.limit)
    throw new InputError(`${flag}: expected at most ${max.limit} (${max.why}); got ${value}`);
  return value;
}
