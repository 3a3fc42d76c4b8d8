/** The LLaMA of sharegpt-finetune.yaml's defaults, as the LM benchmarks train it. */
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
