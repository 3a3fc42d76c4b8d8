/** The LLaMA of sharegpt-finetune.yaml's defaults, as the LM benchmarks train it, and its windows. */
import type { Rng } from '../common/index.js';
import type { Window } from '../lm/finetune-device.js';
import type { LlamaConfig } from '../lm/index.js';

/** Vocabulary 32000 (LLaMA's, tied head), hidden 64, 2 layers, 4 query / 2 key-value heads. */
export function sharegptDefaultModel(maxPositionEmbeddings: number): LlamaConfig {
  return {
    vocabSize: 32000,
    hiddenSize: 64,
    intermediateSize: 176,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScalingFactor: 1,
    tieWordEmbeddings: true,
    maxPositionEmbeddings,
    bosTokenId: 1,
    eosTokenId: 2,
  };
}

/**
 * A packed ShareGPT-like window of `batch` rows of T random tokens: conversations of 200–1200
 * tokens (segment ids), the loss on every next token within a conversation.
 */
export function packedWindow(T: number, batch: number, vocabSize: number, rng: Rng): Window {
  const tokens = Int32Array.from({ length: batch * T }, () => 3 + rng.int(vocabSize - 3));
  const segmentIds = new Int32Array(batch * T);
  const targets = new Int32Array(batch * T).fill(-100);
  for (let b = 0; b < batch; b++) {
    let seg = 0;
    let left = 200 + rng.int(1000);
    for (let t = 0; t < T; t++) {
      if (left-- === 0) {
        seg++;
        left = 200 + rng.int(1000);
      }
      segmentIds[b * T + t] = seg;
    }
    for (let t = 0; t + 1 < T; t++)
      if (segmentIds[b * T + t] === segmentIds[b * T + t + 1]) targets[b * T + t] = tokens[b * T + t + 1];
  }
  return { tokens, targets, segmentIds };
}
