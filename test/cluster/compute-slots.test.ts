// Compute slots (issue 17 item 4): a RingGroup with `computeSlots` lets at most that many devices
// compute at once (a device gives its slot up while it waits on its neighbour), its ring
// attention and a finetune step are bitwise the same as without slots, and 8 devices on 1 slot finish a ring
// attention (no deadlock: a device waiting on a message never holds a slot).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { InputError, Rng } from '../../common/index.js';
import {
  type FinetuneInitArgs,
  type FinetuneState,
  type FinetuneStepResult,
  finetuneMessageFloats,
  shardStep,
} from '../../lm/finetune-device.js';
import { type LlamaConfig, LlamaModel, type LlamaRuntime } from '../../lm/index.js';
import { initBackend } from '../../native/index.js';
import { vanillaAttention } from '../../ring/index.js';
import { RingGroup, ringAttention } from '../../cluster/index.js';
import { type Case, caseName, makeProblem, tensors } from '../helpers/attention.js';
import { relError } from '../helpers/reference.js';
import type { ConcurrencyArgs } from './slots-task.js';

const task = new URL('./slots-task.js', import.meta.url);
const finetuneModule = new URL('../../lm/finetune-device.js', import.meta.url);
const N = 4;
const ROUNDS = 6;
const SPIN_MS = 15;

before(async () => {
  await initBackend({ backend: 'wasm' });
});

/** Runs the concurrency task on a fresh group; returns the most devices inside compute at once. */
async function mostInside(computeSlots: number | undefined): Promise<number> {
  const group = await RingGroup.create({ devices: N, backend: 'wasm', computeSlots });
  try {
    const counter = new SharedArrayBuffer(12);
    const args: ConcurrencyArgs = { counter, rounds: ROUNDS, spinMs: SPIN_MS };
    const sums = await group.run<ConcurrencyArgs, number>(task, 'concurrencyTask', Array(N).fill(args), 1);
    // each device received its predecessor's rank every round: the ring ran in full
    for (const [rank, s] of sums.entries()) assert.equal(s, ROUNDS * ((rank - 1 + N) % N), `device ${rank}`);
    const c = new Int32Array(counter);
    assert.equal(c[0], 0, 'every device left compute');
    assert.equal(c[2], N, 'every device finished');
    return c[1];
  } finally {
    await group.dispose();
  }
}

describe(`compute slots on a ${N}-device ring`, () => {
  for (const slots of [1, 2]) {
    test(`computeSlots=${slots}: at most ${slots} devices compute at once`, async (t) => {
      const most = await mostInside(slots);
      t.diagnostic(`most devices inside compute at once: ${most}`);
      assert.ok(most >= 1 && most <= slots, `most inside ${most} > ${slots} slots`);
    });
  }

  // NOTE: the control: without slots the same task does overlap, so the checks above can fail
  test('no slots: devices compute at once (the check can fail)', async (t) => {
    const most = await mostInside(undefined);
    t.diagnostic(`most devices inside compute at once: ${most}`);
    assert.ok(most >= 2, `without slots only ${most} device computed at once`);
  });

  test('computeSlots must be a positive integer', async () => {
    await assert.rejects(
      RingGroup.create({ devices: 2, backend: 'wasm', computeSlots: 0 }),
      (e: Error) =>
        e instanceof InputError &&
        /RingGroup: computeSlots must be a positive integer; got 0/.test(e.message),
    );
  });
});

const CASE: Case & { blockSize: number } = { B: 1, H: 4, Hk: 2, T: 64, D: 8, causal: true, blockSize: 8 };

