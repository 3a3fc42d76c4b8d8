/** `exp run <config>`: one MLflow run of a recipe (see experiments/runner.ts). */
import { readFileSync } from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { InputError } from '../../../common/index.js';
import { parseBackendChoice } from '../../../native/index.js';
import { runConfigSchema } from '../../config/base.js';
import { parseYaml, resolveConfigPath } from '../../config/load.js';
import { describeSchema } from '../../config/schema.js';
import { RECIPES, recipeNames } from '../../recipes/index.js';
import { runExperiment } from '../../runner.js';
import { scoreText } from '../../run-summary.js';
import { withBackend } from '../options.js';

interface RunArgs {
  config?: string;
  set: string[];
  seed?: number;
  backend: string;
  'dry-run': boolean;
  resume?: string;
  'tracking-uri'?: string;
  'parent-run-id'?: string;
  json: boolean;
  quiet: boolean;
  schema: boolean;
}

/** Documentation of the config keys: of the recipe a config names, else of every recipe. */
function schemaDoc(config: string | undefined): string {
  let recipes = RECIPES;
  if (config) {
    const file = resolveConfigPath(config);
    const doc = parseYaml(readFileSync(file, 'utf8'), file) as { recipe?: unknown } | null;
    const named = RECIPES.filter((r) => r.name === doc?.recipe);
    if (named.length) recipes = named;
  }
  return recipes
    .map((r) =>
      [
        `# recipe: ${r.name} (${r.describe})`,
        ...describeSchema(runConfigSchema(recipeNames(), r.name, r.schema)),
      ].join('\n'),
    )
    .join('\n\n');
}

export const runCommand: CommandModule<object, RunArgs> = {
  command: 'run [config]',
  describe: 'Run an experiment config as an MLflow run (a path, or a name under experiments/configs/)',
  builder: (y: Argv) =>
    withBackend(
      y
        .positional('config', { type: 'string', describe: 'Config file, e.g. toy.yaml' })
        .option('set', {
          type: 'string',
          array: true,
          default: [],
          describe: 'Override a key: --set toy.lr=0.05 (repeatable; values parse as YAML)',
        })
        .option('seed', { type: 'number', describe: 'Seed (overrides the config)' })
        .option('dry-run', {
          type: 'boolean',
          default: false,
          describe: 'Validate and print the resolved config',
        })
        .option('resume', { type: 'string', describe: 'Continue this run id from its last checkpoint' })
        .option('tracking-uri', {
          type: 'string',
          describe: 'MLflow server URL or file-store folder (default: config, MLFLOW_TRACKING_URI, ./mlruns)',
        })
        .option('parent-run-id', { type: 'string', hidden: true, describe: 'Parent run (sweeps)' })
        .option('json', { type: 'boolean', default: false, describe: 'Print the outcome as one JSON line' })
        .option('quiet', { type: 'boolean', default: false, describe: 'No progress output' })
        .option('schema', {
          type: 'boolean',
          default: false,
          describe: 'Print every config key with its type, default and doc (of the config’s recipe, or all)',
        }),
    ).epilog(
      `Recipes: ${RECIPES.map((r) => `${r.name} (${r.describe})`).join('; ')}`,
    ) as unknown as Argv<RunArgs>,
  handler: async (args) => {
    if (args.schema) {
      process.stdout.write(`${schemaDoc(args.config)}\n`);
      return;
    }
    // The flag's default mirrors RING_BACKEND, and only an explicit flag reaches the config, so a
    // bad RING_BACKEND was silently ignored (issue 16): check it here, naming the variable.
    if (process.env.RING_BACKEND !== undefined && args.backend === process.env.RING_BACKEND)
      parseBackendChoice(process.env.RING_BACKEND, 'RING_BACKEND');
    if (args.seed !== undefined && (!Number.isInteger(args.seed) || args.seed < 0))
      throw new InputError(`--seed: expected an integer ≥ 0; got ${args.seed}`);
    const outcome = await runExperiment({
      config: args.config,
      sets: args.set,
      seed: args.seed,
      // Only an explicit --backend overrides the config (the flag's default mirrors RING_BACKEND,
      // which applies when the config says 'auto').
      backend: args.backend === (process.env.RING_BACKEND ?? 'auto') ? undefined : args.backend,
      dryRun: args['dry-run'],
      resume: args.resume,
      trackingUri: args['tracking-uri'],
      parentRunId: args['parent-run-id'],
      quiet: args.quiet,
    });
    if (!outcome) return;
    if (args.json)
      process.stdout.write(
        `${JSON.stringify({ run_id: outcome.runId, experiment_id: outcome.experimentId, status: outcome.status, tracking_uri: outcome.trackingUri, ...(outcome.score ? { score: outcome.score } : {}) })}\n`,
      );
    // the one status line, with the score, --quiet or not (issue 15)
    else
      process.stdout.write(
        `${outcome.runId} ${outcome.status}${outcome.score ? ` score ${scoreText(outcome.score)}` : ''}\n`,
      );
    if (outcome.status === 'KILLED') process.exitCode = 130;
  },
};
