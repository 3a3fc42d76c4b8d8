/** Options shared by several commands. */
import type { Argv } from 'yargs';
import { BACKEND_NAMES, type BackendChoice, parseBackendChoice } from '../../ring/index.js';

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
