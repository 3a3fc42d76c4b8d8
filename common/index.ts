/** Dependency-free helpers that every room may use: errors, atomic writes, seeded RNG, progress. */
export { InputError, errorMessage, isInputError } from './errors.js';
export { temporarySibling, writeDirAtomic, writeFileAtomic } from './atomic.js';
export { Rng } from './random.js';
export { Progress, type ProgressOptions, printLine } from './progress.js';
export { median, relError } from './numeric.js';
export { freeTcpPort } from './net.js';
export {
  assertOutputIsNotInput,
  assertRegularFile,
  ownerAlive,
  pidAlive,
  processStartTicks,
  sweepStaleTemporaries,
} from './files.js';
