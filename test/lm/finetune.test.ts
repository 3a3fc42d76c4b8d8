// `exp run sharegpt-finetune.yaml` as a user runs it (subprocess, fixed seed, shortened): the
// training loss on the shipped ShareGPT sample starts at ≈ ln 32000 = 10.4 and ends below the
// loss of the best unigram model of the very targets it trained on (issue 21: a 1-nat drop comes
// from learning token frequencies alone; the sample has 180 token types and a unigram entropy of
// ≈ 3.9 nats), the learning-rate schedule is warmup + cosine, and the final model is written as a
// HF folder that loads back.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Rng } from '../../common/index.js';
import { TokenDataset, TokenWindowSampler } from '../../datasets/index.js';
import { learningRate, loadLlama, windowTargets } from '../../lm/index.js';
import { initBackend } from '../../native/index.js';
import { pythonJson } from '../helpers/python.js';
import { outcome, runExp, tempDir, testEnv } from '../experiments/util.js';

let work: string;
before(async () => {
  await initBackend({ backend: 'wasm' });
  work = tempDir('lm-finetune');
});
after(() => rmSync(work, { recursive: true, force: true }));

/** MLflow file-store metric lines `timestamp value step` → values by step. */
function metric(store: string, runId: string, key: string): number[] {
  for (const exp of readdirSync(store)) {
    try {
      const text = readFileSync(join(store, exp, runId, 'metrics', key), 'utf8');
      return text
        .trim()
        .split('\n')
        .map((l) => l.split(' '))
        .sort((a, b) => Number(a[2]) - Number(b[2]))
        .map((p) => Number(p[1]));
    } catch {
      // not this experiment
    }
  }
  throw new Error(`metric ${key} of run ${runId} not found in ${store}`);
}

/**
 * Per step, the cross-entropy of the best unigram model of steps [from, to]'s loss targets (their
 * empirical distribution) on that step's targets; the batches are drawn as the recipe draws them
 * (TokenWindowSampler seeded `seed · 100003 + step` on the run's own token dataset).
 */
function unigramLoss(
  arrow: string,
  o: { seed: number; batchSize: number; seqLen: number; from: number; to: number },
): number[] {
  const ds = new TokenDataset(arrow);
  const { batchSize: B, seqLen: T } = o;
  const batches: Int32Array[] = [];
  for (let step = o.from; step <= o.to; step++) {
    const b = new TokenWindowSampler(ds, { batchSize: B, seqLen: T, seed: o.seed * 100_003 + step }).sample();
    batches.push(windowTargets(b.tokens, b.lossMask, b.segmentIds, b.mask, B, T).filter((t) => t >= 0));
  }
  ds.close();
  const counts = new Map<number, number>();
  for (const targets of batches) for (const t of targets) counts.set(t, (counts.get(t) ?? 0) + 1);
  const n = batches.reduce((a, t) => a + t.length, 0);
  // the train/loss of a step is the mean over its targets: the same here
  return batches.map(
    (targets) => targets.reduce((a, t) => a - Math.log((counts.get(t) ?? 0) / n), 0) / targets.length,
  );
}

test('learning rate: linear warmup then cosine to the floor', () => {
  const c = { lr: 1, minLrRatio: 0.1, warmupSteps: 10, steps: 110 };
  assert.equal(learningRate(5, c), 0.5);
  assert.equal(learningRate(10, c), 1);
  assert.ok(Math.abs(learningRate(60, c) - 0.55) < 1e-12);
  assert.ok(Math.abs(learningRate(110, c) - 0.1) < 1e-12);
});

/** The schedule as the sharegpt-finetune recipe wrote it before it used train/'s warmupCosine. */
function formerLearningRate(
  step: number,
  c: { lr: number; minLrRatio: number; warmupSteps: number; steps: number },
) {
  if (c.warmupSteps > 0 && step <= c.warmupSteps) return (c.lr * step) / c.warmupSteps;
  const span = Math.max(1, c.steps - c.warmupSteps);
  const progress = Math.min(1, (step - c.warmupSteps) / span);
  const floor = c.lr * c.minLrRatio;
  return floor + 0.5 * (c.lr - floor) * (1 + Math.cos(Math.PI * progress));
}

test('learning rate: the same numbers as the former recipe schedule, every step of random configs', () => {
  const seed = (Math.random() * 2 ** 31) | 0;
  const rng = new Rng(seed);
  const configs = [
    { lr: 3e-3, minLrRatio: 0.1, warmupSteps: 10, steps: 100 },
    { lr: 1e-2, minLrRatio: 0, warmupSteps: 0, steps: 7 },
    { lr: 1, minLrRatio: 0.5, warmupSteps: 12, steps: 5 }, // the run ends inside the warmup
    ...Array.from({ length: 20 }, () => ({
      lr: 10 ** (-4 + 3 * rng.next()),
      minLrRatio: rng.next(),
      warmupSteps: rng.int(40),
      steps: 1 + rng.int(300),
    })),
  ];
  for (const c of configs)
    for (let step = 1; step <= c.steps; step++)
      assert.equal(
        learningRate(step, c),
        formerLearningRate(step, c),
        `seed ${seed} ${JSON.stringify(c)} step ${step}`,
      );
});

