/**
 * The trained policy's files: `policy.json` (algorithm, env, sizes, model config, state
 * normalisation, target return, weight lengths) and `weights.bin` (the float32 weights,
 * little-endian, concatenated in that order). experiments/ logs them as an MLflow model.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../../common/index.js';
import type { TrainedPolicy } from './common.js';

export const POLICY_FILE_LOADER =
  'rl/policies from policy.json and weights.bin (float32, little-endian, weight_lengths in order)';

/** Writes the two files into `dir` (each atomically); returns their paths and the parameter count. */
export function writePolicyFiles(
  dir: string,
  p: TrainedPolicy,
): { json: string; bin: string; parameters: number } {
  const json = join(dir, 'policy.json');
  const bin = join(dir, 'weights.bin');
  writeFileAtomic(
    json,
    `${JSON.stringify({
      algo: p.algo,
      env: p.env,
      obs_dim: p.obsDim,
      act_dim: p.actDim,
      model: p.model,
      state_mean: Array.from(p.norm.mean),
      state_std: Array.from(p.norm.std),
      target_return: p.target ?? null,
      weight_lengths: p.weights.map((w) => w.length),
    })}\n`,
  );
  const all = new Float32Array(p.weights.reduce((n, w) => n + w.length, 0));
  let at = 0;
  for (const w of p.weights) {
    all.set(w, at);
    at += w.length;
  }
  writeFileAtomic(bin, new Uint8Array(all.buffer));
  return { json, bin, parameters: all.length };
}
