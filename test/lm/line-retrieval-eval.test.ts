// Issue 20: the line-retrieval evaluation's budget is on real per-device memory. A briefly trained
// model is evaluated at a short and a long context: (a) the reported one-device and ring peaks are
// what a worker device really holds (its runtime's fixed cost on top of the tensors), (b) a budget
// between the two contexts' measured real peaks evaluates the short one and puts the long one
// over budget, (c) the one-device accuracies equal the main-thread evaluation of the same weights
// on the same cases (the worker runs the same kernels, so the same predictions).
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { Rng } from '../../common/index.js';
import {
  encodeLineCase,
  evaluateLineRetrieval,
  evaluateOnDevice,
  LINE_RETRIEVAL_DEFAULTS,
  type LineRetrievalEvaluation,
  type LineRetrievalOptions,
  trainLineRetrieval,
} from '../../lm/index.js';
import { initBackend } from '../../native/index.js';
import { MemoryLogger, type TrainContext } from '../../train/index.js';

before(async () => {
  await initBackend({ backend: 'wasm' });
});

/** Below an idle device's real memory (≈ 38 MiB: runtime, wasm heap, JS), which every peak holds. */
const FIXED_COST_MIB = 15;

const o: LineRetrievalOptions = {
  ...LINE_RETRIEVAL_DEFAULTS,
  // small enough to train in ~10 s to above-zero accuracy at 2 lines (0.375 with seed 0)
  model: {
    ...LINE_RETRIEVAL_DEFAULTS.model,
    hiddenSize: 32,
    intermediateSize: 64,
    numLayers: 1,
    numHeads: 4,
    numKvHeads: 4,
  },
  trainLines: [1, 2],
  curriculum: { startLines: 2, holdSteps: 0, fullSteps: 0 },
  steps: 100,
  lr: 0.02,
  evalEvery: 0,
  // 2 lines: 128 tokens; 250 lines: 2,624 (the ring's extra length is 2 × the one-device context).
  // Far apart: the wasm heap grows in steps (up to 20% past a request), so nearer contexts can
  // share one heap size (RING_NATIVE=0: 128 and 448 tokens within 2.2 MiB)
  evalLines: [2, 250],
  evalCases: 8,
  evalBatch: 4,
  devices: 2,
};

/** The cases evaluateLineRetrieval draws for `evalLines` (independently re-derived). */
function evalSets(opt: LineRetrievalOptions) {
  const rng = new Rng(opt.evalSeed);
  return opt.evalLines.map((lines) => {
    const cases = Array.from({ length: opt.evalCases }, () => encodeLineCase(rng, lines, opt.maxValue));
    const len = Math.max(...cases.map((e) => e.ids.length));
    const k = opt.blockSize * opt.devices;
    return { lines, cases, T: Math.ceil(len / k) * k };
  });
}

