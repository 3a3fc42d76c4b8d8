// The LM trainers called as a script calls them, without experiments/ (issue 13): lm/'s
// `finetune` and `trainLineRetrieval` with a MemoryLogger and an in-memory checkpoint sink. They
// log the metric vocabulary, leave their weights in the model, and a run resumed from a
// checkpoint logs the same numbers for the remaining steps as the uninterrupted run.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Rng } from '../../common/index.js';
import {
  buildShareGptDataset,
  FINETUNE_DEFAULTS,
  type FinetuneOptions,
  finetune,
  finetuneRuntime,
  LINE_RETRIEVAL_DEFAULTS,
  type LineRetrievalOptions,
  LlamaModel,
  loadTokenizer,
  trainLineRetrieval,
} from '../../lm/index.js';
import { initBackend } from '../../native/index.js';
import { isKnownMetric, MemoryLogger, type TrainCheckpoint, type TrainContext } from '../../train/index.js';

let work: string;
before(async () => {
  await initBackend({ backend: 'wasm' });
  work = mkdtempSync(join(tmpdir(), 'lm-trainers-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

/** A context that keeps metrics and the checkpoints saved at `every` steps in memory. */
function memoryContext(seed: number, every: number, resume?: TrainCheckpoint) {
  const logger = new MemoryLogger();
  const saved: TrainCheckpoint[] = [];
  const ctx: TrainContext = {
    seed,
    rng: new Rng(seed),
    logger,
    checkpoints: {
      due: (step) => step % every === 0,
      save: async (c) => {
        saved.push(c);
      },
    },
    resume,
    backend: 'wasm',
  };
  return { ctx, logger, saved };
}

/** train/loss (and the other keys) of the steps after `from`, as [step, value] pairs. */
function after_(points: Record<string, [number, number][]>, key: string, from: number): [number, number][] {
  return (points[key] ?? []).filter(([step]) => step > from);
}

describe('trainLineRetrieval (no experiments/)', () => {
  const o: LineRetrievalOptions = {
    ...LINE_RETRIEVAL_DEFAULTS,
    model: {
      hiddenSize: 16,
      intermediateSize: 32,
      numLayers: 1,
      numHeads: 2,
      numKvHeads: 2,
      ropeTheta: 10000,
    },
    trainLines: [1, 2, 3],
    curriculum: { startLines: 1, holdSteps: 1, fullSteps: 3 },
    steps: 4,
    batchSize: 2,
    warmupSteps: 1,
    evalEvery: 2,
    evalCases: 2,
    evalBatch: 2,
  };

  test('logs the vocabulary every step; resumed from step 2 it logs the same steps 3–4', async () => {
    const seed = (Math.random() * 2 ** 31) | 0;
    const full = memoryContext(seed, 2);
    const trained = await trainLineRetrieval(o, full.ctx);
    trained.model.dispose();
    const keys = Object.keys(full.logger.points).sort();
    assert.deepEqual(keys, [
      'train/answer_loss',
      'train/grad_norm',
      'train/heldout_accuracy',
      'train/loss',
      'train/lr',
      'train/max_lines',
    ]);
    for (const k of keys) assert.ok(isKnownMetric(k), `${k} is in train/metrics.ts`);
    assert.deepEqual(
      full.logger.points['train/loss'].map(([s]) => s),
      [1, 2, 3, 4],
    );
    assert.deepEqual(
      full.saved.map((c) => c.step),
      [2, 4],
    );
    assert.deepEqual(
      trained.heldout.map((h) => h.step),
      [2, 4],
    );

    // a different main RNG: the resumed weights, not the initialisation, must decide the rest
    const resumed = memoryContext(seed + 1, 2, full.saved[0]);
    resumed.ctx.seed = seed;
    const again = await trainLineRetrieval(o, resumed.ctx);
    again.model.dispose();
    for (const k of ['train/loss', 'train/grad_norm', 'train/lr', 'train/heldout_accuracy'])
      assert.deepEqual(
        after_(resumed.logger.points, k, 2),
        after_(full.logger.points, k, 2),
        `seed ${seed}: ${k}`,
      );
    assert.deepEqual(again.heldout, trained.heldout, `seed ${seed}: held-out history restored`);
  });

  test('errors name the options: an empty trainLines, a batch of 0', async () => {
    const { ctx } = memoryContext(0, 1);
    await assert.rejects(
      trainLineRetrieval({ ...o, trainLines: [] }, ctx),
      /line-retrieval trainer\.trainLines: expected a non-empty list of line counts ≥ 1; got \[\]/,
    );
    await assert.rejects(
      trainLineRetrieval({ ...o, batchSize: 0 }, { ...ctx, optionsPath: 'my-run' }),
      /my-run\.batchSize: expected an integer ≥ 1; got 0/,
    );
  });
});

describe('finetune (no experiments/)', () => {
  let arrow: string;
  before(() => {
    arrow = join(work, 'sharegpt.arrow');
    const tokenizer = loadTokenizer('llama');
    buildShareGptDataset(join(process.cwd(), 'lm/data/sharegpt-sample.json'), arrow, {
      tokenizer,
      maxLen: 64,
      packLen: 64,
    });
  });

  const o: FinetuneOptions = {
    ...FINETUNE_DEFAULTS,
    blockSize: 16,
    seqLen: 64,
    batchSize: 1,
    gradAccum: 2,
    steps: 3,
    warmupSteps: 1,
  };
  const build = (seed: number) =>
    LlamaModel.init(
      {
        vocabSize: 32000,
        hiddenSize: 8,
        intermediateSize: 16,
        numLayers: 1,
        numHeads: 2,
        numKvHeads: 1,
        ropeTheta: 10000,
        tieWordEmbeddings: true,
        rmsNormEps: 1e-5,
        ropeScalingFactor: 1,
        maxPositionEmbeddings: 64,
        bosTokenId: 1,
        eosTokenId: 2,
      },
      new Rng(seed),
      finetuneRuntime(o),
    );

  test('one device: logs loss, lr, grad norm and throughput; resumed from step 1 it logs the same steps 2–3', async () => {
    const seed = (Math.random() * 2 ** 31) | 0;
    const full = memoryContext(seed, 1);
    const model = build(seed);
    const before = model.variables()[0].dataSync().slice();
    const result = await finetune(model, arrow, o, full.ctx);
    assert.equal(result.lastStep, 3);
    assert.deepEqual(Object.keys(full.logger.points).sort(), [
      'perf/tokens_per_sec',
      'train/grad_norm',
      'train/loss',
      'train/lr',
    ]);
    // the final weights are back in the model: the embedding moved
    const moved = model.variables()[0].dataSync();
    assert.ok(
      moved.some((x, i) => x !== before[i]),
      `seed ${seed}: the embedding changed`,
    );
    model.dispose();

    const resumed = memoryContext(seed, 1, full.saved[0]);
    const other = build(seed + 1); // its weights are replaced by the checkpoint's
    await finetune(other, arrow, o, resumed.ctx);
    other.dispose();
    for (const k of ['train/loss', 'train/grad_norm', 'train/lr'])
      assert.deepEqual(
        after_(resumed.logger.points, k, 1),
        after_(full.logger.points, k, 1),
        `seed ${seed}: ${k}`,
      );
  });

  test('errors name the options: devices without ring', async () => {
    const { ctx } = memoryContext(0, 1);
    const model = build(0);
    await assert.rejects(
      finetune(model, arrow, { ...o, devices: 2 }, { ...ctx, optionsPath: 'my-run' }),
      /my-run\.devices: blockwise runs on one device; got 2/,
    );
    model.dispose();
  });
});
