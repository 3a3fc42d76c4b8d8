// Model FLOPs of a training step (issue 17 item 4, Table 4's MFU): lm/flops.ts against a hand
// count on a tiny config, and its matmul weights against the matrices a real model holds.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { Rng } from '../../common/index.js';
import { type LlamaConfig, LlamaModel, llamaMatmulWeights, llamaTrainingFlops } from '../../lm/index.js';
import { initBackend } from '../../native/index.js';

before(async () => {
  await initBackend({ backend: 'wasm' });
});

// V=10, d=8, I=12, 2 layers, 2 query heads / 1 key-value head (head dim 4)
const TINY: LlamaConfig = {
  vocabSize: 10,
  hiddenSize: 8,
  intermediateSize: 12,
  numLayers: 2,
  numHeads: 2,
  numKvHeads: 1,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  ropeScalingFactor: 1,
  tieWordEmbeddings: true,
  maxPositionEmbeddings: 16,
  bosTokenId: 1,
  eosTokenId: 2,
};

test('tiny LLaMA (V=10 d=8 I=12 layers=2 heads 2/1) T=4: the hand count', () => {
  // per layer: q 8·8 = 64, k 8·4 = 32, v 32, o 64, gate/up/down 3·8·12 = 288 → 480; two: 960;
  // head 10·8 = 80 → W = 1040
  assert.equal(llamaMatmulWeights(TINY), 1040);
  // dense 6·1040·4 = 24960; attention 12·2 layers·8·(1+2+3+4 = 10 visible keys) = 1920
  assert.equal(llamaTrainingFlops(TINY, 4), 24960 + 1920);
  // two windows cost twice one; an untied input embedding is a lookup and adds nothing
  assert.equal(llamaTrainingFlops(TINY, 4, 2), 2 * (24960 + 1920));
  assert.equal(llamaTrainingFlops({ ...TINY, tieWordEmbeddings: false }, 4), 24960 + 1920);
  // T=1: a token sees only itself
  assert.equal(llamaTrainingFlops(TINY, 1), 6 * 1040 + 12 * 2 * 8);
});

for (const tied of [true, false]) {
  test(`matmul weights = the real model's matrices${tied ? ' (tied head)' : ' (untied: not the embedding)'}`, () => {
    const c = { ...TINY, tieWordEmbeddings: tied };
    const model = LlamaModel.init(c, new Rng(0));
    try {
      // every rank-2 variable is a matmul weight except an untied input embedding (a lookup)
      const matrices = model
        .variables()
        .filter((v) => v.rank === 2 && (tied || v !== model.weights.embed))
        .reduce((s, v) => s + v.size, 0);
      assert.equal(llamaMatmulWeights(c), matrices);
    } finally {
      model.dispose();
    }
  });
}
