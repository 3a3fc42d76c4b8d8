/**
 * Errors shared by every room. `InputError` marks bad input from a user (a file, a key, an
 * argument): the CLI prints its message and exits with code 2. Anything else is a bug or an
 * environment failure and exits with code 1.
 */
export class InputError extends Error {
  /** Exit code the CLI uses for this error (usage and input errors are 2, as documented). */
  readonly exitCode = 2;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InputError';
  }
}

/** True when `err` is an input error (also across module copies, which `instanceof` misses). */
export function isInputError(err: unknown): err is InputError {
  return err instanceof Error && (err as { exitCode?: unknown }).exitCode === 2;
}

/** Formats an unknown thrown value as one line. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
