// The whole LLaMA model with attention 'ring' on N worker-thread devices (sequence parallel:
// each device its shard of the tokens, weight gradients summed over the ring) gives the same
// logits, loss and loss gradients as vanilla attention on one device, within 1e-4 relative.
// Fresh random weights and tokens each run.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { RingGroup } from '../../cluster/index.js';
import { Rng } from '../../common/index.js';
import { type LlamaConfig, LlamaModel, type LlamaRuntime } from '../../lm/index.js';
import {
  type AnswerShardArgs,
  type AnswerShardResult,
  buildModel,
  type LossShardArgs,
  modelWeights,
  type ShardArgs,
} from '../../lm/ring-device.js';
import { initBackend } from '../../native/index.js';
import { allReduceMessageFloats, type RingLayout, tokenIndices } from '../../ring/index.js';
import { relError } from '../helpers/reference.js';

before(async () => {
  await initBackend({ backend: 'wasm' });
});

const config: LlamaConfig = {
  vocabSize: 40,
  hiddenSize: 16,
  intermediateSize: 24,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScalingFactor: 1,
  tieWordEmbeddings: false,
  maxPositionEmbeddings: 64,
  bosTokenId: 1,
  eosTokenId: 2,
};
const deviceModule = new URL('../../lm/ring-device.js', import.meta.url);

/** Rows (B, T) → this device's (B, c) in layout order. */
function shard(x: Int32Array, B: number, T: number, idx: Int32Array): Int32Array {
  const out = new Int32Array(B * idx.length);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < idx.length; i++) out[b * idx.length + i] = x[b * T + idx[i]];
  return out;
}

describe('LLaMA on ring devices = vanilla on one device', () => {
  for (const [N, layout, checkpointLayers] of [
    [2, 'contiguous', false],
    [4, 'striped', true],
  ] as const) {
    test(`ring N=${N} ${layout} gqa=2 L=24 checkpointLayers=${checkpointLayers}`, async () => {
      const B = 2;
      const T = 24;
      const V = config.vocabSize;
      const rng = new Rng((Math.random() * 2 ** 31) | 0);
      const ids = Int32Array.from({ length: B * T }, () => rng.int(V));
      // some ignored targets, so the masked denominator matters
      const targets = Int32Array.from({ length: B * T }, (_, i) => (i % 5 === 0 ? -100 : rng.int(V)));
      const denominator = targets.filter((t) => t !== -100).length;

      const init = LlamaModel.init(config, rng, {
        attention: 'vanilla',
        blockSize: 4,
        ffnChunk: 0,
        checkpointLayers: false,
      });
      const weights = modelWeights(init);
      const ref = tf.tidy(() => {
        const x = tf.tensor2d(ids, [B, T], 'int32');
        const logits = init.forward(x).dataSync() as Float32Array;
        const vars = init.variables();
        const { value, grads } = tf.variableGrads(() => init.loss(x, targets), vars);
        const flat = tf.concat(vars.map((v) => tf.reshape(grads[v.name], [-1]))).dataSync() as Float32Array;
        return { logits, loss: value.dataSync()[0], grads: flat };
      });

      const runtime: LlamaRuntime = { attention: 'ring', blockSize: 4, ffnChunk: 4, checkpointLayers };
      const group = await RingGroup.create({ devices: N, backend: 'wasm' });
      try {
        const c = T / N;
        const Dh = config.hiddenSize / config.numHeads;
        const floats = Math.max(
          2 * B * config.numKvHeads * c * Dh,
          allReduceMessageFloats(ref.grads.length + 1, N),
        );
        await group.run(deviceModule, 'loadModel', Array(N).fill({ config, runtime, weights }), floats);
        const idx = Array.from({ length: N }, (_, r) => tokenIndices(r, N, T, layout as RingLayout));
        const base = (r: number): ShardArgs => ({
          ids: shard(ids, B, T, idx[r]),
          batch: B,
          seqLen: T,
          layout,
        });

        const fwd = await group.run<ShardArgs, { logits: Float32Array }>(
          deviceModule,
          'forwardShard',
          idx.map((_, r) => base(r)),
          floats,
        );
        const logits = new Float32Array(B * T * V);
        fwd.forEach((f, r) => {
          for (let b = 0; b < B; b++)
            idx[r].forEach((t, i) => {
              logits.set(f.logits.subarray((b * c + i) * V, (b * c + i + 1) * V), (b * T + t) * V);
            });
        });
        assert.ok(relError(logits, ref.logits) < 1e-4, `logits ${relError(logits, ref.logits)}`);

        const res = await group.run<LossShardArgs, { loss: number; grads: Float32Array }>(
          deviceModule,
          'lossShard',
          idx.map((ix, r) => ({ ...base(r), targets: shard(targets, B, T, ix), denominator })),
          floats,
        );
        for (const r of res) {
          assert.ok(Math.abs(r.loss - ref.loss) < 1e-4 * Math.abs(ref.loss), `loss ${r.loss} vs ${ref.loss}`);
          assert.ok(relError(r.grads, ref.grads) < 1e-4, `grads ${relError(r.grads, ref.grads)}`);
        }

        // the evaluation task: argmax at asked global positions, read by the device holding each
        const positions = [
          [3, T - 1],
          [0, T - 2, T - 1],
        ];
        const ans = await group.run<AnswerShardArgs, AnswerShardResult>(
          deviceModule,
          'answerShard',
          idx.map((_, r) => ({ ...base(r), positions, measure: true })),
          floats,
        );
        const got = new Map<string, number>();
        for (const a of ans) {
          // a device's real peak holds its runtime and weights besides the forward's tensors
          assert.ok(a.peak.tensorBytes > 0 && a.peak.realBytes > a.peak.tensorBytes, JSON.stringify(a.peak));
          for (let i = 0; i < a.hits.length; i += 3) got.set(`${a.hits[i]},${a.hits[i + 1]}`, a.hits[i + 2]);
        }
        assert.equal(got.size, 5);
        positions.forEach((row, b) => {
          for (const p of row) {
            const logitsRow = ref.logits.subarray((b * T + p) * V, (b * T + p + 1) * V);
            assert.equal(
              got.get(`${b},${p}`),
              logitsRow.indexOf(Math.max(...logitsRow)),
              `argmax at ${b},${p}`,
            );
          }
        });
      } finally {
        await group.dispose();
        init.dispose();
      }
    });
  }

  test('buildModel rejects weights of the wrong size, naming which', () => {
    const m = LlamaModel.init(config, new Rng(1));
    const w = modelWeights(m);
    const runtime = m.runtime;
    m.dispose(); // variable names are global in tfjs
    w[1] = new Float32Array(3);
    assert.throws(
      () => buildModel({ config, runtime, weights: w }),
      /loadModel: weight 1 \(shape \[[\d,]+\]\): expected \d+ values; got 3/,
    );
  });
});
