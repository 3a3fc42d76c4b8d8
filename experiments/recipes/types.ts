/**
 * A recipe is one kind of experiment: a typed config section (under the key of its name) and a
 * run function. The runner (runner.ts) does everything around it: config, MLflow run, tags and
 * params, seeding, checkpoints and resume, Ctrl-C, system metrics, status. Recipes are listed in
 * recipes/index.ts.
 */
import type { Progress, Rng } from '../../common/index.js';
import type { BackendInfo } from '../../native/index.js';
import type { Checkpoints, LoadedCheckpoint } from '../checkpoint.js';
import type { ObjectSchema } from '../config/schema.js';
import type { RunConfig } from '../config/base.js';
import type { RunTracker } from '../tracking/index.js';

export interface RecipeContext<C> {
  /** This recipe's config section, validated, defaults filled in. */
  config: C;
  /** The whole resolved config (seed, tracking, checkpoint, …). */
  run: RunConfig;
  runId: string;
  seed: number;
  /**
   * The run's main RNG, seeded from `seed`. Its state is saved in every checkpoint and restored
   * on resume, so a resumed run draws the same numbers as an uninterrupted one.
   */
  rng: Rng;
  /** Metrics, params, tags, dataset inputs, artifacts, tables, plots. */
  tracker: RunTracker;
  /** `due(step)` and `save({ step, state, tensors })`. */
  checkpoints: Checkpoints;
  /** The checkpoint to continue from when resuming (`ctx.rng` is already restored). */
  resume?: LoadedCheckpoint;
  /**
   * Aborted on Ctrl-C (SIGINT) or SIGTERM: save a checkpoint of the last completed step and
   * return; the runner then marks the run KILLED.
   */
  signal: AbortSignal;
  /** A progress bar on a terminal, plain periodic lines otherwise. */
  progress(label: string, total?: number): Progress;
  backend: BackendInfo;
  /** This run's local folder (scratch files; checkpoints live in its `checkpoints/`). */
  workDir: string;
  /** One line to stderr, prefixed with the run. */
  log(line: string): void;
}

export interface Recipe<C> {
  /** Name used in configs (`recipe: toy`) and as the key of its section. */
  readonly name: string;
  /** One line for `exp run --help` and the docs. */
  readonly describe: string;
  readonly schema: ObjectSchema<C>;
  /** Devices the run uses, for the `exp.device_count` tag (default 1). */
  deviceCount?(config: C): number;
  /**
   * What tells this run apart from the recipe's other runs (algorithm, attention, devices), for
   * its default name `<label>-seed<N>` (run-summary.ts); default the recipe's name.
   */
  runLabel?(config: C): string;
  /** Trains/measures, logging through `ctx.tracker`. Throws on failure (the run ends FAILED). */
  run(ctx: RecipeContext<C>): Promise<void>;
}
