/**
 * Splitting a log batch into requests MLflow accepts (mlflow/utils/validation.py): at most 1000
 * metrics, 100 params, 100 tags and 1000 entities in all per request, and at most 1 MB of JSON.
 */
import type { KeyValue, LogBatch, Metric } from './types.js';

export const BATCH_LIMITS = {
  metrics: 1000,
  params: 100,
  tags: 100,
  entities: 1000,
  /** Bytes of the JSON request body; kept a little under MLflow's 1e6 for the envelope. */
  bytes: 1_000_000 - 1024,
  paramValueLength: 6000,
  tagValueLength: 8000,
  keyLength: 250,
} as const;

/** Serialised size of one entity inside the request body (its JSON plus a comma). */
function entityBytes(e: Metric | KeyValue): number {
  return Buffer.byteLength(JSON.stringify(e)) + 1;
}

/**
 * Splits `batch` into request-sized batches, preserving order within metrics, params and tags.
 * Params and tags go first (a run's params should land before its metrics).
 */
export function splitBatch(batch: LogBatch, limits = BATCH_LIMITS): LogBatch[] {
  const out: LogBatch[] = [];
  let cur: LogBatch = { metrics: [], params: [], tags: [] };
  let bytes = 64;
  const flush = () => {
    if (cur.metrics.length || cur.params.length || cur.tags.length) out.push(cur);
    cur = { metrics: [], params: [], tags: [] };
    bytes = 64;
  };
  const add = (kind: keyof LogBatch, e: Metric | KeyValue) => {
    const size = entityBytes(e);
    const n = cur.metrics.length + cur.params.length + cur.tags.length;
    if (cur[kind].length >= limits[kind] || n >= limits.entities || bytes + size > limits.bytes) flush();
    (cur[kind] as (Metric | KeyValue)[]).push(e);
    bytes += size;
  };
  for (const p of batch.params) add('params', p);
  for (const t of batch.tags) add('tags', t);
  for (const m of batch.metrics) add('metrics', m);
  flush();
  return out;
}

/** Truncates a param or tag value to MLflow's limit, marking the cut. */
export function clampValue(value: string, max: number): string {
  return value.length <= max ? value : `${value.slice(0, max - 3)}...`;
}
