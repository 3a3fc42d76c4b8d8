// The LLaMA model on ring devices with a length not divisible by N (issue 21: the LM ring test
// used L=24 only). T0 tokens are padded at the end to the next multiple of N with ignored targets
// (−100), as the finetune pipeline pads; at the T0 real positions the logits, and the loss and its
// gradients, must equal vanilla attention on the unpadded T0 tokens on one device (1e-4 relative).
// Causal attention keeps the trailing padding out of every real token's view.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import { type LlamaConfig, LlamaModel, type LlamaRuntime } from '../../lm/index.js';
import { type LossShardArgs, modelWeights, type ShardArgs } from '../../lm/ring-device.js';
import { initBackend } from '../../native/index.js';
import { allReduceMessageFloats, type RingLayout, tokenIndices } from '../../ring/index.js';
import { RingGroup } from '../../cluster/index.js';
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

/** (B, T0) → (B, T) with `fill` appended to every row. */
function padRows(x: Int32Array, B: number, T0: number, T: number, fill: number): Int32Array {
  const out = new Int32Array(B * T).fill(fill);
  for (let b = 0; b < B; b++) out.set(x.subarray(b * T0, (b + 1) * T0), b * T);
  return out;
}

describe('LLaMA on ring devices, length not divisible by N = vanilla on the unpadded tokens', () => {
  for (const [N, T0, layout] of [
    [2, 13, 'contiguous'],
    [3, 10, 'striped'],
  ] as const) {
    const T = Math.ceil(T0 / N) * N;
    test(`ring N=${N} ${layout} gqa=2 L=${T0} (padded to ${T})`, async (tc) => {
      const B = 2;
      const V = config.vocabSize;
      const seed = (Math.random() * 2 ** 31) | 0;
      tc.diagnostic(`seed ${seed}`);
      const rng = new Rng(seed);
      const ids0 = Int32Array.from({ length: B * T0 }, () => rng.int(V));
      const targets0 = Int32Array.from({ length: B * T0 }, (_, i) => (i % 4 === 0 ? -100 : rng.int(V)));
      const denominator = targets0.filter((t) => t !== -100).length;
      const init = LlamaModel.init(config, rng, {
        attention: 'vanilla',
        blockSize: 4,
        ffnChunk: 0,
        checkpointLayers: false,
      });
      const weights = modelWeights(init);
      const ref = tf.tidy(() => {
        const x = tf.tensor2d(ids0, [B, T0], 'int32');
        const logits = init.forward(x).dataSync() as Float32Array;
        const vars = init.variables();
        const { value, grads } = tf.variableGrads(() => init.loss(x, targets0), vars);
        const flat = tf.concat(vars.map((v) => tf.reshape(grads[v.name], [-1]))).dataSync() as Float32Array;
        return { logits, loss: value.dataSync()[0], grads: flat };
      });
      const ids = padRows(ids0, B, T0, T, 0);
      const targets = padRows(targets0, B, T0, T, -100);
      const runtime: LlamaRuntime = { attention: 'ring', blockSize: 4, ffnChunk: 4, checkpointLayers: false };
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
        // Logits at the real positions only, in (B, T0, V) order.
        const logits = new Float32Array(B * T0 * V);
        fwd.forEach((f, r) => {
          for (let b = 0; b < B; b++)
            idx[r].forEach((t, i) => {
              if (t < T0)
                logits.set(f.logits.subarray((b * c + i) * V, (b * c + i + 1) * V), (b * T0 + t) * V);
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
      } finally {
        await group.dispose();
        init.dispose();
      }
    });
  }
});
