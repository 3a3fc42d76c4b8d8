// The LLaMA decoder: KV-cache generation equals recomputing the whole sequence; per-layer
// checkpointing and every attention impl give the same loss and gradients as vanilla without
// checkpointing; −100 targets and segment ids do what they say.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../common/index.js';
import {
  argmax,
  fromHfConfig,
  IGNORE_INDEX,
  type LlamaConfig,
  LlamaModel,
  maskedCrossEntropy,
  shiftLabels,
} from '../../lm/index.js';
import { initBackend } from '../../native/index.js';
import { relError } from '../helpers/reference.js';

before(async () => {
  await initBackend({ backend: 'wasm' });
});

const cfg: LlamaConfig = {
  vocabSize: 50,
  hiddenSize: 32,
  intermediateSize: 48,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScalingFactor: 2,
  tieWordEmbeddings: true,
  maxPositionEmbeddings: 128,
  bosTokenId: 1,
  eosTokenId: 2,
};
const vanilla = { attention: 'vanilla' as const, blockSize: 8, ffnChunk: 0, checkpointLayers: false };

describe('LlamaModel', () => {
  test('greedy generation with a KV cache = argmax of a full forward at each step', () => {
    const rng = new Rng(Date.now() >>> 0);
    const model = LlamaModel.init(cfg, rng, vanilla);
    const prompt = [
      Array.from({ length: 7 }, () => 3 + rng.int(40)),
      Array.from({ length: 7 }, () => 3 + rng.int(40)),
    ];
    const out = model.generate(prompt, { maxNewTokens: 6, eosTokenId: -1 });
    for (let b = 0; b < 2; b++) {
      const seq = [...prompt[b]];
      for (let i = 0; i < 6; i++) {
        const logits = tf.tidy(() => model.forward(tf.tensor2d(seq, [1, seq.length], 'int32')).dataSync());
        const last = logits.subarray((seq.length - 1) * cfg.vocabSize, seq.length * cfg.vocabSize);
        seq.push(argmax(last));
      }
      assert.deepEqual(out[b], seq.slice(7));
    }
    // sampling is reproducible from its rng and stays in the vocabulary
    const a = model.generate([prompt[0]], {
      maxNewTokens: 5,
      temperature: 1,
      topK: 10,
      topP: 0.9,
      rng: new Rng(3),
    });
    const b2 = model.generate([prompt[0]], {
      maxNewTokens: 5,
      temperature: 1,
      topK: 10,
      topP: 0.9,
      rng: new Rng(3),
    });
    assert.deepEqual(a, b2);
    assert.ok(a[0].every((t) => t >= 0 && t < cfg.vocabSize));
    model.dispose();
  });

  test('loss and gradients: checkpointed blockwise / memeff = vanilla (GQA, packed segments)', () => {
    const rng = new Rng(Date.now() >>> 0);
    const model = LlamaModel.init({ ...cfg, tieWordEmbeddings: false }, rng, vanilla);
    const B = 2;
    const T = 24;
    const ids = Array.from({ length: B * T }, () => rng.int(cfg.vocabSize));
    const labels = shiftLabels(ids, B, T);
    for (let i = 0; i < B * T; i += 5) labels[i] = IGNORE_INDEX;
    const segmentIds = Int32Array.from({ length: B * T }, (_, i) => (i % T < 10 ? 0 : 1));
    const grads = (m: LlamaModel) =>
      tf.tidy(() => {
        const x = tf.tensor2d(ids, [B, T], 'int32');
        const { value, grads } = tf.variableGrads(() => m.loss(x, labels, { segmentIds }), m.variables());
        return [
          value.dataSync()[0],
          ...m.variables().map((v) => grads[v.name].dataSync() as Float32Array),
        ] as const;
      });
    const [refLoss, ...refGrads] = grads(model);
    assert.ok(Math.abs(refLoss - Math.log(cfg.vocabSize)) < 0.5, `initial loss ${refLoss} ≈ ln V`);
    for (const attention of ['blockwise', 'memeff'] as const) {
      const m = model.withRuntime({ attention, blockSize: 8, ffnChunk: 8, checkpointLayers: true });
      const [loss, ...g] = grads(m);
      assert.ok(
        Math.abs(loss - refLoss) < 1e-5 * Math.abs(refLoss),
        `${attention}: loss ${loss} vs ${refLoss}`,
      );
      g.forEach((gi, i) => {
        const err = relError(gi as Float32Array, refGrads[i] as Float32Array);
        assert.ok(err < 1e-4, `${attention}: grad ${model.variables()[i].name} rel error ${err}`);
      });
    }
    model.dispose();
  });

  test('segment ids isolate packed documents; −100 targets do not count', () => {
    const rng = new Rng(7);
    const model = LlamaModel.init(cfg, rng, vanilla);
    const a = [5, 6, 7, 8, 9, 10];
    const b = [11, 12, 13, 14];
    const logits = (ids: number[], seg?: Int32Array) =>
      tf.tidy(() =>
        model.forward(tf.tensor2d(ids, [1, ids.length], 'int32'), { segmentIds: seg }).dataSync(),
      );
    const packed = logits([...a, ...b], Int32Array.from([0, 0, 0, 0, 0, 0, 1, 1, 1, 1]));
    const alone = logits(b);
    // RoPE is relative, so document b at positions 6.. equals b alone at 0..
    assert.ok(relError(packed.subarray(6 * cfg.vocabSize), alone) < 1e-5);
    const l = tf.tensor3d(
      Float32Array.from({ length: 3 * 4 }, () => rng.normal()),
      [1, 3, 4],
    );
    const all = maskedCrossEntropy(l, Int32Array.from([1, 2, 3])).dataSync()[0];
    const two = maskedCrossEntropy(l, Int32Array.from([1, IGNORE_INDEX, 3])).dataSync()[0];
    const lp = tf.logSoftmax(l).dataSync();
    assert.ok(Math.abs(two - -(lp[1] + lp[8 + 3]) / 2) < 1e-5);
    assert.ok(Math.abs(all - -(lp[1] + lp[4 + 2] + lp[8 + 3]) / 3) < 1e-5);
    assert.throws(() => maskedCrossEntropy(l, Int32Array.from([1, 9, 3])), /target 9 at 1 is outside/);
    l.dispose();
    model.dispose();
  });

  test('config.json errors name the key', () => {
    const hf = {
      model_type: 'llama',
      vocab_size: 10,
      hidden_size: 8,
      intermediate_size: 16,
      num_hidden_layers: 1,
    };
    assert.throws(
      () => fromHfConfig(hf as never),
      /key "num_attention_heads": expected a positive integer; got undefined/,
    );
    assert.throws(
      () => fromHfConfig({ ...hf, num_attention_heads: 3 } as never),
      /dModel 8 is not divisible by heads 3/,
    );
    assert.throws(
      () => fromHfConfig({ ...hf, num_attention_heads: 2, rope_scaling: { type: 'su', factor: 4 } } as never),
      /key "rope_scaling.rope_type": expected one of default, linear, llama3, yarn, dynamic, longrope; got "su"/,
    );
  });
});
