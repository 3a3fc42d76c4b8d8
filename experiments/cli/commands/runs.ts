/** `exp runs list|show|sync`: read back what runs logged, and replay spooled requests. */
import type { Argv, CommandModule } from 'yargs';
import { InputError } from '../../../common/index.js';
import { spoolDir } from '../../paths.js';
import { formatDuration, formatScore, latestScore } from '../../run-summary.js';
import {
  openStore,
  RestStore,
  resolveTrackingUri,
  type Run,
  type TrackingStore,
} from '../../tracking/index.js';

interface RunsArgs {
  action: 'list' | 'show' | 'sync';
  id?: string;
  experiment?: string;
  'tracking-uri'?: string;
  limit: number;
  json: boolean;
}

function runSummary(r: Run) {
  const score = latestScore(r.metrics);
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
    score: score?.value ?? null,
    score_metric: score?.metric ?? '',
    duration_sec: r.info.endTime ? Math.round((r.info.endTime - r.info.startTime) / 1000) : null,
  };
}

/**
 * The params that tell the listed runs apart (differing values, seed included), shortened to the
 * last part of the key: what `exp runs list` shows beside each run (issue 15).
 */
function keyParams(runs: Run[]): string[] {
  const keys = new Set(runs.flatMap((r) => Object.keys(r.params)));
  return [...keys]
    .filter((k) => k !== 'runName' && new Set(runs.map((r) => r.params[k] ?? '')).size > 1)
    .sort();
}

/** A run by its id or a unique prefix of it (`exp runs show 3f2a9c`); `who` starts the messages. */
export async function findRun(store: TrackingStore, id: string, who = 'exp runs show'): Promise<Run> {
  if (/^[0-9a-f]{32}$/.test(id)) return store.getRun(id);
  if (!/^[0-9a-f]+$/.test(id))
    throw new InputError(`${who}: '${id}' is not a run id (32 hex digits) or a prefix of one`);
  const experiments = await store.searchExperiments();
  const runs = await store.searchRuns(experiments.map((e) => e.experimentId));
  const hits = runs.filter((r) => r.info.runId.startsWith(id));
  if (hits.length === 1) return hits[0];
  if (!hits.length) throw new InputError(`${who}: no run id starts with '${id}' in ${store.uri}`);
  throw new InputError(
    `${who}: '${id}' is the start of ${hits.length} run ids (${hits
      .slice(0, 5)
      .map((r) => r.info.runId)
      .join(', ')}${hits.length > 5 ? ', …' : ''}); give more of it`,
  );
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
      .positional('id', { type: 'string', describe: 'Run id, or a unique start of one (show)' })
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
      const shown = keyParams(runs);
      const short = (k: string) => k.split('.').pop() ?? k;
      const lines = rows.map((r, i) => {
        const p = shown.map((k) => `${short(k)}=${runs[i].params[k] ?? ''}`).join(' ');
        const score = r.score === null ? '' : `${formatScore(r.score)} ${r.score_metric}`;
        const took = r.duration_sec === null ? '' : formatDuration(r.duration_sec * 1000);
        return `${r.run_id.slice(0, 8)}  ${r.status.padEnd(8)}  ${r.experiment.padEnd(14)}  ${r.run_name.padEnd(24)}  ${score.padEnd(30)}  ${took.padEnd(7)}  ${r.start_time.slice(0, 16)}  ${p}`;
      });
      process.stdout.write(
        `${[`run id    status    experiment      run name                  score                           took     started           ${shown.length ? 'differs' : ''}`, ...lines].join('\n')}\n`,
      );
      return;
    }
    if (!args.id) throw new InputError('exp runs show: give a run id (or a unique start of one)');
    const run = await findRun(store, args.id);
    const artifacts = await store.listArtifacts(run.info.runId);
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
