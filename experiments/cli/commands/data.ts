/**
 * `exp data`: trajectory datasets (issue 3). Import D4RL/Minari, inspect, validate, convert.
 * Input errors (bad files, keys, lengths, values) exit with code 2 and leave no output behind.
 */
import type { Argv, CommandModule } from 'yargs';
import { InputError, Progress } from '../../../common/index.js';
import {
  abortOpenWriters,
  checkWriteTarget,
  convertDataset,
  importD4rl,
  importMinari,
  inspectDataset,
  type Layout,
  validateDataset,
  type WriteResult,
} from '../../../datasets/index.js';
import { ANT_MEDIUM_DEFAULTS, levelDatasets, normalizedScore, referenceScores } from '../../../rl/index.js';
// `exp data collect` (rl/, issue 6) lives in its own module; registered below.
import { collectCommand } from './collect.js';

function layoutOf(value: string | undefined): Layout {
  if (value === undefined || value === 'file' || value === 'minari') return value ?? 'file';
  throw new InputError(`--layout: expected file or minari; got ${value}`);
}

/**
 * Ctrl-C or SIGTERM mid-write: drop the temporary output, then exit 130/143 (the target is left
 * untouched). SIGTERM is what schedulers and `kill` send; without this handler it left the hidden
 * temporary body behind (issue 16). SIGKILL cannot be caught: the next writer into the same
 * folder sweeps what a dead writer left (writer.ts, checkWriteTarget).
 */
