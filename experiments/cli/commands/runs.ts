/** `exp runs list|show|sync`: read back what runs logged, and replay spooled requests. */
import type { Argv, CommandModule } from 'yargs';
import { InputError } from '../../../common/index.js';
import { spoolDir } from '../../paths.js';
import { openStore, RestStore, resolveTrackingUri, type Run } from '../../tracking/index.js';

interface RunsArgs {
  action: 'list' | 'show' | 'sync';
  id?: string;
  experiment?: string;
  'tracking-uri'?: string;
  limit: number;
  json: boolean;
}

function runSummary(r: Run) {
  return {
    run_id: r.info.runId,
    run_name: r.info.runName,
    experiment_id: r.info.experimentId,
    status: r.info.status,
    start_time: new Date(r.info.startTime).toISOString(),
    end_time: r.info.endTime ? new Date(r.info.endTime).toISOString() : null,
    recipe: r.tags['exp.recipe'] ?? '',
    seed: r.params.seed ?? '',
    parent_run_id: r.tags['mlflow.parentRunId'] ?? '',
  };
}

export const runsCommand: CommandModule<object, RunsArgs> = {
  command: 'runs <action> [id]',
  describe:
    'List runs, show one run (params, tags, latest metrics, inputs, artifacts), or sync spooled metrics',
  builder: (y: Argv) =>
    y
      .positional('action', {
        choices: ['list', 'show', 'sync'] as const,
        describe: 'list, show <run-id>, sync',
      })
      .positional('id', { type: 'string', describe: 'Run id (show)' })
      .option('experiment', { type: 'string', describe: 'Experiment name (list; default: all)' })
      .option('tracking-uri', { type: 'string', describe: 'MLflow server URL or file-store folder' })
      .option('limit', { type: 'number', default: 50, describe: 'Most runs listed' })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print JSON',
      }) as unknown as Argv<RunsArgs>,
  handler: async (args) => {
    if (args.action === 'sync') {
      const left = await RestStore.syncSpools(spoolDir());
      process.stdout.write(left ? `${left} requests still pending (server unreachable?)\n` : 'spool empty\n');
      if (left) process.exitCode = 1;
      return;
    }
    // Reading only: a missing file store is empty, not created (issue 16).
    const store = openStore(resolveTrackingUri(args['tracking-uri']), { readOnly: true });
    if (args.action === 'list') {
      const experiments = await store.searchExperiments();
      const chosen = args.experiment ? experiments.filter((e) => e.name === args.experiment) : experiments;
      if (args.experiment && !chosen.length)
        throw new InputError(`--experiment: no experiment named '${args.experiment}' in ${store.uri}`);
      const runs = await store.searchRuns(
        chosen.map((e) => e.experimentId),
        { maxResults: args.limit },
      );
      const names = new Map(experiments.map((e) => [e.experimentId, e.name]));
      const rows = runs.map((r) => ({ ...runSummary(r), experiment: names.get(r.info.experimentId) ?? '' }));
      if (args.json) {
        process.stdout.write(`${JSON.stringify(rows)}\n`);
        return;
      }
      const lines = rows.map(
        (r) =>
          `${r.run_id}  ${r.status.padEnd(8)}  ${r.experiment.padEnd(14)}  ${r.run_name.padEnd(32)}  ${r.start_time}`,
      );
      process.stdout.write(
        `${['run id                            status    experiment      run name                          started', ...lines].join('\n')}\n`,
      );
      return;
    }
    if (!args.id) throw new InputError('exp runs show: give a run id');
    const run = await store.getRun(args.id);
    const artifacts = await store.listArtifacts(args.id);
    const out = {
      ...runSummary(run),
      params: run.params,
      tags: run.tags,
      metrics: run.metrics,
      inputs: run.inputs.map((i) => ({
        ...i.dataset,
        tags: Object.fromEntries(i.tags.map((t) => [t.key, t.value])),
      })),
      artifacts: artifacts.map((a) => (a.isDir ? `${a.path}/` : a.path)),
    };
    if (args.json) {
      process.stdout.write(`${JSON.stringify(out)}\n`);
      return;
    }
    const section = (title: string, o: Record<string, unknown>) =>
      [
        `${title}:`,
        ...Object.entries(o)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([k, v]) => `  ${k} = ${v}`),
      ].join('\n');
    process.stdout.write(
      `${[
        `run ${out.run_id} (${out.run_name}) ${out.status}, experiment ${out.experiment_id}, ${out.start_time} → ${out.end_time ?? '…'}`,
        section('metrics (latest)', out.metrics),
        section('params', out.params),
        section('tags', out.tags),
        `inputs:\n${out.inputs.map((i) => `  ${i.name} (digest ${i.digest}, ${i.sourceType}: ${i.source})`).join('\n')}`,
        `artifacts:\n${out.artifacts.map((a) => `  ${a}`).join('\n')}`,
      ].join('\n')}\n`,
    );
  },
};