test("line-retrieval evaluation: budget on real per-device memory, tensor bytes beside it, the main thread's accuracies (issue 20)", async (t) => {
  const ctx: TrainContext = { seed: 0, rng: new Rng(0), logger: new MemoryLogger(), backend: 'wasm' };
  const { model } = await trainLineRetrieval(o, ctx);
  try {
    const run = async (deviceMemoryMB: number): Promise<[LineRetrievalEvaluation, MemoryLogger]> => {
      const logger = new MemoryLogger();
      const r = await evaluateLineRetrieval(model, { ...o, deviceMemoryMB }, { logger, backend: 'wasm' });
      t.diagnostic(`budget ${deviceMemoryMB} MiB: ${JSON.stringify(r.rows)}`);
      return [r, logger];
    };
    const sets = evalSets(o);
    const [shortT, longT] = sets.map((s) => s.T);
    assert.ok(longT >= 6 * shortT, `contexts ${shortT} and ${longT} tokens`);

    // everything fits: both contexts on one device, their real and tensor peaks
    const [all, logger] = await run(4096);
    assert.equal(all.rows.length, 3, 'the two lengths and the ring at 2 × the one-device context');
    for (const row of all.rows) {
      const ring = Number(row.ring_peak_mb_per_device);
      const ringTensors = Number(row.ring_tensor_mb_per_device);
      assert.ok(row.one_device_tensor_mb > 0 && ringTensors > 0, JSON.stringify(row));
      // (a) real memory: the device's fixed cost comes on top of the forward's tensors
      assert.ok(
        row.one_device_peak_mb > row.one_device_tensor_mb + FIXED_COST_MIB,
        `one device, ${row.context_tokens} tokens: real ${row.one_device_peak_mb} vs tensors ${row.one_device_tensor_mb} MiB`,
      );
      assert.ok(
        ring > ringTensors + FIXED_COST_MIB,
        `ring, ${row.context_tokens} tokens: real ${ring} vs tensors ${ringTensors} MiB per device`,
      );
    }
    const [short, long] = all.rows;
    // the ring's extra length (2 × the longest) fits this budget on one device too
    assert.equal(all.rows[2].context_tokens, o.devices * longT);
    assert.equal(all.maxContextOneDevice, o.devices * longT);
    // the metrics carry the table's figures: real as peak_mb, tensor bytes as tensor_mb
    const last = (key: string) => logger.points[key]?.at(-1)?.[1];
    assert.equal(last('eval/peak_mb_ring'), all.rows.at(-1)?.ring_peak_mb_per_device);
    assert.equal(last('eval/tensor_mb_ring'), all.rows.at(-1)?.ring_tensor_mb_per_device);
    assert.equal(logger.points['eval/tensor_mb_one_device']?.length, 3);

    // (c) the worker's one-device accuracies are the main thread's on the same cases and weights
    const reference = await Promise.all(
      sets.map(async (s) => (await evaluateOnDevice(model, s.cases, s.T, o.evalBatch)).accuracy),
    );
    t.diagnostic(`main-thread accuracies ${reference}`);
    assert.ok(reference[0] > 0, `a trained model retrieves from 2 lines: ${reference}`);
    assert.deepEqual([short.one_device_accuracy, long.one_device_accuracy], reference);

    // (b) a budget between the two contexts' real peaks splits them; tensor bytes would not
    // (both are far below it)
    assert.ok(long.one_device_peak_mb - short.one_device_peak_mb > 8, 'the real peaks are apart');
    const budget = Math.round((short.one_device_peak_mb + long.one_device_peak_mb) / 2);
    assert.ok(long.one_device_tensor_mb < budget, 'the long context fits by tensor bytes');
    const [split] = await run(budget);
    const [s2, l2] = split.rows;
    assert.equal(s2.one_device_accuracy, reference[0], `${shortT} tokens evaluated within ${budget} MiB`);
    assert.ok(s2.one_device_peak_mb <= budget);
    assert.equal(l2.one_device_accuracy, 'over budget', `${longT} tokens over ${budget} MiB`);
    assert.ok(l2.one_device_peak_mb > budget);
    assert.equal(split.maxContextOneDevice, shortT);
    // the ring's context is what its devices' real peaks allow; a ring device holds less than
    // one device at the same context
    const ringFits = split.rows.filter((r) => Number(r.ring_peak_mb_per_device) <= budget);
    assert.equal(split.maxContextRing, Math.max(0, ...ringFits.map((r) => r.context_tokens)));
    assert.ok(Number(l2.ring_peak_mb_per_device) < l2.one_device_peak_mb, JSON.stringify(l2));
    // the ring runs every length; its accuracy at the short one is the one device's
    assert.ok(Math.abs(Number(s2.ring_accuracy) - reference[0]) <= 1 / o.evalCases, 'ring vs one device');
    assert.equal(typeof l2.ring_accuracy, 'number');
  } finally {
    model.dispose();
  }
});

test('a one-device budget below an idle device holds no context; the ring still evaluates them', async () => {
  const ctx: TrainContext = { seed: 1, rng: new Rng(1), logger: new MemoryLogger(), backend: 'wasm' };
  const { model } = await trainLineRetrieval({ ...o, steps: 1 }, ctx);
  try {
    const logger = new MemoryLogger();
    // 20 MiB was the default when the budget was on tensor bytes: no device holds that little
    const r = await evaluateLineRetrieval(
      model,
      { ...o, evalLines: [2], deviceMemoryMB: 20 },
      { logger, backend: 'wasm' },
    );
    assert.equal(r.maxContextOneDevice, 0);
    assert.equal(r.maxContextRing, 0);
    assert.equal(r.rows.length, 1);
    assert.equal(r.rows[0].one_device_accuracy, 'over budget');
    assert.ok(r.rows[0].one_device_peak_mb > 20, `${r.rows[0].one_device_peak_mb} MiB`);
    assert.equal(typeof r.rows[0].ring_accuracy, 'number');
  } finally {
    model.dispose();
  }
});
