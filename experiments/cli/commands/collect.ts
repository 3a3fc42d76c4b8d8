/**
 * `exp data collect`: roll a saved PPO policy out and write an Arrow trajectory dataset
 * (rl/collect.ts, issue 6). Deterministic given --seed (and --num-envs).
 */
import type { Argv, CommandModule } from 'yargs';
import { InputError, Progress } from '../../../common/index.js';
import { abortOpenWriters, type Layout } from '../../../datasets/index.js';
import { collectDataset, loadPolicy } from '../../../rl/index.js';

interface CollectArgs {
  policy: string;
  env?: string;
  episodes?: number;
  steps?: number;
  out: string;
  seed: number;
  stochastic: boolean;
  'num-envs': number;
  layout: string;
  'dataset-id'?: string;
  json: boolean;
  quiet: boolean;
}

export const collectCommand: CommandModule<object, CollectArgs> = {
  command: 'collect',
  describe: 'Roll a PPO policy (.json) out and write its episodes as an Arrow dataset',
  builder: (y: Argv) =>
    y
      .option('policy', { type: 'string', demandOption: true, describe: 'Policy file (rl/behavior/*.json)' })
      .option('env', { type: 'string', describe: "Env id; must be the policy's (default: the policy's)" })
      .option('episodes', { type: 'number', describe: 'Whole episodes to collect' })
      .option('steps', { type: 'number', describe: 'Steps to collect (the last episode is cut, truncated)' })
      .option('out', {
        type: 'string',
        demandOption: true,
        describe: 'Output .arrow file (or directory with --layout minari)',
      })
      .option('seed', { type: 'number', default: 0, describe: 'Seed of env resets and action noise' })
      .option('stochastic', {
        type: 'boolean',
        default: false,
        describe: 'Sample actions (default: mean action)',
      })
      .option('num-envs', {
        type: 'number',
        default: 2,
        describe: 'Parallel envs on worker threads (part of what fixes the content)',
      })
      .option('layout', { type: 'string', default: 'file', describe: 'file or minari' })
      .option('dataset-id', { type: 'string', describe: 'Dataset id (default ring/<env>-ppo-<mode>-v0)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' })
      .option('quiet', {
        type: 'boolean',
        default: false,
        describe: 'No progress bar',
      }) as unknown as Argv<CollectArgs>,
  handler: async (args) => {
    const policy = loadPolicy(args.policy);
    if (args.env !== undefined && args.env !== policy.json.envId)
      throw new InputError(
        `--env: the policy ${args.policy} was trained on ${policy.json.envId}; got ${args.env}`,
      );
    if ((args.episodes === undefined) === (args.steps === undefined))
      throw new InputError('exp data collect: give exactly one of --episodes N or --steps N');
    if (args.layout !== 'file' && args.layout !== 'minari')
      throw new InputError(`--layout: expected file or minari; got ${args.layout}`);
    const n = args['num-envs'];
    if (!Number.isInteger(n) || n < 1)
      throw new InputError(`--num-envs: expected a positive integer; got ${n}`);
    const total = (args.episodes ?? args.steps) as number;
    const bar = new Progress({
      label: `collect (${args.episodes !== undefined ? 'episodes' : 'steps'})`,
      total,
      silent: args.quiet,
    });
    const onSigint = () => {
      abortOpenWriters();
      process.exit(130);
    };
    process.once('SIGINT', onSigint);
    try {
      const result = collectDataset({
        policy,
        out: args.out,
        episodes: args.episodes,
        steps: args.steps,
        seed: args.seed,
        stochastic: args.stochastic,
        numEnvs: n,
        layout: args.layout as Layout,
        datasetId: args['dataset-id'],
        onProgress: (steps, episodes) => bar.update(args.episodes !== undefined ? episodes : steps),
      });
      bar.finish();
      if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else
        process.stdout.write(
          `wrote ${result.path} (${result.layout}): ${result.totalEpisodes} episodes, ${result.totalSteps} steps, digest ${result.digest}\n`,
        );
    } finally {
      process.off('SIGINT', onSigint);
    }
  },
};
