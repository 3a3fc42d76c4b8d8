/**
 * The plain float64 attention the tests check every implementation against (STYLE §8). It lives
 * in experiments/bench/reference.ts, so `exp bench attention --check` uses the same one (issue 16).
 */
export { type RefProblem, type RefResult, referenceAttention } from '../../experiments/bench/reference.js';
export { relError } from '../../common/index.js';