const STEPS = 80;
const LAST = 20;

test(`sharegpt-finetune: the loss of the last ${LAST} of ${STEPS} steps beats the best unigram model of their targets (seed 0)`, async (t) => {
  const store = join(work, 'mlruns');
  const set = (kv: string) => ['--set', `sharegpt-finetune.${kv}`];
  const r = await runExp(
    [
      'run',
      'sharegpt-finetune.yaml',
      '--tracking-uri',
      store,
      '--seed',
      '0',
      '--json',
      ...set(`steps=${STEPS}`),
      ...set('seqLen=128'),
      ...set('batchSize=2'),
      ...set('gradAccum=1'),
      ...set('warmupSteps=5'),
      ...set('lr=0.006'),
      // NOTE: vanilla attention without layer checkpointing: the same model in about half the
      // time; blockwise and ring training are compared with it in finetune-ring.test.ts
      ...set('attention=vanilla'),
      ...set('checkpointLayers=false'),
      '--set',
      'tracking.systemMetricsEverySec=0',
    ],
    { env: testEnv(work) },
  );
  assert.equal(r.code, 0, r.stderr);
  const { run_id: runId, status } = outcome(r);
  assert.equal(status, 'FINISHED');
  const loss = metric(store, runId, 'train/loss');
  const lr = metric(store, runId, 'train/lr');
  const tps = metric(store, runId, 'perf/tokens_per_sec');
  assert.equal(loss.length, STEPS);
  assert.ok(loss[0] > 9.5 && loss[0] < 11, `initial loss ${loss[0]} ≈ ln 32000`);
  // learning beyond token frequencies: the model's mean loss over the last steps is below that of
  // the unigram distribution fitted to exactly those steps' targets (measured margin ≈ 0.3 nat)
  const unigram = unigramLoss(join(work, '.exp', 'runs', runId, 'sharegpt.arrow'), {
    seed: 0,
    batchSize: 2,
    seqLen: 128,
    from: STEPS - LAST + 1,
    to: STEPS,
  });
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const trained = mean(loss.slice(-LAST));
  const best = mean(unigram);
  assert.ok(best > 3 && best < 5, `unigram loss ${best}: the sample's ≈ 3.9 nats`);
  assert.ok(
    trained < best - 0.1,
    `last ${LAST} steps: model ${trained.toFixed(3)} nats, unigram of their targets ${best.toFixed(3)} nats (loss ${loss.map((l) => l.toFixed(2)).join(' ')})`,
  );
  t.diagnostic(`last ${LAST} steps: model ${trained.toFixed(3)} nats, best unigram ${best.toFixed(3)} nats`);
  assert.equal(lr[4], 0.006);
  assert.ok(tps.every((t) => t > 0));
  // the exported HF folder loads
  const hfDir = join(work, '.exp', 'runs', runId, 'hf');
  const model = loadLlama(hfDir);
  assert.equal(model.config.vocabSize, 32000);
  model.dispose();
  // and it is the run's artifact hf/ (issue 15), file for file
  const expDir = readdirSync(store).find((e) => existsSync(join(store, e, runId)));
  assert.ok(expDir, `run ${runId} in ${store}`);
  const artifact = join(store, expDir, runId, 'artifacts', 'hf');
  assert.deepEqual(readdirSync(artifact).sort(), readdirSync(hfDir).sort());
  for (const f of readdirSync(hfDir))
    assert.ok(
      readFileSync(join(artifact, f)).equals(readFileSync(join(hfDir, f))),
      `artifact hf/${f} differs`,
    );
  // and an MLflow logged model (issue 15) that transformers loads from models:/<id>
  const py = await pythonJson<{ name: string; type: string; run: string; outputs: string; vocab: number }>(
    `
import json, tempfile, mlflow
from mlflow import MlflowClient
from transformers import LlamaForCausalLM
mlflow.set_tracking_uri(${JSON.stringify(`file://${store}`)})
c = MlflowClient()
run = c.get_run(${JSON.stringify(runId)})
m = c.search_logged_models(experiment_ids=[run.info.experiment_id])[0]
info = mlflow.models.get_model_info(f"models:/{m.model_id}")
d = mlflow.artifacts.download_artifacts(f"models:/{m.model_id}", dst_path=tempfile.mkdtemp())
lm = LlamaForCausalLM.from_pretrained(d)
print(json.dumps({"name": m.name, "type": m.model_type, "run": m.source_run_id,
  "outputs": info.signature.to_dict()["outputs"], "vocab": lm.config.vocab_size}))
`,
    { env: { MLFLOW_ALLOW_FILE_STORE: 'true' } },
  );
  assert.deepEqual(
    { name: py.name, type: py.type, run: py.run, vocab: py.vocab },
    {
      name: 'llama',
      type: 'llama',
      run: runId,
      vocab: 32000,
    },
  );
  assert.deepEqual(JSON.parse(py.outputs), [
    { type: 'tensor', 'tensor-spec': { dtype: 'float32', shape: [-1, -1, 32000] }, name: 'logits' },
  ]);
});
