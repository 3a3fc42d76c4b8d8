/**
 * The run config: common fields (recipe, experiment, seed, backend, tracking, checkpoint) plus
 * one section named after the recipe, typed by that recipe's schema.
 */
import { BACKEND_NAMES } from '../../native/index.js';
import { type Fields, type InferFields, ObjectSchema, s } from './schema.js';

export const trackingSchema = s.object(
  {
    uri: s.string({
      doc: "Tracking URI: http(s)://host:port (MLflow server) or a folder (file store); '' uses MLFLOW_TRACKING_URI, else ./mlruns",
      default: '',
    }),
    flushEverySec: s.number({
      doc: 'Seconds between batched metric uploads',
      default: 5,
      min: 0,
      exclusiveMin: true,
    }),
    systemMetricsEverySec: s.number({
      doc: 'Seconds between system/ CPU and memory samples; 0 turns them off',
      default: 10,
      min: 0,
    }),
    finishTimeoutSec: s.number({
      doc: 'At the end, seconds to wait for an unreachable server to take spooled metrics',
      default: 120,
      min: 0,
    }),
  },
  { doc: 'Where and how the run is tracked (MLflow)' },
);

export const checkpointSchema = s.object(
  {
    every: s.integer({
      doc: 'Steps between checkpoints; 0 saves only at the end and on Ctrl-C',
      default: 0,
      min: 0,
    }),
    keep: s.integer({
      doc: 'Checkpoints kept in the local work folder (with a file store none: the artifact is the copy)',
      default: 3,
      min: 1,
    }),
    keepArtifacts: s.integer({
      doc: "Checkpoints kept in the run's artifacts, newest first (older ones are deleted once a newer one is uploaded); 2 keeps one to fall back on if the newest is damaged; 0 keeps all",
      default: 2,
      min: 0,
    }),
  },
  { doc: 'Checkpointing, for --resume' },
);

export const slurmSchema = s.object(
  {
    partition: s.string({ doc: "sbatch --partition of each cell; '' the cluster's default", default: '' }),
    time: s.string({
      doc: "sbatch --time of each cell (minutes, H:MM:SS, D-HH:MM:SS); '' the partition's limit",
      default: '',
    }),
    cpusPerTask: s.integer({ doc: 'sbatch --cpus-per-task of each cell', default: 1, min: 1 }),
    mem: s.string({ doc: "sbatch --mem of each cell (e.g. 4G); '' the cluster's default", default: '' }),
    sbatchArgs: s.list(s.string({ doc: 'An sbatch option, e.g. --account=lab' }), {
      doc: 'Extra sbatch options of the array job',
      default: [],
    }),
  },
  {
    doc: 'Resources of each cell under exp sweep --launcher slurm (issue 19); the flags of the same names override',
  },
);

export const sweepSchema = s.object(
  {
    cases: s.list(
      s.string({
        doc: "A named cell: 'name: key=value key=value' (values are YAML without spaces)",
      }),
      {
        doc: 'Named cells of exp sweep (each run over every seed, × any --grid): a table whose rows are not a product, e.g. BC, DT, AT on one device, AT on the ring',
        default: [],
      },
    ),
  },
  { doc: 'exp sweep of this config: what exp run ignores' },
);

export function baseFields(recipeNames: readonly string[]) {
  return {
    recipe: s.enum(recipeNames as readonly string[], {
      doc: 'Which experiment to run (experiments/recipes/)',
    }),
    experiment: s.string({ doc: "MLflow experiment name; '' uses the recipe's name", default: '' }),
    runName: s.string({ doc: "MLflow run name; '' generates <recipe>-seed<seed>-<time>", default: '' }),
    description: s.string({ doc: 'Free text, logged as the run description', default: '' }),
    seed: s.integer({
      doc: 'Seed of the run RNG (data order, initialisation)',
      default: 0,
      min: 0,
      max: 2 ** 32 - 1,
    }),
    backend: s.enum(['auto', ...BACKEND_NAMES] as const, {
      doc: 'tfjs backend: auto (tensorflow if installed, else wasm), tensorflow, wasm, cpu',
      default: 'auto',
    }),
    tracking: trackingSchema,
    checkpoint: checkpointSchema,
    slurm: slurmSchema,
    sweep: sweepSchema,
  } satisfies Fields;
}

type BaseFields = ReturnType<typeof baseFields>;

/** The resolved config; `config[config.recipe]` is the recipe's section. */
export type RunConfig = InferFields<BaseFields> & Record<string, unknown>;

/** Schema of a config whose recipe is `recipe`, with that recipe's section. */
export function runConfigSchema(
  recipeNames: readonly string[],
  recipe: string,
  section: ObjectSchema<unknown>,
): ObjectSchema<RunConfig> {
  return new ObjectSchema<RunConfig>(
    { ...baseFields(recipeNames), [recipe]: section },
    { doc: 'run config' },
  );
}
