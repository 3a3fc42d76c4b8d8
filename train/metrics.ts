/**
 * The metric vocabulary: every key a recipe logs, its unit and its step axis. One quantity has
 * one name in every recipe (so runs of different recipes compare in one MLflow chart), and the
 * README's table is this list (test/train/metrics.test.ts keeps them equal). `<n>` in a name
 * stands for a number (e.g. `eval/accuracy_<n>lines`).
 */
export interface MetricSpec {
  name: string;
  unit: string;
  /** What the step axis counts. */
  step: 'training step' | 'env step' | 'update' | 'devices' | 'sample' | 'none';
  when: string;
}

export const METRICS: readonly MetricSpec[] = [
  { name: 'train/loss', unit: 'nats/token', step: 'training step', when: 'each optimizer step' },
  { name: 'train/lr', unit: '1', step: 'training step', when: 'each optimizer step (PPO: each update)' },
  { name: 'train/grad_norm', unit: '1', step: 'training step', when: 'each optimizer step, before clipping' },
  {
    name: 'train/answer_loss',
    unit: 'nats/token',
    step: 'training step',
    when: 'line retrieval: loss on the answer tokens',
  },
  {
    name: 'train/heldout_accuracy',
    unit: 'fraction',
    step: 'training step',
    when: 'line retrieval: at each evaluation',
  },
  {
    name: 'train/max_lines',
    unit: 'lines',
    step: 'training step',
    when: 'line retrieval: curriculum length',
  },
  { name: 'train/policy_loss', unit: '1', step: 'env step', when: 'PPO: each update' },
  { name: 'train/value_loss', unit: '1', step: 'env step', when: 'PPO: each update' },
  { name: 'train/entropy', unit: 'nats', step: 'env step', when: 'PPO: each update' },
  { name: 'train/approx_kl', unit: 'nats', step: 'env step', when: 'PPO: each update' },
  { name: 'train/clipfrac', unit: 'fraction', step: 'env step', when: 'PPO: each update' },
  { name: 'train/explained_variance', unit: '1', step: 'env step', when: 'PPO: each update' },
  {
    name: 'train/episode_return',
    unit: 'return',
    step: 'env step',
    when: 'PPO: each finished training episode',
  },
  {
    name: 'train/episode_length',
    unit: 'steps',
    step: 'env step',
    when: 'PPO: each finished training episode',
  },
  {
    name: 'perf/tokens_per_sec',
    unit: 'tokens/s',
    step: 'training step',
    when: 'each optimizer step (all devices)',
  },
  { name: 'perf/steps_per_sec', unit: 'env steps/s', step: 'env step', when: 'PPO: each update' },
  { name: 'eval/return_mean', unit: 'return', step: 'training step', when: 'each evaluation' },
  { name: 'eval/return_std', unit: 'return', step: 'training step', when: 'each evaluation' },
  {
    name: 'eval/normalized_score',
    unit: 'D4RL score (0 random, 100 expert)',
    step: 'training step',
    when: 'each evaluation, where reference scores exist',
  },
  {
    name: 'eval/normalized_score_std',
    unit: 'D4RL score',
    step: 'training step',
    when: 'each evaluation, where reference scores exist',
  },
  {
    name: 'eval/normalized_score_best_trial',
    unit: 'D4RL score',
    step: 'training step',
    when: 'offline RL with several trials per evaluation: the best trial',
  },
  {
    name: 'eval/loss',
    unit: 'nats/token',
    step: 'training step',
    when: 'LM: each evaluation on held-out data',
  },
  { name: 'eval/accuracy', unit: 'fraction', step: 'training step', when: 'line retrieval: each evaluation' },
  {
    name: 'eval/accuracy_<n>lines',
    unit: 'fraction',
    step: 'training step',
    when: 'line retrieval: per prompt length',
  },
  {
    name: 'eval/ring_accuracy',
    unit: 'fraction',
    step: 'training step',
    when: 'line retrieval: evaluated on the ring',
  },
  {
    name: 'eval/ring_accuracy_<n>lines',
    unit: 'fraction',
    step: 'training step',
    when: 'line retrieval: on the ring, per prompt length',
  },
  {
    name: 'eval/max_context_one_device',
    unit: 'tokens',
    step: 'none',
    when: 'line retrieval: longest prompt one device holds',
  },
  {
    name: 'eval/max_context_ring',
    unit: 'tokens',
    step: 'none',
    when: 'line retrieval: longest prompt the ring holds',
  },
  {
    name: 'eval/peak_mb_one_device',
    unit: 'MiB',
    step: 'none',
    when: 'line retrieval: peak real memory (the budget), one device',
  },
  {
    name: 'eval/peak_mb_ring',
    unit: 'MiB',
    step: 'none',
    when: 'line retrieval: peak real memory (the budget) per ring device',
  },
  {
    name: 'eval/tensor_mb_one_device',
    unit: 'MiB',
    step: 'none',
    when: 'line retrieval: peak tensor bytes, one device',
  },
  {
    name: 'eval/tensor_mb_ring',
    unit: 'MiB',
    step: 'none',
    when: 'line retrieval: peak tensor bytes per ring device',
  },
  {
    name: 'result/<name>',
    unit: 'varies',
    step: 'none',
    when: "a run's one-number results (a table's cells)",
  },
  {
    name: 'summary/<metric>/mean',
    unit: 'as the metric',
    step: 'none',
    when: "a sweep's parent run only: mean over its cells",
  },
  {
    name: 'summary/<metric>/std',
    unit: 'as the metric',
    step: 'none',
    when: "a sweep's parent run only: std over its cells",
  },
  {
    name: 'system/<name>',
    unit: 'varies',
    step: 'sample',
    when: 'every tracking.systemMetricsEverySec seconds',
  },
];

/** Whether `key` is in the vocabulary (`<n>` matches digits, `<name>`/`<metric>` any path). */
export function isKnownMetric(key: string): boolean {
  return METRICS.some((m) => metricPattern(m.name).test(key));
}

function metricPattern(name: string): RegExp {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped.replace(/<n>/g, '\\d+').replace(/<[a-z]+>/g, '[A-Za-z0-9_./-]+')}$`);
}