async function guarded<T>(work: () => Promise<T>): Promise<T> {
  const onSignal = (sig: NodeJS.Signals) => {
    abortOpenWriters();
    process.exit(sig === 'SIGTERM' ? 143 : 130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await work();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function report(result: WriteResult, json: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else
    process.stdout.write(
      `wrote ${result.path} (${result.layout}): ${result.totalEpisodes} episodes, ${result.totalSteps} steps, digest ${result.digest}\n`,
    );
}

function progress(label: string, quiet: boolean) {
  let bar: Progress | undefined;
  return (done: number, total: number) => {
    bar ??= new Progress({ label, total, silent: quiet });
    bar.update(done);
    if (done === total) bar.finish();
  };
}

interface ImportArgs {
  source: 'd4rl' | 'minari';
  input: string;
  out: string;
  layout?: string;
  'dataset-id'?: string;
  'env-id'?: string;
  'max-episode-steps': number;
  'ref-min-score'?: number;
  'ref-max-score'?: number;
  json: boolean;
  quiet: boolean;
}

const importCommand: CommandModule<object, ImportArgs> = {
  command: 'import <source> <input>',
  describe: 'Import a D4RL HDF5 file (d4rl <file.hdf5>) or a local Minari dataset (minari <dataset-id|dir>)',
  builder: (y: Argv) =>
    y
      .positional('source', { choices: ['d4rl', 'minari'] as const, describe: 'Kind of input' })
      .positional('input', { type: 'string', describe: 'HDF5 file, or Minari dataset id / directory' })
      .option('out', {
        type: 'string',
        demandOption: true,
        describe: 'Output: an .arrow file, or a directory for --layout minari',
      })
      .option('layout', {
        type: 'string',
        default: 'file',
        describe: 'file (one Arrow IPC file) or minari (Minari Arrow storage)',
      })
      .option('dataset-id', {
        type: 'string',
        describe: 'd4rl: dataset id (namespace/name-vN); default d4rl/<file>-v0',
      })
      .option('env-id', {
        type: 'string',
        describe: 'd4rl: Gymnasium env id the data came from (e.g. Ant-v5)',
      })
      .option('max-episode-steps', {
        type: 'number',
        default: 1000,
        describe: 'd4rl: episode cap when the file has no timeouts key',
      })
      .option('ref-min-score', {
        type: 'number',
        describe: 'd4rl: random-policy return (normalised score 0)',
      })
      .option('ref-max-score', { type: 'number', describe: 'd4rl: expert return (normalised score 100)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' })
      .option('quiet', {
        type: 'boolean',
        default: false,
        describe: 'No progress bar',
      }) as unknown as Argv<ImportArgs>,
  handler: async (args) => {
    const layout = layoutOf(args.layout);
    const steps = args['max-episode-steps'];
    if (!Number.isInteger(steps) || steps < 1)
      throw new InputError(`--max-episode-steps: expected a positive integer; got ${steps}`);
    const result = await guarded(() =>
      args.source === 'd4rl'
        ? importD4rl(args.input, {
            out: args.out,
            layout,
            datasetId: args['dataset-id'],
            envId: args['env-id'],
            maxEpisodeSteps: steps,
            refMinScore: args['ref-min-score'],
            refMaxScore: args['ref-max-score'],
            onProgress: progress('import d4rl (rows)', args.quiet),
          })
        : importMinari(args.input, {
            out: args.out,
            layout,
            onProgress: progress('import minari (episodes)', args.quiet),
          }),
    );
    report(result, args.json);
  },
};

interface PathArgs {
  path: string;
  json: boolean;
}

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));

const inspectCommand: CommandModule<object, PathArgs> = {
  command: 'inspect <path>',
  describe: 'Episodes, steps, dims, return mean/min/max (and normalised score when references are known)',
  builder: (y: Argv) =>
    y
      .positional('path', { type: 'string', describe: 'Dataset: .arrow file or Minari dataset directory' })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print one JSON object',
      }) as unknown as Argv<PathArgs>,
  handler: (args) => {
    const summary = inspectDataset(args.path);
    // the dataset's own refs, else D4RL's table for its env (rl/score.ts); none: no score shown
    const refs = referenceScores({ info: summary });
    const normalized = refs && {
      mean: normalizedScore(summary.return.mean, refs),
      min: normalizedScore(summary.return.min, refs),
      max: normalizedScore(summary.return.max, refs),
    };
    const s = {
      ...summary,
      ...(refs && normalized ? { normalizedScore: normalized, referenceScores: refs } : {}),
    };
    if (args.json) {
      process.stdout.write(`${JSON.stringify(s)}\n`);
      return;
    }
    const lines = [
      `${s.path} (${s.layout}) ${s.datasetId}${s.envId ? ` env ${s.envId}` : ''}${s.source ? ` from ${s.source}` : ''}`,
      `episodes ${s.episodes}  steps ${s.steps}  obs dim ${s.obsDim}  action dim ${s.actDim}`,
      `episode length mean ${fmt(s.episodeLength.mean)} min ${s.episodeLength.min} max ${s.episodeLength.max}`,
      `return mean ${fmt(s.return.mean)} min ${fmt(s.return.min)} max ${fmt(s.return.max)}`,
    ];
    if (refs && normalized)
      lines.push(
        `normalised score mean ${fmt(normalized.mean)} min ${fmt(normalized.min)} max ${fmt(normalized.max)} (refs ${refs.min} / ${refs.max} from ${refs.source === 'dataset' ? 'the dataset' : "D4RL's table"})`,
      );
    if (s.digest) lines.push(`digest ${s.digest}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  },
};

interface RecipesArgs {
  json: boolean;
}

/** The datasets a config's `dataset:` can name and the harness generates on first use (issue 17). */
const recipesCommand: CommandModule<object, RecipesArgs> = {
  command: 'recipes',
  describe: 'The datasets offline-rl generates on first use: auto (ant-medium) and the mixed-quality levels',
  builder: (y: Argv) =>
    y.option('json', {
      type: 'boolean',
      default: false,
      describe: 'Print one JSON object',
    }) as unknown as Argv<RecipesArgs>,
  handler: (args) => {
    const recipes = [
      {
        name: 'auto',
        envId: 'Ant-v5',
        datasetId: 'ring/ant-medium-ppo-v0',
        description: `Ant-v5 medium: Minari's mujoco/ant/medium-v0 or D4RL's ant_medium-v2.hdf5 when present locally, else ${ANT_MEDIUM_DEFAULTS.steps} steps regenerated from rl/behavior/ant-medium.json`,
        sources: [{ label: 'rl/behavior/ant-medium.json', share: 1 }],
      },
      ...levelDatasets().map((d) => ({
        name: d.name,
        envId: d.envId,
        datasetId: d.datasetId,
        description: d.description,
        sources: d.sources.map((s) => ({ label: s.label, share: s.share })),
      })),
    ];
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ recipes })}\n`);
      return;
    }
    for (const r of recipes)
      process.stdout.write(
        `${r.name}  (${r.datasetId}, ${r.sources.length} ${r.sources.length === 1 ? 'policy' : 'policies'})\n  ${r.description}\n`,
      );
    process.stdout.write(
      'use one as offline-rl.dataset (exp run ant-medium.yaml --set offline-rl.dataset=hopper-medium-expert --set offline-rl.env=Hopper-v5)\n',
    );
  },
};

