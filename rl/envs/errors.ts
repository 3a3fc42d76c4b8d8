/**
 * Errors of the environment API, named after Gymnasium's (`gymnasium.error`). All are input
 * errors (the caller passed something the contract forbids), so the CLI exits with code 2.
 */
import { InputError } from '../../common/index.js';

/** The action is not in the action space: wrong length, not finite, out of bounds. */
export class InvalidAction extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidAction';
  }
}

/** `step` was called before `reset`, or after an episode ended without a `reset` in between. */
export class ResetNeeded extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'ResetNeeded';
  }
}

/** `make` got an id that is not registered, or a keyword the environment does not take. */
export class UnregisteredEnv extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'UnregisteredEnv';
  }
}

/** A keyword argument, reset option or seed has the wrong type or value. */
export class InvalidArgument extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidArgument';
  }
}

/** `checkEnv` found a violation of the environment contract. */
export class EnvCheckError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvCheckError';
  }
}
