/**
 * `recipe: ppo`: a behaviour policy trained with rl/ppo.ts (issue 6) on a registered env. The
 * config is rl/ppo-run.ts's PPO_RUN_OPTIONS (the trainer's options, same names, defaults from
 * PPO_DEFAULTS: one source of truth, issue 13; plus evaluation and early stop); this file hands it
 * the run's tracker, checkpoints and resume, and saves the policy file (actor + observation
 * statistics) as an artifact and optionally to `out`.
 *
 * Metrics: rl/ppo-run.ts's `train/*`, `perf/steps_per_sec` and `eval/*`. Checkpoints hold the
 * policy with its critic and statistics (resume restarts Adam's moments).
 */
import { writeFileAtomic } from '../../common/index.js';
import { PPO_RUN_OPTIONS, type PpoRunConfig, runPpo } from '../../rl/index.js';
import { optionSchema } from '../config/option-schema.js';
import { evaluationRecording } from '../rollout/index.js';
import { trainContext } from './train-context.js';
import type { Recipe, RecipeContext } from './types.js';

export type PpoConfig = PpoRunConfig;

async function run(ctx: RecipeContext<PpoConfig>): Promise<void> {
  const { env, out, evalRecord, evalVideo, ...options } = ctx.config;
  // evalRecord / evalVideo: logged in the background (a video takes seconds), awaited at the end
  const recording =
    evalRecord || evalVideo
      ? evaluationRecording((local, path) => ctx.tracker.file(local, path), ctx.runId, {
          video: evalVideo,
          who: 'ppo.evalVideo',
        })
      : undefined;
  const { final, best } = await runPpo({ envId: env, ...options }, trainContext(ctx), recording);
  await recording?.done();
  if (!final) return; // aborted: the checkpoint is saved, nothing to publish
  const text = JSON.stringify(final);
  await ctx.tracker.content('policy.json', text);
  if (best) await ctx.tracker.content('policy-best.json', JSON.stringify(best));
  if (out) writeFileAtomic(out, text);
}

export const ppoRecipe: Recipe<PpoConfig> = {
  name: 'ppo',
  describe: 'PPO behaviour policy on a registered env (rl/ppo.ts); saves the policy file',
  // rl/'s documented options, their defaults PPO_DEFAULTS (one source of truth, issue 13)
  schema: optionSchema(PPO_RUN_OPTIONS),
  run,
};
