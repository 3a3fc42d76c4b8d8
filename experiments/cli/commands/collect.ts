/**
 * `exp data collect`: roll a saved PPO policy out and write an Arrow trajectory dataset
 * (rl/collect.ts, issue 6). Deterministic given --seed (and --num-envs).
 */
import type { Argv, CommandModule } from 'yargs';
import { InputError, Progress } from '../../../common/index.js';
import { checkWriteTarget, type Layout } from '../../../datasets/index.js';
import { collectDataset, loadPolicy } from '../../../rl/index.js';
import { countFlag, maxWorkerThreads } from '../options.js';

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
    // Each env is a worker thread with its own MuJoCo wasm instance: bounded by this machine.
    const n = countFlag(args['num-envs'], '--num-envs', {
      limit: maxWorkerThreads(),
      why: "one worker thread per env; half of this machine's memory at ≈64 MB each",
    });
    const total = countFlag(
      args.episodes ?? args.steps,
      args.episodes !== undefined ? '--episodes' : '--steps',
    );
    if (!Number.isSafeInteger(args.seed) || args.seed < 0)
      throw new InputError(`--seed: expected an integer ≥ 0; got ${args.seed}`);
    const bar = new Progress({
      label: `collect (${args.episodes !== undefined ? 'episodes' : 'steps'})`,
      total,
      silent: args.quiet,
    });
    // NOTE: collectDataset runs synchronously, so a JS signal handler would only run once it had
    // finished (Ctrl-C was ignored to the end). Without one, Ctrl-C/SIGTERM stop it at once; the
    // temporary it leaves is removed by the next write into that folder (issue 16).
    checkWriteTarget(args.out, args.layout as Layout, [args.policy]);
    {
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
    }
  },
};