function bits(x: tf.Tensor): Buffer {
  const a = x.dataSync() as Float32Array;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

test(caseName(CASE, `ring N=${N} striped: the same bits with computeSlots 1, 2 and without `), async (t) => {
  const p = makeProblem(CASE);
  t.diagnostic(`seed ${p.seed}`);
  const x = tensors(p);
  const results: Buffer[][] = [];
  for (const computeSlots of [undefined, 1, 2]) {
    const group = await RingGroup.create({ devices: N, backend: 'wasm', computeSlots });
    try {
      const r = await ringAttention(group, x.q, x.k, x.v, {
        causal: true,
        blockSize: CASE.blockSize,
        layout: 'striped',
        dOut: x.dOut,
      });
      results.push([r.out, r.dq!, r.dk!, r.dv!].map(bits));
      tf.dispose([r.out, r.dq!, r.dk!, r.dv!]);
    } finally {
      await group.dispose();
    }
  }
  const names = ['out', 'dq', 'dk', 'dv'];
  for (const i of [1, 2])
    for (const [j, b] of results[i].entries())
      assert.ok(b.equals(results[0][j]), `seed ${p.seed}: ${names[j]} with slots differs from without`);
});

test('ring N=8 on computeSlots=1: a causal ring attention forward finishes and is right', async (t) => {
  const c: Case = { B: 1, H: 2, Hk: 2, T: 64, D: 8, causal: true };
  const p = makeProblem(c);
  t.diagnostic(`seed ${p.seed}`);
  const x = tensors(p);
  // NOTE: a short comm timeout, so a deadlock fails fast instead of waiting out the default
  const group = await RingGroup.create({
    devices: 8,
    backend: 'wasm',
    computeSlots: 1,
    commTimeoutMs: 20_000,
  });
  try {
    const r = await ringAttention(group, x.q, x.k, x.v, { causal: true, blockSize: 8 });
    const want = vanillaAttention(x.q, x.k, x.v, { causal: true });
    const err = relError(r.out.dataSync() as Float32Array, want.dataSync() as Float32Array);
    assert.ok(err < 1e-4, `seed ${p.seed}: relative error ${err} against vanilla`);
    tf.dispose([r.out, want]);
  } finally {
    await group.dispose();
  }
});

const TINY: LlamaConfig = {
  vocabSize: 61,
  hiddenSize: 32,
  intermediateSize: 48,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  ropeScalingFactor: 1,
  tieWordEmbeddings: true,
  maxPositionEmbeddings: 64,
  bosTokenId: 1,
  eosTokenId: 2,
};

test(`finetune step ring N=${N} (the bench's step): the same loss, norm and weights with computeSlots=2`, async (t) => {
  const seed = (Math.random() * 2 ** 31) | 0;
  t.diagnostic(`seed ${seed}`);
  const T = 32;
  const runtime: LlamaRuntime = { attention: 'ring', blockSize: 8, ffnChunk: 8, checkpointLayers: true };
  const model = LlamaModel.init(TINY, new Rng(seed), runtime);
  const weights = model.variables().map((v) => v.dataSync() as Float32Array);
  const parameters = weights.reduce((n, w) => n + w.length, 0);
  model.dispose();
  const init: FinetuneInitArgs = {
    config: TINY,
    runtime,
    weights,
    beta1: 0.9,
    beta2: 0.95,
    weightDecay: 0.1,
  };
  const rng = new Rng(seed + 1);
  const tokens = Int32Array.from({ length: T }, () => 3 + rng.int(TINY.vocabSize - 3));
  const segmentIds = Int32Array.from({ length: T }, (_, i) => (i < 13 ? 0 : 1)); // two packed conversations
  const targets = Int32Array.from({ length: T }, (_, i) =>
    i + 1 < T && segmentIds[i] === segmentIds[i + 1] ? tokens[i + 1] : -100,
  );
  const args = shardStep([{ tokens, targets, segmentIds }], {
    devices: N,
    batch: 1,
    seqLen: T,
    layout: 'striped',
    lr: 3e-3,
    clipNorm: 1,
  });
  const floats = finetuneMessageFloats(TINY, 1, T, N, parameters);
  const runs: { step: FinetuneStepResult; weights: Float32Array[] }[] = [];
  for (const computeSlots of [undefined, 2]) {
    const group = await RingGroup.create({ devices: N, backend: 'wasm', computeSlots });
    try {
      await group.run(finetuneModule, 'initFinetune', Array(N).fill(init), floats);
      const [step] = await group.run<unknown, FinetuneStepResult>(
        finetuneModule,
        'finetuneStep',
        args,
        floats,
      );
      const [state] = await group.run<{ reply: boolean }, FinetuneState | null>(
        finetuneModule,
        'finetuneState',
        Array.from({ length: N }, (_, rank) => ({ reply: rank === 0 })),
        floats,
      );
      runs.push({ step, weights: state!.weights });
    } finally {
      await group.dispose();
    }
  }
  const [without, withSlots] = runs;
  assert.ok(
    Number.isFinite(without.step.loss) && without.step.loss > 0,
    `seed ${seed}: loss ${without.step.loss}`,
  );
  assert.equal(withSlots.step.loss, without.step.loss, `seed ${seed}: loss`);
  assert.equal(withSlots.step.gradNorm, without.step.gradNorm, `seed ${seed}: gradient norm`);
  for (const [i, w] of withSlots.weights.entries())
    assert.ok(
      Buffer.from(w.buffer, w.byteOffset, w.byteLength).equals(
        Buffer.from(without.weights[i].buffer, without.weights[i].byteOffset, without.weights[i].byteLength),
      ),
      `seed ${seed}: weight ${i} after the step`,
    );
});
