/**
 * A recipe's context as the trainers in rl/ and lm/ take it (train/'s TrainContext): the run's
 * tracker is their logger and params sink, its Checkpoints their checkpoint sink (issue 13).
 */
import type { TrainContext } from '../../train/index.js';
import type { RecipeContext } from './types.js';

export function trainContext<C>(ctx: RecipeContext<C>): TrainContext {
  const { tracker, checkpoints, resume, signal, seed, rng } = ctx;
  return {
    seed,
    rng,
    logger: tracker,
    params: (values) => tracker.params(values),
    checkpoints,
    resume,
    signal,
    progress: (label, total) => ctx.progress(label, total),
    log: (line) => ctx.log(line),
    backend: ctx.backend.name,
    // errors name the config's key path: `<recipe>.<option>`
    optionsPath: ctx.run.recipe,
  };
}
