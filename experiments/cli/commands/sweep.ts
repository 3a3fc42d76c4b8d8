/** `exp sweep <config> --seeds 0,1,2 [--grid key=v1,v2 …] [--parallel P]` (see experiments/sweep.ts). */
import type { Argv, CommandModule } from 'yargs';
import { parseSeeds, runSweep } from '../../sweep.js';

interface SweepArgs {
  config: string;
  seeds: string;
  grid: string[];
  parallel: number;
  set: string[];
  'tracking-uri'?: string;
  json: boolean;
  quiet: boolean;
}

export const sweepCommand: CommandModule<object, SweepArgs> = {
  command: 'sweep <config>',
  describe: 'Run a config over seeds × a grid as child runs of one parent run, with a mean ± std summary',
  builder: (y: Argv) =>
    y
      .positional('config', { type: 'string', describe: 'Config file or built-in name', demandOption: true })
      .option('seeds', { type: 'string', default: '0', describe: 'Seeds: 0,1,2 or 0-4' })
      .option('grid', {
        type: 'string',
        array: true,
        default: [],
        describe: 'A swept key: --grid toy.lr=0.01,0.03 (repeatable; the product of all is run)',
      })
      .option('parallel', { type: 'number', default: 1, describe: 'Child runs at once' })
      .option('set', {
        type: 'string',
        array: true,
        default: [],
        describe: 'Override for every child: --set toy.steps=100',
      })
      .option('tracking-uri', { type: 'string', describe: 'MLflow server URL or file-store folder' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the outcome as JSON' })
      .option('quiet', {
        type: 'boolean',
        default: false,
        describe: 'No progress output',
      }) as unknown as Argv<SweepArgs>,
  handler: async (args) => {
    const out = await runSweep({
      config: args.config,
      seeds: parseSeeds(args.seeds),
      grid: args.grid,
      parallel: args.parallel,
      sets: args.set,
      trackingUri: args['tracking-uri'],
      quiet: args.quiet,
    });
    if (args.json)
      process.stdout.write(
        `${JSON.stringify({ parent_run_id: out.parentRunId, status: out.status, children: out.children, summary: out.summary })}\n`,
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
