/**
 * What a user reads when a run ends (issue 15): its score (final and best), where it is logged
 * and how to open it; and the names that tell runs apart in MLflow's runs table, legends and
 * compare view (`<what differs>-seed<N>`, not `<recipe>-seed<N>-<time>` for every run).
 */
import type { TrackingStore } from './tracking/index.js';

/**
 * A run's score: the metric a user judges the run by, its final and its best value. Recipes that
 * keep their own summary (`summary/<m>_last` and `_best`, the offline-RL recipes) are read first;
 * else the first of these histories the run logged.
 */
export interface RunScore {
  metric: string;
  final: number;
  best: number;
}

/** Histories judged in this order; `higher`: larger is better. */
const SCORE_METRICS: { key: string; higher: boolean }[] = [
  { key: 'eval/normalized_score', higher: true },
  { key: 'eval/accuracy', higher: true },
  { key: 'eval/return_mean', higher: true },
  { key: 'eval/loss', higher: false },
  { key: 'train/loss', higher: false },
];

export async function runScore(store: TrackingStore, runId: string): Promise<RunScore | undefined> {
  const run = await store.getRun(runId);
  const m = run.metrics;
  for (const key of Object.keys(m))
    if (key.startsWith('summary/') && key.endsWith('_last')) {
      const base = key.slice('summary/'.length, -'_last'.length);
      const best = m[`summary/${base}_best`];
      if (best !== undefined) return { metric: base, final: m[key], best };
    }
  for (const { key, higher } of SCORE_METRICS) {
    if (m[key] === undefined) continue;
    const history = await store.getMetricHistory(runId, key);
    if (!history.length) continue;
    const last = history.reduce((a, p) => (p.step >= a.step ? p : a));
    const best = history.reduce((a, p) => (higher ? Math.max(a, p.value) : Math.min(a, p.value)), last.value);
    return { metric: key, final: last.value, best };
  }
  return undefined;
}

/** A number as a person reads it: 4 significant digits, no exponent for everyday sizes. */
export function formatScore(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return Number(v.toPrecision(4)).toString();
}

/** `38.5 (best 44, eval/normalized_score)` */
export function scoreText(s: RunScore): string {
  return `${formatScore(s.final)} (best ${formatScore(s.best)}, ${s.metric})`;
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return m < 60
    ? `${m}m${String(s % 60).padStart(2, '0')}s`
    : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** The lines printed at the end of a run (stderr; the status itself is on stdout, once). */
export function summaryLines(o: {
  runId: string;
  runName: string;
  experimentName: string;
  trackingUri: string;
  durationMs: number;
  score?: RunScore;
}): string[] {
  const local = !/^https?:\/\//i.test(o.trackingUri);
  return [
    `run ${o.runName} (${o.runId}) took ${duration(o.durationMs)}`,
    `  score: ${o.score ? scoreText(o.score) : 'none logged'}`,
    `  where: ${o.trackingUri}, experiment ${o.experimentName}`,
    `  open:  ${local ? 'npx exp ui' : o.trackingUri}  ·  npx exp runs show ${o.runId.slice(0, 8)}`,
  ];
}

/** `toy.lr=0.01` → `lr=0.01`: the last part of each key, so sweep children's names stay short. */
export function shortAssignments(assignments: string[]): string {
  return assignments
    .map((a) => {
      const eq = a.indexOf('=');
      const key = eq < 0 ? a : a.slice(0, eq);
      return `${key.split('.').pop()}${eq < 0 ? '' : a.slice(eq)}`;
    })
    .join(',');
}

/** The score from a run's latest metrics only (no histories: cheap enough for a listing). */
export function latestScore(metrics: Record<string, number>): { metric: string; value: number } | undefined {
  for (const key of Object.keys(metrics))
    if (key.startsWith('summary/') && key.endsWith('_last'))
      return { metric: key.slice('summary/'.length, -'_last'.length), value: metrics[key] };
  for (const { key } of SCORE_METRICS)
    if (metrics[key] !== undefined) return { metric: key, value: metrics[key] };
  return undefined;
}

/** `3m05s`: a run's wall time as a person reads it. */
export function formatDuration(ms: number): string {
  return duration(ms);
}