const validateCommand: CommandModule<object, PathArgs> = {
  command: 'validate <path>',
  describe: 'Read every episode: schema, lengths, finite values, content digest',
  builder: (y: Argv) =>
    y
      .positional('path', { type: 'string', describe: 'Dataset: .arrow file or Minari dataset directory' })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print one JSON object',
      }) as unknown as Argv<PathArgs>,
  handler: (args) => {
    const r = validateDataset(args.path);
    if (args.json) process.stdout.write(`${JSON.stringify({ ok: true, ...r })}\n`);
    else
      process.stdout.write(
        `ok ${r.path}: ${r.episodes} episodes, ${r.steps} steps, digest ${r.contentSha256.slice(0, 8)}${r.digestChecked ? ' (matches metadata)' : ' (none recorded)'}\n`,
      );
  },
};

interface ConvertArgs {
  input: string;
  out: string;
  layout?: string;
  'dataset-id'?: string;
  json: boolean;
  quiet: boolean;
}

const convertCommand: CommandModule<object, ConvertArgs> = {
  command: 'convert <input>',
  describe: 'Copy a dataset into the single-file or the Minari layout',
  builder: (y: Argv) =>
    y
      .positional('input', { type: 'string', describe: 'Dataset: .arrow file or Minari dataset directory' })
      .option('out', { type: 'string', demandOption: true, describe: 'Output path' })
      .option('layout', { type: 'string', default: 'file', describe: 'file or minari' })
      .option('dataset-id', {
        type: 'string',
        describe:
          "The output's dataset id (namespace/name-vN). Default: the input's for --layout file; for --layout minari the --out path below the Minari root (MINARI_DATASETS_PATH, else ~/.minari/datasets), as Minari requires, or the --out folder's name when it is name-vN",
      })
      .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' })
      .option('quiet', {
        type: 'boolean',
        default: false,
        describe: 'No progress bar',
      }) as unknown as Argv<ConvertArgs>,
  handler: async (args) => {
    const layout = layoutOf(args.layout);
    checkWriteTarget(args.out, layout, [args.input]);
    // NOTE: convertDataset runs synchronously, so a JS signal handler would only run after it
    // finished (a Ctrl-C was ignored to the end). Without one, Ctrl-C/SIGTERM stop it at once,
    // and the temporary it leaves is removed by the next write into that folder (issue 16).
    const result = convertDataset(args.input, args.out, layout, {
      datasetId: args['dataset-id'],
      onProgress: progress('convert (episodes)', args.quiet),
    });
    report(result, args.json);
  },
};

export const dataCommand: CommandModule = {
  command: 'data <command>',
  describe: 'Trajectory datasets: import (d4rl, minari), inspect, validate, convert, collect (PPO policy)',
  builder: (y: Argv) =>
    y
      .command(importCommand as unknown as CommandModule)
      .command(inspectCommand as unknown as CommandModule)
      .command(validateCommand as unknown as CommandModule)
      .command(convertCommand as unknown as CommandModule)
      .command(collectCommand as unknown as CommandModule)
      .command(recipesCommand as unknown as CommandModule)
      .demandCommand(1, 'exp data: name a subcommand (import, inspect, validate, convert, collect)'),
  handler: () => {},
};
