/**
 * `exp sweep <config> --seeds 0,1,2 [--grid key=v1,v2 …] [--parallel P]
 *  [--launcher local|slurm|k8s] [--dry-run] [--resume <parent-run-id>]` (see experiments/sweep.ts).
 */
import type { Argv, CommandModule } from 'yargs';
import { InputError } from '../../../common/index.js';
import { parseSeeds, runSweep, SWEEP_LAUNCHERS, type SweepLauncher } from '../../sweep.js';

interface SweepArgs {
  config?: string;
  seeds: string;
  grid: string[];
  parallel: number;
  set: string[];
  'tracking-uri'?: string;
  launcher?: string;
  'dry-run': boolean;
  resume?: string;
  partition?: string;
  time?: string;
  'cpus-per-task'?: number;
  mem?: string;
  'sbatch-arg'?: string[];
  'poll-sec': number;
  image?: string;
  json: boolean;
  quiet: boolean;
}

export const sweepCommand: CommandModule<object, SweepArgs> = {
  command: 'sweep [config]',
  describe: 'Run a config over seeds × a grid as child runs of one parent run, with a mean ± std summary',
  builder: (y: Argv) =>
    y
      .positional('config', { type: 'string', describe: 'Config file or built-in name (not with --resume)' })
      .option('seeds', { type: 'string', default: '0', describe: 'Seeds: 0,1,2 or 0-4' })
      .option('grid', {
        type: 'string',
        array: true,
        default: [],
        describe: 'A swept key: --grid toy.lr=0.01,0.03 (repeatable; the product of all is run)',
      })
      .option('parallel', {
        type: 'number',
        default: 1,
        describe: 'Child runs at once (slurm: the array throttle %P)',
      })
      .option('set', {
        type: 'string',
        array: true,
        default: [],
        describe: 'Override for every child: --set toy.steps=100',
      })
      .option('tracking-uri', { type: 'string', describe: 'MLflow server URL or file-store folder' })
      .option('launcher', {
        type: 'string',
        describe: `Where cells run: ${SWEEP_LAUNCHERS.join(', ')} (default local; slurm and k8s need MLFLOW_TRACKING_URI=http(s)://…)`,
      })
      .option('dry-run', {
        type: 'boolean',
        default: false,
        describe: 'Print the commands, batch script (slurm) or indexed Job manifest (k8s); run nothing',
      })
      .option('resume', {
        type: 'string',
        describe: "A sweep's parent run id: rerun only the cells whose run did not finish",
      })
      .option('partition', { type: 'string', describe: 'slurm: --partition of each cell' })
      .option('time', { type: 'string', describe: 'slurm: --time of each cell (e.g. 30, 2:00:00)' })
      .option('cpus-per-task', { type: 'number', describe: 'slurm/k8s: CPUs of each cell (default 1)' })
      .option('mem', { type: 'string', describe: 'slurm/k8s: memory of each cell (e.g. 4G)' })
      .option('sbatch-arg', {
        type: 'string',
        array: true,
        describe: 'slurm: extra sbatch option, e.g. --sbatch-arg=--account=lab (repeatable)',
      })
      .option('poll-sec', {
        type: 'number',
        default: 2,
        describe: "slurm: seconds between reads of the array's state",
      })
      .option('image', { type: 'string', describe: 'k8s: container image with ring-harness installed' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the outcome as JSON' })
      .option('quiet', {
        type: 'boolean',
        default: false,
        describe: 'No progress output',
      })
      .example('$0 sweep toy.yaml --seeds 0,1 --grid toy.lr=0.01,0.03 --launcher slurm --time 10', '')
      .example('$0 sweep --resume <parent-run-id>', '') as unknown as Argv<SweepArgs>,
  handler: async (args) => {
    const launcher = args.launcher as SweepLauncher | undefined;
    if (launcher !== undefined && !SWEEP_LAUNCHERS.includes(launcher))
      throw new InputError(
        `--launcher: expected one of ${SWEEP_LAUNCHERS.join(', ')}; got '${args.launcher}'`,
      );
    if (args.resume && (args.grid.length || args.set.length || args.seeds !== '0'))
      throw new InputError(
        'exp sweep --resume: the sweep reruns the seeds, grid and --set overrides it recorded; give none of them',
      );
    const out = await runSweep({
      config: args.config,
      seeds: parseSeeds(args.seeds),
      grid: args.grid,
      parallel: args.parallel,
      sets: args.set,
      trackingUri: args['tracking-uri'],
      quiet: args.quiet,
      launcher,
      dryRun: args['dry-run'],
      resume: args.resume,
      slurm: {
        partition: args.partition,
        time: args.time,
        cpusPerTask: args['cpus-per-task'],
        mem: args.mem,
        extra: args['sbatch-arg'],
      },
      pollSec: args['poll-sec'],
      image: args.image,
    });
    if (!out) return; // --dry-run printed the plan
    if (args.json)
      process.stdout.write(
        `${JSON.stringify({ parent_run_id: out.parentRunId, status: out.status, ran: out.ran, job_ids: out.jobIds, children: out.children, summary: out.summary })}\n`,
      );
    else {
      const lines = out.summary.map(
        (r) =>
          `${r.cell.padEnd(24)} ${r.metric.padEnd(16)} ${r.mean.toPrecision(4)} ± ${r.std.toPrecision(2)} (n=${r.n})`,
      );
      process.stdout.write(`sweep ${out.parentRunId} ${out.status}\n${lines.join('\n')}\n`);
    }
    if (out.status === 'KILLED') process.exitCode = 130;
    else if (out.status !== 'FINISHED') process.exitCode = 1;
  },
};
